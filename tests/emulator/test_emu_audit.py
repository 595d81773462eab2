"""GET /api/v1/audit-logs: OCSF API Activity records of key creation, deletion and use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack.langsmith_emulator import EmulatorServer
from devstack.langsmith_emulator.app import served_routes
from devstack.langsmith_emulator.audit import OPERATIONS
from devstack.langsmith_emulator.openapi import enum_values
from devstack.langsmith_emulator.testing_controls import normalize_route

from .conftest import ApiClient, key_records, new_key, new_workspace

AUDIT = "/api/v1/audit-logs"


def _window(**params: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return {"start_time": start.isoformat(), "end_time": end.isoformat(), **params}


def _logs(api: ApiClient, emulator: Any, **params: Any) -> list[dict[str, Any]]:
    r = api.get(AUDIT, key=emulator.org_admin_key, org=emulator.org_id, params=_window(**params))
    assert r.status_code == 200, r.text  # and a ListAuditLogsOCSFResponse (api fixture)
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _message(item: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = item["unmapped"]["original_audit_log"]
    return message


def test_key_created_used_and_deleted(emulator: EmulatorServer, api: ApiClient) -> None:
    created = new_key(api, emulator.admin_key, description="tenant a")
    assert api.get("/api/v1/workspaces/current/stats", key=created["key"]).status_code == 200
    r = api.delete(f"/api/v1/api-key/{created['id']}", key=emulator.admin_key)
    assert r.status_code == 200

    items = _logs(api, emulator, limit=100)
    ops = [(_message(i)["operation_name"], _message(i)["api_key_id"]) for i in items]
    assert ops == [
        ("create_api_key", emulator.admin_key_id),
        ("get_workspace_stats", created["id"]),  # the new key, used
        ("delete_api_key", emulator.admin_key_id),
    ]
    create, use, delete = items
    assert create["type_uid"] == 600301 and create["activity_name"] == "Create"
    assert delete["type_uid"] == 600304 and use["activity_id"] == 2
    assert create["api"]["operation"] == "create_api_key"
    assert create["actor"]["user"]["credential_uid"] == emulator.admin_key_id
    assert {"uid": created["id"]} in create["resources"]
    assert {"uid": created["id"]} in delete["resources"]
    assert create["http_request"] == {"http_method": "POST", "url": {"path": "/api/v1/api-key"}}
    message = _message(create)
    assert message["operation_succeeded"] is True and create["status"] == "Success"
    assert message["organization_id"] == emulator.org_id
    assert message["workspace_id"] == emulator.workspace_id
    assert message["enrichments"]["response_status_code"] == 200
    times = [i["time"] for i in items]
    assert times == sorted(times)  # oldest first, epoch milliseconds
    assert abs(times[0] / 1000 - datetime.now(UTC).timestamp()) < 60


def test_service_keys_and_a_refused_mint(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    r = api.post("/api/v1/orgs/current/service-keys", key=okey, org=org, json={})
    service = r.json()
    api.delete(f"/api/v1/orgs/current/service-keys/{service['id']}", key=okey, org=org)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = api.post("/api/v1/api-key", key=emulator.admin_key, json={"expires_at": past})
    assert r.status_code == 422

    items = _logs(api, emulator)
    assert [_message(i)["operation_name"] for i in items] == [
        "create_service_key",
        "delete_service_key",
        "create_api_key",
    ]
    assert _message(items[0])["workspace_id"] is None  # an org-level operation
    refused = items[2]
    assert _message(refused)["operation_succeeded"] is False
    assert refused["status_id"] == 2 and refused["http_response"] == {"code": 422}


def test_what_leaves_no_record_and_what_does(emulator: EmulatorServer, api: ApiClient) -> None:
    ctl = emulator.control
    api.get("/api/v1/workspaces/current/stats")  # no key: 401
    api.get("/api/v1/workspaces/current/stats", key="lsv2_sk_" + "1" * 32 + "_" + "1" * 10)
    ctl.inject_fault(method="POST", route="/api/v1/api-key", status=503)  # never reached
    assert api.post("/api/v1/api-key", key=emulator.admin_key, json={}).status_code == 503
    ctl.configure(rate_limits={"default": 0})
    assert api.get("/api/v1/usage-limits", key=emulator.admin_key).status_code == 429
    ctl.configure(rate_limits=False)
    assert _logs(api, emulator) == []
    # reading the log is audited too (after the answer, so not in that answer)
    assert [_message(i)["operation_name"] for i in _logs(api, emulator)] == ["get_audit_logs"]
    # a key created whose response was lost is in the log, with the key's id
    ctl.inject_fault(method="POST", route="/api/v1/api-key", action="drop", when="after")
    with pytest.raises(httpx.RemoteProtocolError):
        api.http.post("/api/v1/api-key", headers={"x-api-key": emulator.admin_key}, json={})
    (item,) = _logs(api, emulator, operations=["create_api_key"])
    lost = [k for k in key_records(emulator) if k["created_by_key_id"] == emulator.admin_key_id]
    assert _message(item)["operation_succeeded"] is True
    assert item["resources"] == [{"uid": lost[0]["id"]}]


def test_filters_window_and_paging(emulator: EmulatorServer, api: ApiClient) -> None:
    ws = new_workspace(api, emulator, "Audited")
    for _ in range(12):
        new_key(api, emulator.admin_key)
    new_key(api, emulator.org_admin_key, tenant=ws)

    only = _logs(api, emulator, operations=["create_workspace"])
    assert [_message(i)["operation_name"] for i in only] == ["create_workspace"]
    in_ws = _logs(api, emulator, workspace_id=ws, limit=100)
    assert [_message(i)["operation_name"] for i in in_ws] == ["create_api_key"]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = _window(limit=5, operations=["create_api_key"])
        if cursor:
            params["cursor"] = cursor
        r = api.get(AUDIT, key=emulator.org_admin_key, org=emulator.org_id, params=params)
        body = r.json()
        seen += [i["metadata"]["uid"] for i in body["items"]]
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 13

    later = datetime.now(UTC) + timedelta(hours=1)
    params = {"start_time": later.isoformat(), "end_time": (later + timedelta(hours=1)).isoformat()}
    r = api.get(AUDIT, key=emulator.org_admin_key, org=emulator.org_id, params=params)
    assert r.json() == {"items": [], "cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"end_time": "2026-01-01T00:00:00Z"},  # start_time is required
        {"start_time": "2026-01-01T00:00:00Z"},  # end_time too
        _window(limit=0),
        _window(limit=101),
        _window(operations=["made_up"]),
        _window(cursor="%%%"),
        _window(workspace_id="x"),
    ],
)
def test_bad_queries_are_422(
    emulator: EmulatorServer, api: ApiClient, params: dict[str, Any]
) -> None:
    r = api.get(AUDIT, key=emulator.org_admin_key, org=emulator.org_id, params=params)
    assert r.status_code == 422


def test_only_org_admins_read_it(emulator: EmulatorServer, api: ApiClient) -> None:
    assert api.get(AUDIT, key=emulator.org_admin_key, params=_window()).status_code == 403
    r = api.get(AUDIT, key=emulator.admin_key, org=emulator.org_id, params=_window())
    assert r.status_code == 403
    member = api.post(
        "/api/v1/orgs/current/service-keys",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        json={},
    ).json()["key"]  # org-wide, ORGANIZATION_USER
    assert api.get(AUDIT, key=member, org=emulator.org_id, params=_window()).status_code == 403


def test_audited_operations_are_served_and_in_the_spec() -> None:
    served = {f"{m} {normalize_route(path)}" for path, methods in served_routes() for m in methods}
    assert set(OPERATIONS) <= served
    assert {op for op, _ in OPERATIONS.values()} <= enum_values("AuditLogOperation")
