"""Access policies over HTTP (``/v1/platform/orgs/current/access-policies``): create, list, get,
delete, attach to a role, and the spec's errors (``abac.ErrorResponse`` ``{"error"}``)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from devstack.langsmith_emulator import ORGANIZATION_ADMIN, WORKSPACE_READER, EmulatorServer

from .conftest import ApiClient
from .test_emu_roles import create_role

POLICIES = "/v1/platform/orgs/current/access-policies"


def tenant_policy(
    tenant: str, *, effect: str = "allow", role_ids: list[str] | None = None, **cond: str
) -> dict[str, Any]:
    """The "tagged" mode's policy: projects:read and runs:read where tenant == ``tenant``."""
    condition = {
        "attribute_name": "resource_tag_key",
        "attribute_key": "tenant",
        "operator": "equals",
        "attribute_value": tenant,
        **cond,
    }
    body: dict[str, Any] = {
        "name": f"tenant {tenant}",
        "description": "reads of the tenant's own project",
        "effect": effect,
        "condition_groups": [
            {"permission": p, "resource_type": "project", "conditions": [condition]}
            for p in ("projects:read", "runs:read")
        ],
    }
    if role_ids is not None:
        body["role_ids"] = role_ids
    return body


def create_policy(api: ApiClient, emulator: EmulatorServer, body: dict[str, Any]) -> str:
    r = api.post(POLICIES, key=emulator.org_admin_key, org=emulator.org_id, json=body)
    assert r.status_code == 201, r.text
    policy_id: str = r.json()["id"]
    return policy_id


def attach(api: ApiClient, emulator: EmulatorServer, role_id: str, *policy_ids: str) -> None:
    r = api.post(
        f"{POLICIES}/roles/{role_id}/access-policies",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        json={"access_policy_ids": list(policy_ids)},
    )
    assert r.status_code == 204, r.text


