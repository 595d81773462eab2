"""The Kubernetes and ECS base job templates in deployments/: valid JSON, every placeholder
backed by a variable (what the Prefect server checks when a pool is created with
`--base-job-template`), and settings from a secret, never a key inline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DEPLOYMENTS = Path(__file__).resolve().parents[2] / "deployments"
TEMPLATES = ["kubernetes-job-template.json", "ecs-job-template.json"]
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _load(name: str) -> dict[str, Any]:
    return json.loads((DEPLOYMENTS / name).read_text())


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_placeholder_is_a_declared_variable(name: str) -> None:
    template = _load(name)
    assert set(template) == {"job_configuration", "variables"}
    declared = set(template["variables"]["properties"])
    used = {m for s in _strings(template["job_configuration"]) for m in PLACEHOLDER.findall(s)}
    assert used, "a template with no placeholders configures nothing"
    assert used <= declared, f"undeclared: {sorted(used - declared)}"
    assert set(template["variables"].get("required", [])) <= declared


@pytest.mark.parametrize("name", TEMPLATES)
def test_no_secret_value_inline(name: str) -> None:
    template = _load(name)
    text = json.dumps(template)
    assert "lsv2_" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    env_defaults = template["variables"]["properties"]["env"].get("default", {})
    assert not [k for k in env_defaults if k.endswith(("_KEY", "_URL", "_TOKEN"))], env_defaults


def test_kubernetes_takes_settings_from_a_secret() -> None:
    template = _load("kubernetes-job-template.json")
    manifest = template["job_configuration"]["job_manifest"]
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "{{ settings_secret }}"}}]
    assert template["variables"]["properties"]["service_account_name"]["default"]


def test_ecs_takes_the_admin_key_from_secrets_manager() -> None:
    template = _load("ecs-job-template.json")
    [container] = template["job_configuration"]["task_definition"]["containerDefinitions"]
    names = {s["name"] for s in container["secrets"]}
    assert names == {"TENANT_KEYS_NOTIFY_WEBHOOK_URL"}
    # The secret's name, not its value: the flows read (and re-read) the key themselves.
    assert container["environment"] == [
        {"name": "TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET", "value": "{{ langsmith_admin_key_arn }}"}
    ]
    assert {"langsmith_admin_key_arn", "notify_webhook_url_arn"} <= set(
        template["variables"]["required"]
    )
