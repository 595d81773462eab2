"""deployments/iam-policy-admin-key.json grants exactly the Secrets Manager calls the admin key's
secret gets (read, rotate, `admin-key init`), on that one secret, and the apps' policy none.

The calls are read from the code: `AdminSecretStore`'s own calls, and the `SecretStore` methods
the admin rotation and the provider use on it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from string import Template
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = {
    "AWS_REGION": "eu-west-1",
    "AWS_ACCOUNT_ID": "123456789012",
    "ADMIN_KEY_SECRET_NAME": "sm/admin",
}
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sm/admin-??????"
# What the admin path calls of `SecretStore` itself (describe_admin; promote_pending_key's and
# the retire's label moves) and the operation each makes (tests/unit/test_iam_policy.py checks
# those methods against the code of secret_store.py).
INHERITED = {
    "describe": "secretsmanager:DescribeSecret",
    "move_label": "secretsmanager:UpdateSecretVersionStage",
    "remove_label": "secretsmanager:UpdateSecretVersionStage",
}


def _statements(name: str) -> list[dict[str, Any]]:
    text = (ROOT / "deployments" / name).read_text()
    statements: list[dict[str, Any]] = json.loads(Template(text).substitute(PARAMETERS))[
        "Statement"
    ]
    return statements


def _own_calls() -> set[str]:
    """The operations `AdminSecretStore` makes through `_call`/`_write` itself."""
    tree = ast.parse((ROOT / "tenant_keys" / "admin_secret.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("_call", "_write")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(f"secretsmanager:{node.args[0].value}")
    return found


def _used_inherited() -> set[str]:
    used = set()
    for module in ("admin_secret.py", "admin_rotation.py", "rotation.py"):
        text = (ROOT / "tenant_keys" / module).read_text()
        for method, operation in INHERITED.items():
            if re.search(rf"(store|self)\.{method}\(", text):
                used.add(operation)
    return used


def test_the_admin_key_policy_grants_exactly_the_calls_made_on_that_secret() -> None:
    allowed = {a for s in _statements("iam-policy-admin-key.json") for a in s["Action"]}
    needed = _own_calls() | _used_inherited()
    assert "secretsmanager:CreateSecret" in needed and "secretsmanager:GetSecretValue" in needed
    assert allowed == needed


def test_the_admin_key_policy_is_bound_to_that_secret_and_its_tag() -> None:
    for statement in _statements("iam-policy-admin-key.json"):
        assert statement["Effect"] == "Allow" and statement["Resource"] == ARN
        if set(statement["Action"]) & {
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
        }:
            assert statement["Condition"]["StringEquals"] == {
                "secretsmanager:ResourceTag/tenant-keys:role": "admin-key"
            }


def test_apps_are_never_granted_the_admin_key() -> None:
    text = (ROOT / "deployments" / "iam-policy-app.json").read_text()
    assert "ADMIN" not in text.upper()
