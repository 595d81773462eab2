"""The emulator against the full LangSmith spec: nothing invented, nothing the product needs
missing."""

from __future__ import annotations

import re
import uuid

import pytest
from starlette.routing import compile_path

from devstack.langsmith_emulator.app import served_routes

from .spec import SpecMismatch, find_operation, validate

# The spec operations tenant-keys calls: the "/api/v1/..." templates of
# tenant_keys/langsmith/client.py (grep '"/api/v1/' there; its {id} is the spec's named
# parameter), written in the spec's own form. Plus what issue 18 adds to the product: the
# runs query that replaces Client.list_runs, the audit log and the org's key-lifetime caps.
PRODUCT_OPERATIONS = [
    ("POST", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/{session_id}"),
    ("DELETE", "/api/v1/sessions/{session_id}"),
    ("POST", "/api/v1/runs/stats"),
    ("POST", "/api/v1/api-key"),
    ("GET", "/api/v1/api-key"),
    ("DELETE", "/api/v1/api-key/{api_key_id}"),
    ("POST", "/api/v1/workspaces"),
    ("GET", "/api/v1/workspaces"),
    ("DELETE", "/api/v1/workspaces/{workspace_id}"),
    ("POST", "/api/v1/orgs/current/service-keys"),
    ("GET", "/api/v1/orgs/current/service-keys"),
    ("DELETE", "/api/v1/orgs/current/service-keys/{api_key_id}"),
    ("GET", "/api/v1/usage-limits"),
    ("PUT", "/api/v1/usage-limits"),
    ("POST", "/v2/runs/query"),  # client.runs.query(), which replaces Client.list_runs
    ("GET", "/api/v1/orgs/current/info"),  # the org's key-lifetime caps
    ("GET", "/api/v1/audit-logs"),  # evidence of what a key did and when
    # Issue 17, the "tagged" isolation mode: a tag per tenant on its project.
    ("GET", "/api/v1/workspaces/current/tag-keys"),
    ("POST", "/api/v1/workspaces/current/tag-keys"),
    ("DELETE", "/api/v1/workspaces/current/tag-keys/{tag_key_id}"),
    ("GET", "/api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values"),
    ("POST", "/api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values"),
    ("DELETE", "/api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values/{tag_value_id}"),
    ("POST", "/api/v1/workspaces/current/taggings"),
    ("GET", "/api/v1/workspaces/current/taggings"),
    ("DELETE", "/api/v1/workspaces/current/taggings/{tagging_id}"),
    ("GET", "/api/v1/workspaces/current/tags/resource"),
    ("POST", "/api/v1/workspaces/current/tags/resources"),
    # ... a workspace role per tenant, the key minted with it ...
    ("GET", "/api/v1/orgs/current/roles"),
    ("POST", "/api/v1/orgs/current/roles"),
    ("PATCH", "/api/v1/orgs/current/roles/{role_id}"),
    ("DELETE", "/api/v1/orgs/current/roles/{role_id}"),
    # ... and an allow policy on the tenant's tag, attached to that role.
    ("GET", "/v1/platform/orgs/current/access-policies"),
    ("POST", "/v1/platform/orgs/current/access-policies"),
    ("GET", "/v1/platform/orgs/current/access-policies/{access_policy_id}"),
    ("DELETE", "/v1/platform/orgs/current/access-policies/{access_policy_id}"),
    ("POST", "/v1/platform/orgs/current/access-policies/roles/{role_id}/access-policies"),
]


def _served(method: str, path: str) -> bool:
    return any(
        method in methods and compile_path(template)[0].match(path)
        for template, methods in served_routes()
    )


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)


def test_every_emulated_route_is_an_operation_of_the_spec() -> None:
    served = [(m, path) for path, methods in served_routes() for m in methods]
    assert len(served) > 40
    missing = [(m, p) for m, p in served if find_operation(m, p) is None]
    assert missing == []


@pytest.mark.parametrize(("method", "template"), PRODUCT_OPERATIONS)
def test_the_products_operations_are_emulated(method: str, template: str) -> None:
    assert validate(method, template, 599, None) is None  # the template is in the spec
    assert _served(method, _concrete(template)), f"{method} {template} is not emulated"


def test_a_path_outside_the_spec_fails_validation() -> None:
    with pytest.raises(SpecMismatch, match="not an operation"):
        validate("GET", "/api/v1/made-up", 200, {})
    with pytest.raises(SpecMismatch, match="not an operation"):
        validate("PUT", "/api/v1/sessions", 200, {})  # a real path, not with that method
