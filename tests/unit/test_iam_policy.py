"""deployments/iam-policy.json grants exactly the Secrets Manager calls the code makes.

The calls are read from the code itself (every boto3 call goes through `SecretStore`), so
adding a call without granting it, or granting one nobody makes, fails here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deployments" / "iam-policy.json"
STORE = ROOT / "tenant_keys" / "secret_store.py"
# ListSecrets supports no resource-level permission in IAM: AWS requires "*" for it. It
# returns names and tags, never values.
UNSCOPABLE = {"secretsmanager:ListSecrets"}


def _operations_in_store() -> set[str]:
    operations = set()
    for node in ast.walk(ast.parse(STORE.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        if node.func.attr in ("_call", "_write"):
            operations.add(first.value)
        elif node.func.attr == "get_paginator":
            operations.add("".join(part.title() for part in first.value.split("_")))
    return {f"secretsmanager:{op}" for op in operations}


def _granted() -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in json.loads(POLICY.read_text())["Statement"]:
        assert statement["Effect"] == "Allow"
        resources = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        for action in statement["Action"]:
            grants.setdefault(action, set()).update(resources)
    return grants


def test_only_the_secret_store_talks_to_aws() -> None:
    users = [
        path.relative_to(ROOT).as_posix()
        for folder in ("tenant_keys", "flows", "tasks")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"^\s*(import boto3|from boto3|from botocore)", path.read_text(), re.MULTILINE)
    ]
    assert users == ["tenant_keys/secret_store.py"]


def test_policy_grants_every_call_the_code_makes_and_nothing_more() -> None:
    used = _operations_in_store()
    assert "secretsmanager:PutSecretValue" in used  # the parse found the calls
    assert set(_granted()) == used


def test_every_scopable_action_is_limited_to_the_tenant_prefix() -> None:
    for action, resources in _granted().items():
        if action in UNSCOPABLE:
            assert resources == {"*"}
            continue
        assert resources == {"arn:aws:secretsmanager:*:*:secret:langsmith/tenant/*"}, action
