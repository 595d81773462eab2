"""Workspaces, workspace stats, usage limits (and their enforcement), granular billing usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from devstack.langsmith_emulator import EmulatorServer

from .conftest import ApiClient, new_key, new_workspace


def test_workspace_lifecycle(emulator: EmulatorServer, api: ApiClient) -> None:
    org, okey = emulator.org_id, emulator.org_admin_key
    ws = new_workspace(api, emulator, "Tenant 42")
    listed = api.get("/api/v1/workspaces", key=okey, org=org).json()
    assert {w["id"] for w in listed} == {emulator.workspace_id, ws}
    assert all(w["organization_id"] == org for w in listed)

    r = api.patch(
        f"/api/v1/workspaces/{ws}",
        key=okey,
        tenant=ws,
        json={"display_name": "Tenant 42 (renamed)"},
    )
    assert r.status_code == 200 and r.json()["display_name"] == "Tenant 42 (renamed)"
    r = api.patch(f"/api/v1/workspaces/{ws}", key=okey, tenant=ws, json={"display_name": "bad/"})
    assert r.status_code == 422
    # path and X-Tenant-Id must agree
    r = api.patch(
        f"/api/v1/workspaces/{ws}",
        key=okey,
        tenant=emulator.workspace_id,
        json={"display_name": "x"},
    )
    assert r.status_code == 403

    assert api.delete(f"/api/v1/workspaces/{ws}", key=okey, tenant=ws).status_code == 200
    listed = api.get("/api/v1/workspaces", key=okey, org=org).json()
    assert ws not in {w["id"] for w in listed}
    with_deleted = api.get(
        "/api/v1/workspaces", key=okey, org=org, params={"include_deleted": True}
    ).json()
    assert any(w["id"] == ws and w["is_deleted"] for w in with_deleted)


def test_workspace_create_validation_and_conflict(emulator: EmulatorServer, api: ApiClient) -> None:
    org, okey = emulator.org_id, emulator.org_admin_key
    assert api.post("/api/v1/workspaces", key=okey, org=org, json={}).status_code == 422
    r = api.post("/api/v1/workspaces", key=okey, org=org, json={"display_name": ""})
    assert r.status_code == 422
    wid = str(uuid.uuid4())
    r = api.post("/api/v1/workspaces", key=okey, org=org, json={"display_name": "a", "id": wid})
    assert r.status_code == 200 and r.json()["id"] == wid
    r = api.post("/api/v1/workspaces", key=okey, org=org, json={"display_name": "b", "id": wid})
    assert r.status_code == 409


def test_workspace_key_lists_only_its_workspace(emulator: EmulatorServer, api: ApiClient) -> None:
    new_workspace(api, emulator)
    listed = api.get("/api/v1/workspaces", key=emulator.admin_key, org=emulator.org_id).json()
    assert [w["id"] for w in listed] == [emulator.workspace_id]
    assert listed[0]["role_name"] == "WORKSPACE_ADMIN"


def test_workspace_stats(emulator: EmulatorServer, api: ApiClient) -> None:
    for name in ("s1", "s2", "s3"):
        api.post("/api/v1/sessions", key=emulator.admin_key, json={"name": name})
    r = api.get("/api/v1/workspaces/current/stats", key=emulator.admin_key)
    assert r.status_code == 200
    assert r.json()["tracer_session_count"] == 3
    assert r.json()["tenant_id"] == emulator.workspace_id


def _trace(key: str, api: ApiClient, project: str = "limited") -> httpx.Response:
    run = {
        "id": str(uuid.uuid4()),
        "name": "t",
        "run_type": "chain",
        "session_name": project,
        "start_time": datetime.now(UTC).isoformat(),
    }
    return api.post("/runs/batch", key=key, json={"post": [run]})


def test_usage_limits_crud_and_enforcement(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    assert api.get("/api/v1/usage-limits", key=key).json() == []
    r = api.put(
        "/api/v1/usage-limits", key=key, json={"limit_type": "monthly_traces", "limit_value": 2}
    )
    assert r.status_code == 200
    limit = r.json()
    assert limit["tenant_id"] == emulator.workspace_id
    # upsert by type updates the same limit
    again = api.put(
        "/api/v1/usage-limits", key=key, json={"limit_type": "monthly_traces", "limit_value": 3}
    ).json()
    assert again["id"] == limit["id"] and again["limit_value"] == 3
    assert len(api.get("/api/v1/usage-limits", key=key).json()) == 1

    info = api.get("/api/v1/workspaces/current/usage_limits", key=key).json()
    assert info["in_reject_set"] is False
    for _ in range(3):
        assert _trace(key, api).status_code == 202
    info = api.get("/api/v1/workspaces/current/usage_limits", key=key).json()
    assert info == {
        "in_reject_set": True,
        "usage_limit_type": "user_defined_monthly_traces",
        "tenant_limit": 3,
    }
    rejected = _trace(key, api)
    assert rejected.status_code == 429 and "error" in rejected.json()

    assert api.delete(f"/api/v1/usage-limits/{limit['id']}", key=key).status_code == 200
    assert api.delete(f"/api/v1/usage-limits/{limit['id']}", key=key).status_code == 404
    assert _trace(key, api).status_code == 202
    bad = api.put("/api/v1/usage-limits", key=key, json={"limit_type": "daily", "limit_value": 1})
    assert bad.status_code == 422


def test_granular_usage_by_project(emulator: EmulatorServer, api: ApiClient) -> None:
    ws = new_workspace(api, emulator, "Billing WS")
    tenant_key = new_key(api, emulator.org_admin_key, tenant=ws)["key"]
    for _ in range(2):
        _trace(tenant_key, api, project="billed-a")
    _trace(tenant_key, api, project="billed-b")
    _trace(emulator.admin_key, api, project="default-ws-project")
    now = datetime.now(UTC)
    params = {
        "start_time": (now - timedelta(days=1)).isoformat(),
        "end_time": (now + timedelta(days=1)).isoformat(),
        "workspace_ids": [ws],
        "group_by": "project",
    }
    path = "/api/v1/orgs/current/billing/granular-usage"
    r = api.get(path, key=emulator.org_admin_key, org=emulator.org_id, params=params)
    assert r.status_code == 200
    usage = {u["dimensions"]["project_name"]: u["traces"] for u in r.json()["usage"]}
    assert usage == {"billed-a": 2, "billed-b": 1}
    assert r.json()["stride"] == {"days": 1, "hours": 0}

    by_ws = api.get(
        path,
        key=emulator.org_admin_key,
        org=emulator.org_id,
        params={**params, "group_by": "workspace", "workspace_ids": [ws, emulator.workspace_id]},
    ).json()
    assert sorted(u["traces"] for u in by_ws["usage"]) == [1, 3]
    # a workspace key may not read billing; missing params are 422
    assert (
        api.get(path, key=emulator.admin_key, org=emulator.org_id, params=params).status_code == 403
    )
    assert api.get(path, key=emulator.org_admin_key, org=emulator.org_id).status_code == 422
