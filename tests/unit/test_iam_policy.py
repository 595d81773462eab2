"""The two IAM policies of deployments/ grant exactly the Secrets Manager calls the code makes,
on the tenant prefix of one region and account, and no more.

The calls are read from the code itself (every boto3 call goes through `SecretStore`), so
adding a call without granting it, or granting one nobody makes, fails here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from string import Template
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "tenant_keys" / "secret_store.py"
RUNTIME = ROOT / "tenant_keys" / "runtime.py"
PARAMETERS = {"AWS_REGION": "eu-west-1", "AWS_ACCOUNT_ID": "123456789012", "SECRET_PREFIX": "sm/t"}
PREFIX_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sm/t/*"
# ListSecrets supports no resource-level permission in IAM: AWS requires "*" for it. It
# returns names and tags, never values.
UNSCOPABLE = {"secretsmanager:ListSecrets"}
WRITES = {
    "secretsmanager:DeleteSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:RestoreSecret",
    "secretsmanager:TagResource",
    "secretsmanager:UpdateSecretVersionStage",
}


def _policy(name: str) -> list[dict[str, Any]]:
    text = (ROOT / "deployments" / name).read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(PARAMETERS), "region, account, prefix"
    statements: list[dict[str, Any]] = json.loads(Template(text).substitute(PARAMETERS))[
        "Statement"
    ]
    return statements


def _operations_by_method() -> dict[str, set[str]]:
    """SecretStore's methods -> the Secrets Manager operations each makes."""
    found: dict[str, set[str]] = {}
    for method in ast.walk(ast.parse(STORE.read_text())):
        if not isinstance(method, ast.FunctionDef):
            continue
        for node in ast.walk(method):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            first = node.args[0] if node.args else None
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            if node.func.attr in ("_call", "_write"):
                found.setdefault(method.name, set()).add(f"secretsmanager:{first.value}")
            elif node.func.attr == "get_paginator":
                operation = "".join(part.title() for part in first.value.split("_"))
                found.setdefault(method.name, set()).add(f"secretsmanager:{operation}")
    return found


def _allowed(statements: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grants: dict[str, list[dict[str, Any]]] = {}
    for statement in statements:
        if statement["Effect"] == "Allow":
            for action in statement["Action"]:
                grants.setdefault(action, []).append(statement)
    return grants


def test_only_the_secret_store_talks_to_aws() -> None:
    users = [
        path.relative_to(ROOT).as_posix()
        for folder in ("tenant_keys", "flows", "tasks")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"^\s*(import boto3|from boto3|from botocore)", path.read_text(), re.MULTILINE)
    ]
    assert users == ["tenant_keys/secret_store.py"]


def test_the_tools_policy_grants_every_call_the_code_makes_and_nothing_more() -> None:
    used = set().union(*_operations_by_method().values())
    assert "secretsmanager:PutSecretValue" in used  # the parse found the calls
    assert set(_allowed(_policy("iam-policy.json"))) == used


def test_the_tools_policy_is_bound_to_the_prefix_and_to_its_own_secrets() -> None:
    for action, statements in _allowed(_policy("iam-policy.json")).items():
        for statement in statements:
            expected = "*" if action in UNSCOPABLE else PREFIX_ARN
            assert statement["Resource"] == expected, action
            tag = statement.get("Condition", {}).get("StringEquals", {})
            if action in WRITES:
                assert tag == {"secretsmanager:ResourceTag/tenant-keys:managed-by": "tenant-keys"}
            if action == "secretsmanager:CreateSecret":
                assert tag == {"aws:RequestTag/tenant-keys:managed-by": "tenant-keys"}
            if action in ("secretsmanager:TagResource", "secretsmanager:CreateSecret"):
                keys = statement["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"]
                assert keys == ["tenant-keys:*"], "only the tool's own tag keys"


def test_the_tools_policy_denies_an_irrecoverable_delete_of_a_serving_secret() -> None:
    [deny] = [s for s in _policy("iam-policy.json") if s["Effect"] == "Deny"]
    assert deny["Action"] == ["secretsmanager:DeleteSecret"]
    condition = deny["Condition"]
    assert condition["Bool"] == {"secretsmanager:ForceDeleteWithoutRecovery": "true"}
    # Onboarding deletes the secret it just made when the key fails its check (it never served).
    assert condition["StringNotEquals"] == {
        "secretsmanager:ResourceTag/tenant-keys:onboarding": "pending"
    }


def test_the_apps_policy_is_read_only_and_covers_what_the_runtime_reads() -> None:
    allowed = _allowed(_policy("iam-policy-app.json"))
    assert set(allowed) == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    assert all(s["Resource"] == PREFIX_ARN for statements in allowed.values() for s in statements)
    by_method = _operations_by_method()
    called = set(re.findall(r"self\.store\.(\w+)\(", RUNTIME.read_text()))
    assert called, "the runtime reads the store"
    needed = set().union(*(by_method[m] for m in called))
    assert needed <= set(allowed)
