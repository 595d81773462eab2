"""API keys and the auth model: 401/403/404/422 and what each kind of key reaches."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from devstack.langsmith_emulator import WORKSPACE_READER, EmulatorServer

from .conftest import ApiClient, key_records, new_key, new_workspace
from .spec import SpecMismatch, validate

KEY_RE = re.compile(r"^lsv2_sk_[0-9a-f]{32}_[0-9a-f]{10}$")


def test_created_key_format_and_secret_only_once(emulator: EmulatorServer, api: ApiClient) -> None:
    created = new_key(api, emulator.admin_key, description="tenant-x")
    assert KEY_RE.match(created["key"])
    assert created["short_key"] == "lsv2_sk_..." + created["key"][-4:]
    assert created["workspace_names"] == ["Default Workspace"]

    listing = api.get("/api/v1/api-key", key=emulator.admin_key)
    assert listing.status_code == 200
    assert created["key"] not in listing.text
    entry = next(k for k in listing.json() if k["id"] == created["id"])
    assert "key" not in entry and entry["description"] == "tenant-x"

    dump = emulator.control.keys()
    assert created["key"] not in str(dump) and emulator.admin_key not in str(dump)
    assert emulator.control.state()["keys"]
    assert created["key"] not in str(emulator.control.state())


def test_unprefixed_paths_serve_the_same_handlers(emulator: EmulatorServer, api: ApiClient) -> None:
    a = api.get("/api-key", key=emulator.admin_key)
    b = api.get("/api/v1/api-key", key=emulator.admin_key)
    assert a.status_code == b.status_code == 200
    assert [k["id"] for k in a.json()] == [k["id"] for k in b.json()]
    assert api.get("/info").json() == api.get("/api/v1/info").json()


def test_last_used_at_is_updated(emulator: EmulatorServer, api: ApiClient) -> None:
    created = new_key(api, emulator.admin_key)
    assert created["last_used_at"] is None
    assert api.get("/api/v1/sessions", key=created["key"]).status_code == 200
    entry = next(
        k
        for k in api.get("/api/v1/api-key", key=emulator.admin_key).json()
        if k["id"] == created["id"]
    )
    assert entry["last_used_at"] is not None


@pytest.mark.parametrize("header", [None, "", "lsv2_sk_" + "0" * 32 + "_" + "0" * 10])
def test_missing_or_unknown_key_is_401(api: ApiClient, header: str | None) -> None:
    r = api.get("/api/v1/sessions", headers={} if header is None else {"X-API-Key": header})
    assert r.status_code == 401
    assert "detail" in r.json()


def test_header_name_is_case_insensitive(emulator: EmulatorServer, api: ApiClient) -> None:
    r = api.get("/api/v1/sessions", headers={"X-API-KEY": emulator.admin_key})
    assert r.status_code == 200


def test_deleted_key_is_401_at_once_and_delete_is_404_after(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    created = new_key(api, emulator.admin_key)
    r = api.delete(f"/api/v1/api-key/{created['id']}", key=emulator.admin_key)
    assert r.status_code == 200 and r.json()["id"] == created["id"]
    assert api.get("/api/v1/sessions", key=created["key"]).status_code == 401
    again = api.delete(f"/api/v1/api-key/{created['id']}", key=emulator.admin_key)
    assert again.status_code == 404
    record = next(k for k in key_records(emulator) if k["id"] == created["id"])
    assert record["deleted"] and record["deleted_at"]


def test_unknown_key_id_is_404_and_bad_id_is_422(emulator: EmulatorServer, api: ApiClient) -> None:
    r = api.delete("/api/v1/api-key/6f1c8a52-0d4e-4b8e-9a57-3c2f0e7d1b90", key=emulator.admin_key)
    assert r.status_code == 404
    r = api.delete("/api/v1/api-key/not-a-uuid", key=emulator.admin_key)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list)


def test_expired_key_is_401(emulator: EmulatorServer, api: ApiClient) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = new_key(api, emulator.admin_key, expires_at=expires)
    assert created["expires_at"] is not None
    assert api.get("/api/v1/sessions", key=created["key"]).status_code == 200
    emulator.control.advance_clock(3601)
    assert api.get("/api/v1/sessions", key=created["key"]).status_code == 401
    record = next(k for k in key_records(emulator) if k["id"] == created["id"])
    assert record["expired"] and not record["active"]


def test_expires_at_in_the_past_is_422(emulator: EmulatorServer, api: ApiClient) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = api.post("/api/v1/api-key", key=emulator.admin_key, json={"expires_at": past})
    assert r.status_code == 422


def test_workspace_key_with_another_workspace_is_403(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    other = new_workspace(api, emulator)
    r = api.get("/api/v1/sessions", key=emulator.admin_key, tenant=other)
    assert r.status_code == 403
    # naming its own workspace is fine
    assert api.get("/api/v1/sessions", key=emulator.admin_key, tenant=emulator.workspace_id)


def test_workspace_key_sees_nothing_of_another_workspace(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    other = new_workspace(api, emulator)
    other_key = new_key(api, emulator.org_admin_key, tenant=other)
    project = api.post("/api/v1/sessions", key=other_key["key"], json={"name": "theirs"}).json()
    assert api.get(f"/api/v1/sessions/{project['id']}", key=emulator.admin_key).status_code == 404
    names = [p["name"] for p in api.get("/api/v1/sessions", key=emulator.admin_key).json()]
    assert "theirs" not in names
    # cannot delete their key either
    r = api.delete(f"/api/v1/api-key/{other_key['id']}", key=emulator.admin_key)
    assert r.status_code == 404
    # nor ingest into their project by id
    r = api.post(
        "/runs",
        key=emulator.admin_key,
        json={
            "id": "0b3c0f55-4d1e-4d8e-8f0e-3b7f6f1f2a11",
            "name": "x",
            "run_type": "chain",
            "session_id": project["id"],
        },
    )
    assert r.status_code == 403 and "error" in r.json()


def test_org_key_needs_x_tenant_id_on_workspace_resources(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    r = api.get("/api/v1/sessions", key=emulator.org_admin_key)
    assert r.status_code == 403
    assert r.json()["error"] == "org_scoped_key_requires_workspace"
    r = api.get("/api/v1/sessions", key=emulator.org_admin_key, tenant=emulator.workspace_id)
    assert r.status_code == 200


def test_scoped_org_key_reaches_only_its_workspaces(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    ws_a, ws_b = new_workspace(api, emulator, "A"), new_workspace(api, emulator, "B")
    r = api.post(
        "/api/v1/orgs/current/service-keys",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        json={"description": "scoped", "workspaces": [ws_a]},
    )
    assert r.status_code == 200
    scoped = r.json()
    assert scoped["workspace_names"] == ["A"]
    assert api.get("/api/v1/sessions", key=scoped["key"], tenant=ws_a).status_code == 200
    assert api.get("/api/v1/sessions", key=scoped["key"], tenant=ws_b).status_code == 403
    listed = api.get("/api/v1/workspaces", key=scoped["key"], org=emulator.org_id).json()
    assert [w["id"] for w in listed] == [ws_a]
    # not an org admin: cannot mint org keys or create workspaces
    r = api.post(
        "/api/v1/workspaces", key=scoped["key"], org=emulator.org_id, json={"display_name": "nope"}
    )
    assert r.status_code == 403


def test_org_paths_require_matching_organization_header(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    path = "/api/v1/orgs/current/service-keys"
    assert api.get(path, key=emulator.org_admin_key).status_code == 403
    wrong = "11111111-2222-3333-4444-555555555555"
    assert api.get(path, key=emulator.org_admin_key, org=wrong).status_code == 403
    r = api.get(path, key=emulator.org_admin_key, org=emulator.org_id)
    assert r.status_code == 200
    assert [k["id"] for k in r.json()] == [emulator.org_admin_key_id]
    # a workspace key is not an org admin
    assert api.get(path, key=emulator.admin_key, org=emulator.org_id).status_code == 403


def test_service_key_create_and_delete(emulator: EmulatorServer, api: ApiClient) -> None:
    path = "/api/v1/orgs/current/service-keys"
    r = api.post(path, key=emulator.org_admin_key, org=emulator.org_id, json={})
    assert r.status_code == 200
    created = r.json()
    assert KEY_RE.match(created["key"]) and created["workspace_names"] is None
    # org-wide but ORG_USER by default: reaches workspaces, not org admin paths
    assert api.get("/api/v1/sessions", key=created["key"], tenant=emulator.workspace_id)
    assert api.get(path, key=created["key"], org=emulator.org_id).status_code == 403
    r = api.delete(f"{path}/{created['id']}", key=emulator.org_admin_key, org=emulator.org_id)
    assert r.status_code == 200
    assert (
        api.get("/api/v1/sessions", key=created["key"], tenant=emulator.workspace_id).status_code
        == 401
    )
    r = api.delete(f"{path}/{created['id']}", key=emulator.org_admin_key, org=emulator.org_id)
    assert r.status_code == 404


def test_reader_key_cannot_write(emulator: EmulatorServer, api: ApiClient) -> None:
    reader = new_key(api, emulator.admin_key, role_id=WORKSPACE_READER)
    assert api.get("/api/v1/sessions", key=reader["key"]).status_code == 200
    r = api.post("/api/v1/sessions", key=reader["key"], json={"name": "x"})
    assert r.status_code == 403
    r = api.post("/api/v1/api-key", key=reader["key"], json={})
    assert r.status_code == 403


def test_workspace_key_cannot_create_workspaces(emulator: EmulatorServer, api: ApiClient) -> None:
    r = api.post(
        "/api/v1/workspaces",
        key=emulator.admin_key,
        org=emulator.org_id,
        json={"display_name": "x"},
    )
    assert r.status_code == 403


def test_deleting_a_workspace_revokes_its_keys(emulator: EmulatorServer, api: ApiClient) -> None:
    ws = new_workspace(api, emulator)
    key = new_key(api, emulator.org_admin_key, tenant=ws)
    r = api.delete(f"/api/v1/workspaces/{ws}", key=emulator.org_admin_key, tenant=ws)
    assert r.status_code == 200
    assert api.get("/api/v1/sessions", key=key["key"]).status_code == 401
    assert api.get("/api/v1/sessions", key=emulator.org_admin_key, tenant=ws).status_code == 403


def test_spec_validator_rejects_a_wrong_body() -> None:
    with pytest.raises(SpecMismatch):
        validate("GET", "/api/v1/api-key", 200, [{"id": "not-a-uuid", "short_key": "x"}])
    with pytest.raises(SpecMismatch):
        validate("GET", "/sessions", 200, {"not": "an array"})
    assert validate("GET", "/api/v1/info", 200, {"version": "1"}) == "/api/v1/info"
