"""Resource tags over raw HTTP and the SDK: tag keys, values, taggings, the tag reads, the
``tag_value_id`` filter on projects and ``tag_value_ids`` on project create. Every reply is
validated against the spec (conftest.ApiClient)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import langsmith

from devstack.langsmith_emulator import WORKSPACE_READER, EmulatorServer

from .conftest import ApiClient, new_key, new_workspace

KEYS = "/api/v1/workspaces/current/tag-keys"
TAGGINGS = "/api/v1/workspaces/current/taggings"


def _key(api: ApiClient, key: str, name: str, **kw: Any) -> dict[str, Any]:
    r = api.post(KEYS, key=key, json={"key": name, **kw})
    assert r.status_code == 200, r.text
    created: dict[str, Any] = r.json()
    return created


def _value(api: ApiClient, key: str, key_id: str, value: str) -> dict[str, Any]:
    r = api.post(f"{KEYS}/{key_id}/tag-values", key=key, json={"value": value})
    assert r.status_code == 200, r.text
    created: dict[str, Any] = r.json()
    return created


def _project(api: ApiClient, key: str, name: str, **body: Any) -> str:
    r = api.post("/api/v1/sessions", key=key, json={"name": name, **body})
    assert r.status_code == 200, r.text
    project_id: str = r.json()["id"]
    return project_id


def _tag(api: ApiClient, key: str, value_id: str, project_id: str) -> dict[str, Any]:
    body = {"tag_value_id": value_id, "resource_type": "project", "resource_id": project_id}
    r = api.post(TAGGINGS, key=key, json=body)
    assert r.status_code == 200, r.text
    created: dict[str, Any] = r.json()
    return created


def test_a_workspace_starts_with_langsmiths_default_keys(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    r = api.get(KEYS, key=emulator.admin_key)
    assert r.status_code == 200
    assert [k["key"] for k in r.json()] == ["Application", "Environment"]
    ws = new_workspace(api, emulator)
    r = api.get(KEYS, key=emulator.org_admin_key, tenant=ws)
    assert [k["key"] for k in r.json()] == ["Application", "Environment"]


def test_tag_key_lifecycle(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    created = _key(api, key, "tenant", description="the tenant a project belongs to")
    assert created["key"] == "tenant" and created["description"].startswith("the tenant")
    kid = created["id"]
    assert api.get(f"{KEYS}/{kid}", key=key).json() == created
    assert api.post(KEYS, key=key, json={"key": "tenant"}).status_code == 409
    r = api.patch(f"{KEYS}/{kid}", key=key, json={"description": None})
    assert r.status_code == 200 and r.json()["description"] is None and r.json()["key"] == "tenant"
    r = api.patch(f"{KEYS}/{kid}", key=key, json={"key": "customer"})
    assert r.status_code == 200 and r.json()["key"] == "customer"
    assert api.patch(f"{KEYS}/{kid}", key=key, json={"key": "Application"}).status_code == 409
    assert api.delete(f"{KEYS}/{kid}", key=key).status_code == 200
    assert api.get(f"{KEYS}/{kid}", key=key).status_code == 404
    assert api.delete(f"{KEYS}/{kid}", key=key).status_code == 404


def test_tag_key_validation(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    for body in ({}, {"key": ""}, {"key": "x" * 256}, {"key": 3}):
        assert api.post(KEYS, key=key, json=body).status_code == 422, body
    assert api.get(f"{KEYS}/not-a-uuid", key=key).status_code == 422
    assert api.get(f"{KEYS}/{uuid.uuid4()}", key=key).status_code == 404
    assert api.post(KEYS, json={"key": "k"}).status_code == 401


def test_tag_values_lifecycle(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    a = _value(api, key, kid, "acme")
    assert a["tag_key_id"] == kid and a["value"] == "acme"
    _value(api, key, kid, "globex")
    values = f"{KEYS}/{kid}/tag-values"
    assert [v["value"] for v in api.get(values, key=key).json()] == ["acme", "globex"]
    assert api.post(values, key=key, json={"value": "acme"}).status_code == 409
    assert api.post(values, key=key, json={"value": ""}).status_code == 422
    assert api.get(f"{values}/{a['id']}", key=key).json() == a
    r = api.patch(f"{values}/{a['id']}", key=key, json={"value": "acme-corp"})
    assert r.status_code == 200 and r.json()["value"] == "acme-corp"
    assert api.patch(f"{values}/{a['id']}", key=key, json={"value": "globex"}).status_code == 409
    # A value is reached through its own key only.
    other = _key(api, key, "region")["id"]
    assert api.get(f"{KEYS}/{other}/tag-values/{a['id']}", key=key).status_code == 404
    r = api.post(f"{KEYS}/{uuid.uuid4()}/tag-values", key=key, json={"value": "x"})
    assert r.status_code == 404
    assert api.delete(f"{values}/{a['id']}", key=key).status_code == 200
    assert api.get(f"{values}/{a['id']}", key=key).status_code == 404


def test_taggings_and_tag_reads(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    acme, globex = _value(api, key, kid, "acme"), _value(api, key, kid, "globex")
    p1, p2 = _project(api, key, "acme-traces"), _project(api, key, "globex-traces")
    t1 = _tag(api, key, acme["id"], p1)
    assert t1["resource_type"] == "project" and t1["resource_id"] == p1
    _tag(api, key, globex["id"], p2)

    body = {"tag_value_id": acme["id"], "resource_type": "project", "resource_id": p1}
    assert api.post(TAGGINGS, key=key, json=body).status_code == 409
    r = api.post(TAGGINGS, key=key, json={**body, "resource_id": str(uuid.uuid4())})
    assert r.status_code == 404
    r = api.post(TAGGINGS, key=key, json={**body, "tag_value_id": str(uuid.uuid4())})
    assert r.status_code == 404
    r = api.post(TAGGINGS, key=key, json={**body, "resource_type": "dataset"})
    assert r.status_code == 422  # the emulator holds no datasets
    assert api.post(TAGGINGS, key=key, json={**body, "resource_type": "nope"}).status_code == 422

    on_p1 = api.get(
        "/api/v1/workspaces/current/tags/resource",
        key=key,
        params={"resource_type": "project", "resource_id": p1},
    ).json()
    assert [k["key"] for k in on_p1] == ["tenant"]
    assert [v["value"] for v in on_p1[0]["values"]] == ["acme"]
    assert on_p1[0]["values"][0]["taggings"] == [t1]
    r = api.get(
        "/api/v1/workspaces/current/tags/resource",
        key=key,
        params={"resource_type": "bogus", "resource_id": p1},
    )
    assert r.status_code == 422

    both = api.post(
        "/api/v1/workspaces/current/tags/resources",
        key=key,
        json=[
            {"resource_type": "project", "resource_id": p1},
            {"resource_type": "project", "resource_id": p2},
        ],
    ).json()
    assert both[p1][0]["values"][0]["value"] == "acme"
    assert both[p2][0]["values"][0]["value"] == "globex"

    listed = api.get(TAGGINGS, key=key, params={"tag_value_id": acme["id"]}).json()
    assert len(listed) == 1 and listed[0]["tag_key"] == "tenant"
    assert listed[0]["resources"]["projects"] == [
        {"tagging_id": t1["id"], "resource_name": "acme-traces", "resource_id": p1}
    ]
    everything = api.get(TAGGINGS, key=key).json()
    assert {e["tag_value"] for e in everything} == {"acme", "globex"}
    assert api.get(TAGGINGS, key=key, params={"tag_value_id": str(uuid.uuid4())}).status_code == 404

    tags = api.get("/api/v1/workspaces/current/tags", key=key).json()
    tenant = next(k for k in tags if k["key"] == "tenant")
    assert [v["value"] for v in tenant["values"]] == ["acme", "globex"]

    assert api.delete(f"{TAGGINGS}/{t1['id']}", key=key).status_code == 200
    assert api.delete(f"{TAGGINGS}/{t1['id']}", key=key).status_code == 404
    r = api.get(
        "/api/v1/workspaces/current/tags/resource",
        key=key,
        params={"resource_type": "project", "resource_id": p1},
    )
    assert r.json() == []


def test_deletes_cascade(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    acme = _value(api, key, kid, "acme")
    p1, p2 = _project(api, key, "a1"), _project(api, key, "a2")
    _tag(api, key, acme["id"], p1)
    tagging = _tag(api, key, acme["id"], p2)
    # Deleting the project drops its taggings.
    assert api.delete(f"/api/v1/sessions/{p1}", key=key).status_code == 200
    listed = api.get(TAGGINGS, key=key, params={"tag_value_id": acme["id"]}).json()
    assert [r["resource_id"] for r in listed[0]["resources"]["projects"]] == [p2]
    # Deleting the key deletes its values and their taggings.
    assert api.delete(f"{KEYS}/{kid}", key=key).status_code == 200
    assert api.delete(f"{TAGGINGS}/{tagging['id']}", key=key).status_code == 404
    assert api.get(TAGGINGS, key=key).json() == []  # the default keys have no values


def test_project_list_filters_by_tag_value(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    acme, globex = _value(api, key, kid, "acme"), _value(api, key, kid, "globex")
    initech = _value(api, key, kid, "initech")
    pa, pg = _project(api, key, "pa"), _project(api, key, "pg")
    _project(api, key, "untagged")
    _tag(api, key, acme["id"], pa)
    _tag(api, key, globex["id"], pg)

    def names(*values: str) -> set[str]:
        r = api.get("/api/v1/sessions", key=key, params={"tag_value_id": list(values)})
        assert r.status_code == 200
        return {p["name"] for p in r.json()}

    assert names(acme["id"]) == {"pa"}
    assert names(acme["id"], globex["id"]) == {"pa", "pg"}  # any of the values
    assert names(initech["id"]) == set()
    assert names(str(uuid.uuid4())) == set()
    r = api.get("/api/v1/sessions", key=key, params={"tag_value_id": "nope"})
    assert r.status_code == 422


def test_project_create_applies_tag_value_ids(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    acme = _value(api, key, kid, "acme")
    pid = _project(api, key, "born-tagged", tag_value_ids=[acme["id"]])
    on = api.get(
        "/api/v1/workspaces/current/tags/resource",
        key=key,
        params={"resource_type": "project", "resource_id": pid},
    ).json()
    assert on[0]["values"][0]["value"] == "acme"
    # An unknown value refuses the whole create: no untagged project is left behind.
    r = api.post(
        "/api/v1/sessions",
        key=key,
        json={"name": "half", "tag_value_ids": [acme["id"], str(uuid.uuid4())]},
    )
    assert r.status_code == 404
    assert api.get("/api/v1/sessions", key=key, params={"name": "half"}).json() == []
    too_many = [acme["id"]] * 101
    r = api.post("/api/v1/sessions", key=key, json={"name": "many", "tag_value_ids": too_many})
    assert r.status_code == 422
    # upsert returns the existing project as it is: its tags are not changed.
    other = _value(api, key, kid, "other")
    r = api.post(
        "/api/v1/sessions",
        key=key,
        params={"upsert": True},
        json={"name": "born-tagged", "tag_value_ids": [other["id"]]},
    )
    assert r.status_code == 200 and r.json()["id"] == pid
    listed = api.get(TAGGINGS, key=key, params={"tag_value_id": other["id"]}).json()
    assert listed[0]["resources"]["projects"] == []


def test_sdk_create_project_with_tag_value_ids(
    emulator: EmulatorServer,
    api: ApiClient,
    sdk_client: Callable[..., langsmith.Client],
) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    acme = _value(api, key, kid, "acme")
    client = sdk_client(key)
    project = client.create_project("sdk-tagged", tag_value_ids=[acme["id"]])
    r = api.get("/api/v1/sessions", key=key, params={"tag_value_id": acme["id"]})
    assert [p["id"] for p in r.json()] == [str(project.id)]


def test_tags_are_per_workspace_and_need_workspaces_manage(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    ws = new_workspace(api, emulator)
    # Another workspace neither sees nor reaches this workspace's keys.
    okey = emulator.org_admin_key
    assert "tenant" not in {k["key"] for k in api.get(KEYS, key=okey, tenant=ws).json()}
    assert api.get(f"{KEYS}/{kid}", key=okey, tenant=ws).status_code == 404
    # A reader reads tags but cannot write them.
    reader = new_key(api, key, role_id=WORKSPACE_READER)["key"]
    assert api.get(KEYS, key=reader).status_code == 200
    assert api.get("/api/v1/workspaces/current/tags", key=reader).status_code == 200
    assert api.post(KEYS, key=reader, json={"key": "x"}).status_code == 403
    assert api.delete(f"{KEYS}/{kid}", key=reader).status_code == 403


def test_tag_operations_are_audited(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    kid = _key(api, key, "tenant")["id"]
    _value(api, key, kid, "acme")
    r = api.get(
        "/api/v1/audit-logs",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        params={
            "start_time": "2000-01-01T00:00:00Z",
            "end_time": "2100-01-01T00:00:00Z",
            "limit": 100,
        },
    )
    ops = [i["api"]["operation"] for i in r.json()["items"]]
    assert "create_tag_key" in ops and "create_tag_value" in ops
