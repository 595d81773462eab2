"""Custom roles (``/api/v1/orgs/current/roles``), keys minted with a custom ``role_id``, and the
permission every workspace route needs (rbac.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.routing import APIRoute

from devstack.langsmith_emulator import (
    ORGANIZATION_ADMIN,
    WORKSPACE_ADMIN,
    WORKSPACE_READER,
    EmulatorServer,
)
from devstack.langsmith_emulator.app import API_MOUNTS
from devstack.langsmith_emulator.auth import ws_read, ws_write
from devstack.langsmith_emulator.rbac import ROUTE_PERMISSIONS, all_permissions
from devstack.langsmith_emulator.testing_controls import normalize_route

from .conftest import ApiClient, new_key, new_workspace

ROLES = "/api/v1/orgs/current/roles"


def create_role(
    api: ApiClient, emulator: EmulatorServer, permissions: list[str], name: str = "Tenant"
) -> dict[str, Any]:
    r = api.post(
        ROLES,
        key=emulator.org_admin_key,
        org=emulator.org_id,
        json={"display_name": name, "description": "a tenant's key", "permissions": permissions},
    )
    assert r.status_code == 200, r.text
    role: dict[str, Any] = r.json()
    return role


def _run(project: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    return {
        "id": run_id,
        "trace_id": run_id,
        "dotted_order": f"{now:%Y%m%dT%H%M%S%fZ}{run_id}",
        "name": "r",
        "run_type": "chain",
        "start_time": now.isoformat(),
        "end_time": now.isoformat(),
        "inputs": {},
        "outputs": {},
        "session_name": project,
    }


def test_the_list_has_the_fixed_roles(emulator: EmulatorServer, api: ApiClient) -> None:
    r = api.get(ROLES, key=emulator.org_admin_key, org=emulator.org_id)
    assert r.status_code == 200
    by_id = {role["id"]: role for role in r.json()}
    assert by_id[WORKSPACE_ADMIN]["name"] == "WORKSPACE_ADMIN"
    assert by_id[WORKSPACE_ADMIN]["access_scope"] == "workspace"
    assert by_id[WORKSPACE_ADMIN]["organization_id"] is None
    assert "projects:read" in by_id[WORKSPACE_READER]["permissions"]
    assert "projects:create" not in by_id[WORKSPACE_READER]["permissions"]
    assert by_id[ORGANIZATION_ADMIN]["access_scope"] == "organization"
    assert set(by_id[WORKSPACE_ADMIN]["permissions"]) <= all_permissions()
    # Any key of the org lists them; the org header is required.
    assert api.get(ROLES, key=emulator.admin_key, org=emulator.org_id).status_code == 200
    assert api.get(ROLES, key=emulator.org_admin_key).status_code == 403
    assert api.get(ROLES, org=emulator.org_id).status_code == 401


def test_custom_role_lifecycle(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    role = create_role(api, emulator, ["workspaces:read"])
    assert role["organization_id"] == org and role["access_scope"] == "workspace"
    assert role["permissions"] == ["workspaces:read"] and role["name"]
    assert role["id"] in {r["id"] for r in api.get(ROLES, key=okey, org=org).json()}

    body = {"display_name": "Tenant v2", "description": "d", "permissions": ["runs:create"]}
    r = api.patch(f"{ROLES}/{role['id']}", key=okey, org=org, json=body)
    assert r.status_code == 200
    assert r.json()["display_name"] == "Tenant v2" and r.json()["permissions"] == ["runs:create"]
    assert api.patch(f"{ROLES}/{WORKSPACE_ADMIN}", key=okey, org=org, json=body).status_code == 403
    assert api.patch(f"{ROLES}/{uuid.uuid4()}", key=okey, org=org, json=body).status_code == 404
    r = api.patch(f"{ROLES}/{role['id']}", key=okey, org=org, json={"display_name": "x"})
    assert r.status_code == 422  # UpdateRoleRequest needs all three fields

    r = api.delete(f"{ROLES}/{role['id']}", key=okey, org=org)
    assert r.status_code == 200 and r.json()["id"] == role["id"]
    assert api.delete(f"{ROLES}/{role['id']}", key=okey, org=org).status_code == 404
    assert api.delete(f"{ROLES}/{WORKSPACE_READER}", key=okey, org=org).status_code == 403


def test_role_validation(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    good = {"display_name": "T", "description": "d", "permissions": ["runs:read"]}
    for bad in (
        {**good, "permissions": ["runs:fly"]},
        {**good, "permissions": ["organization:manage"]},  # not a workspace permission
        {**good, "display_name": ""},
        {"display_name": "T", "permissions": []},  # description is required
        {**good, "access_scope": "organization"},  # custom roles are workspace roles
    ):
        r = api.post(ROLES, key=okey, org=org, json=bad)
        assert r.status_code == 422, bad
    r = api.post(ROLES, key=okey, org=org, json={**good, "access_scope": "workspace"})
    assert r.status_code == 200
    r = api.post(ROLES, key=okey, org=org, json={**good, "permissions": []})
    assert r.status_code == 200 and r.json()["permissions"] == []


def test_only_org_admins_manage_roles(emulator: EmulatorServer, api: ApiClient) -> None:
    body = {"display_name": "T", "description": "d", "permissions": []}
    org = emulator.org_id
    assert api.post(ROLES, key=emulator.admin_key, org=org, json=body).status_code == 403
    user = api.post(
        "/api/v1/orgs/current/service-keys", key=emulator.org_admin_key, org=org, json={}
    ).json()["key"]  # org-wide Organization User
    assert api.post(ROLES, key=user, org=org, json=body).status_code == 403
    assert api.get(ROLES, key=user, org=org).status_code == 200


def test_a_key_acts_with_its_custom_roles_permissions(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    role = create_role(api, emulator, ["runs:create"])
    key = new_key(api, emulator.admin_key, role_id=role["id"])
    assert key["read_only"] is False
    k = key["key"]
    assert api.post("/runs/batch", key=k, json={"post": [_run("writes-only")]}).status_code == 202
    assert api.get("/api/v1/sessions", key=k).status_code == 403
    assert api.post("/api/v1/sessions", key=k, json={"name": "x"}).status_code == 403
    assert api.post("/api/v1/api-key", key=k, json={}).status_code == 403
    assert api.get("/api/v1/workspaces/current/tag-keys", key=k).status_code == 403
    assert api.post("/api/v1/runs/query", key=k, json={}).status_code == 403

    # A role's change applies to its keys at once.
    body = {
        "display_name": "T",
        "description": "d",
        "permissions": ["projects:read", "workspaces:read"],
    }
    assert api.patch(f"{ROLES}/{role['id']}", key=okey, org=org, json=body).status_code == 200
    assert api.get("/api/v1/sessions", key=k).status_code == 200
    assert api.get("/api/v1/workspaces/current/tag-keys", key=k).status_code == 200
    assert api.post("/runs/batch", key=k, json={"post": [_run("writes-only")]}).status_code == 403
    listed = api.get("/api/v1/workspaces", key=k, org=org).json()
    assert listed[0]["role_id"] == role["id"] and listed[0]["role_name"] == role["name"]
    assert listed[0]["permissions"] == ["projects:read", "workspaces:read"]

    # A role its keys still use cannot be deleted; once they are gone it can.
    assert api.delete(f"{ROLES}/{role['id']}", key=okey, org=org).status_code == 409
    assert api.delete(f"/api/v1/api-key/{key['id']}", key=emulator.admin_key).status_code == 200
    assert api.delete(f"{ROLES}/{role['id']}", key=okey, org=org).status_code == 200


def test_a_service_key_with_a_custom_role(emulator: EmulatorServer, api: ApiClient) -> None:
    ws = new_workspace(api, emulator)
    role = create_role(api, emulator, ["projects:read"])
    r = api.post(
        "/api/v1/orgs/current/service-keys",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        json={"workspaces": [ws], "role_id": role["id"]},
    )
    assert r.status_code == 200
    k = r.json()["key"]
    assert api.get("/api/v1/sessions", key=k, tenant=ws).status_code == 200
    assert api.post("/api/v1/sessions", key=k, tenant=ws, json={"name": "x"}).status_code == 403


def test_an_unknown_role_id_is_refused(emulator: EmulatorServer, api: ApiClient) -> None:
    for role_id in (str(uuid.uuid4()), ORGANIZATION_ADMIN):
        r = api.post("/api/v1/api-key", key=emulator.admin_key, json={"role_id": role_id})
        assert r.status_code == 422


def test_every_workspace_route_names_its_permission() -> None:
    """ws_read routes need a read permission, ws_write routes another one."""
    checked = 0
    for router, prefixes in API_MOUNTS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            calls = {d.call for d in route.dependant.dependencies}
            for method in route.methods or ():
                name = f"{method} {normalize_route(prefixes[0] + route.path)}"
                if ws_read in calls:
                    assert ROUTE_PERMISSIONS[name].endswith(":read"), name
                    checked += 1
                elif ws_write in calls:
                    assert not ROUTE_PERMISSIONS[name].endswith(":read"), name
                    checked += 1
    assert checked == len(ROUTE_PERMISSIONS)
    assert set(ROUTE_PERMISSIONS.values()) <= all_permissions()


def test_role_operations_are_audited(emulator: EmulatorServer, api: ApiClient) -> None:
    create_role(api, emulator, [])
    r = api.get(
        "/api/v1/audit-logs",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        params={"start_time": "2000-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"},
    )
    assert "create_role" in [i["api"]["operation"] for i in r.json()["items"]]