def test_policy_lifecycle(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    role = create_role(api, emulator, ["workspaces:read"])
    pid = create_policy(api, emulator, tenant_policy("acme", role_ids=[role["id"]]))
    got = api.get(f"{POLICIES}/{pid}", key=okey, org=org)
    assert got.status_code == 200
    policy = got.json()
    assert policy["id"] == pid and policy["effect"] == "allow"
    assert policy["role_ids"] == [role["id"]]
    assert [g["permission"] for g in policy["condition_groups"]] == ["projects:read", "runs:read"]
    assert policy["condition_groups"][0]["conditions"][0]["attribute_value"] == "acme"
    assert policy["created_at"] and policy["updated_at"]
    listed = api.get(POLICIES, key=okey, org=org).json()["access_policies"]
    assert [p["id"] for p in listed] == [pid]

    assert api.delete(f"{POLICIES}/{pid}", key=okey, org=org).status_code == 204
    r = api.get(f"{POLICIES}/{pid}", key=okey, org=org)
    assert r.status_code == 404 and r.json() == {"error": "access policy not found"}
    assert api.delete(f"{POLICIES}/{pid}", key=okey, org=org).status_code == 404
    assert api.get(POLICIES, key=okey, org=org).json() == {"access_policies": []}


def test_attach(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    role = create_role(api, emulator, [])
    p1 = create_policy(api, emulator, tenant_policy("acme"))
    p2 = create_policy(api, emulator, tenant_policy("globex", effect="deny"))
    attach(api, emulator, role["id"], p1, p2)
    attach(api, emulator, role["id"], p1)  # again: no change
    attach(api, emulator, WORKSPACE_READER, p1)  # a fixed workspace role too
    assert api.get(f"{POLICIES}/{p1}", key=okey, org=org).json()["role_ids"] == [
        role["id"],
        WORKSPACE_READER,
    ]
    path = f"{POLICIES}/roles/{role['id']}/access-policies"
    for body, status in (
        ({"access_policy_ids": [str(uuid.uuid4())]}, 404),
        ({"access_policy_ids": ["not-a-uuid"]}, 400),
        ({"access_policy_ids": []}, 400),
        ({}, 400),
    ):
        r = api.post(path, key=okey, org=org, json=body)
        assert r.status_code == status, body
        assert set(r.json()) == {"error"}
    for role_id in (str(uuid.uuid4()), ORGANIZATION_ADMIN):  # unknown; not a workspace role
        r = api.post(
            f"{POLICIES}/roles/{role_id}/access-policies",
            key=okey,
            org=org,
            json={"access_policy_ids": [p1]},
        )
        assert r.status_code == 404 and r.json()["error"].startswith("role not found")
    # Deleting the role detaches it.
    api.delete(f"/api/v1/orgs/current/roles/{role['id']}", key=okey, org=org)
    assert api.get(f"{POLICIES}/{p2}", key=okey, org=org).json()["role_ids"] == []


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the tenant policy with one field (``a.0.b`` path) replaced or removed."""
    out = copy.deepcopy(body)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _REMOVE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return out


_REMOVE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", _REMOVE),
        ("name", ""),
        ("effect", "maybe"),
        ("effect", _REMOVE),
        ("condition_groups", []),
        ("condition_groups.0.permission", "projects:fly"),
        ("condition_groups.0.permission", "datasets:read"),  # not evaluated for projects
        ("condition_groups.0.resource_type", "run"),  # runs have no tags of their own
        ("condition_groups.0.conditions", []),
        ("condition_groups.0.conditions.0.operator", "contains"),
        ("condition_groups.0.conditions.0.attribute_name", "resource_name"),
        ("condition_groups.0.conditions.0.attribute_key", ""),
        ("condition_groups.0.conditions.0.attribute_value", ""),
        ("role_ids", ["not-a-uuid"]),
    ],
)
def test_a_malformed_policy_is_a_400(
    emulator: EmulatorServer, api: ApiClient, path: str, value: Any
) -> None:
    body = _with(tenant_policy("acme"), path, value)
    r = api.post(POLICIES, key=emulator.org_admin_key, org=emulator.org_id, json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"}


def test_other_refusals(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    r = api.post(POLICIES, key=okey, org=org, content=b"{not json", headers={"content-type": "x"})
    assert r.status_code == 400
    r = api.post(POLICIES, key=okey, org=org, json=tenant_policy("a", role_ids=[str(uuid.uuid4())]))
    assert r.status_code == 404 and r.json()["error"].startswith("role not found")
    assert api.get(f"{POLICIES}/not-a-uuid", key=okey, org=org).status_code == 400
    assert api.get(f"{POLICIES}/{uuid.uuid4()}", key=okey, org=org).status_code == 404
    # Who may: org admins write; any key of the org reads; the org header is required.
    body = tenant_policy("acme")
    r = api.post(POLICIES, key=emulator.admin_key, org=org, json=body)
    assert r.status_code == 403 and set(r.json()) == {"error"}
    assert api.post(POLICIES, key=okey, json=body).status_code == 403
    assert api.get(POLICIES, key=emulator.admin_key, org=org).status_code == 200
    r = api.get(POLICIES, org=org)
    assert r.status_code == 401 and set(r.json()) == {"error"}


def test_policy_operations_are_audited(emulator: EmulatorServer, api: ApiClient) -> None:
    create_policy(api, emulator, tenant_policy("acme"))
    r = api.get(
        "/api/v1/audit-logs",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        params={"start_time": "2000-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"},
    )
    assert "create_access_policy" in [i["api"]["operation"] for i in r.json()["items"]]


def test_a_fault_on_a_policy_path_answers_in_its_error_shape(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    fault = emulator.control.inject_fault(method="POST", route=POLICIES, status=503)
    assert fault["route"] == POLICIES  # the spec's form is kept, not put under /api/v1
    r = api.post(POLICIES, key=emulator.org_admin_key, org=emulator.org_id, json={})
    assert r.status_code == 503 and set(r.json()) == {"error"}  # abac.ErrorResponse
    counts = emulator.control.request_counts()["by_route"]
    assert counts[f"POST {POLICIES}"] == 1
