"""``POST /api/v2/runs/query`` and ``GET /api/v2/runs/{id}`` over raw HTTP: paging, bounds, the
default window, selects, filters, errors (RFC 7807) and the workspace rules. Every response is
validated against the spec by the ``api`` fixture."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.langsmith_emulator import EmulatorServer
from devstack.langsmith_emulator.openapi import enum_values
from devstack.langsmith_emulator.runs_v2 import FIELDS

from .conftest import ApiClient, new_key, new_workspace

QUERY = "/api/v2/runs/query"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def _project(api: ApiClient, key: str, tenant: str | None = None, **body: Any) -> str:
    r = api.post(
        "/api/v1/sessions", key=key, tenant=tenant, json={"name": uuid.uuid4().hex, **body}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _run(project: str, start: datetime, **fields: Any) -> dict[str, Any]:
    run_id = str(uuid.uuid4())
    return {
        "id": run_id,
        "name": "run",
        "run_type": "chain",
        "inputs": {"q": "hi"},
        "start_time": start.isoformat(),
        "session_id": project,
        **fields,
    }


def _ingest(
    api: ApiClient, key: str, runs: list[dict[str, Any]], tenant: str | None = None
) -> None:
    r = api.post("/runs/batch", key=key, tenant=tenant, json={"post": runs})
    assert r.status_code == 202, r.text


def _window(**delta: float) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "min_start_time": (now - timedelta(hours=delta.get("hours", 1))).isoformat(),
        "max_start_time": (now + timedelta(minutes=1)).isoformat(),
    }


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | {"remedy"}
    assert body["status"] == status and body["instance"] == QUERY
    return body


def test_cursor_paging_both_orders(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _project(api, key)
    now = datetime.now(UTC)
    runs = [_run(project, now - timedelta(seconds=i), name=f"r{i}") for i in range(25)]
    _ingest(api, key, runs)

    def pages(order: str) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"project_ids": [project], "page_size": 10, "sort_order": order}
        out = []
        while True:
            page = api.post(QUERY, key=key, json={**body, **_window()}).json()
            out.append(page)
            if not page["has_more"]:
                return out
            body["cursor"] = page["next_cursor"]

    desc = pages("DESC")
    assert [len(p["items"]) for p in desc] == [10, 10, 5]
    assert "next_cursor" not in desc[-1]  # omitted on the final page
    ids = [item["id"] for p in desc for item in p["items"]]
    assert ids == [r["id"] for r in runs]  # newest first, each once
    asc = [item["id"] for p in pages("ASC") for item in p["items"]]
    assert asc == ids[::-1]


def test_page_size_bounds(emulator: EmulatorServer, api: ApiClient) -> None:
    project = _project(api, emulator.admin_key)
    _ingest(api, emulator.admin_key, [_run(project, datetime.now(UTC)) for _ in range(3)])
    for size, status in [(1, 200), (1000, 200), (0, 400), (1001, 400), ("ten", 400)]:
        r = api.post(
            QUERY, key=emulator.admin_key, json={"project_ids": [project], "page_size": size}
        )
        if status == 200:
            assert isinstance(size, int)
            assert r.status_code == 200 and len(r.json()["items"]) == min(size, 3)
        else:
            assert "page_size" in _problem(r, status)["detail"]
    r = api.post(QUERY, key=emulator.admin_key, json={"project_ids": [project]})
    assert len(r.json()["items"]) == 3  # default 100


def test_default_window_is_the_last_day_until_now(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _project(api, key)
    now = datetime.now(UTC)
    old, recent, future = (
        _run(project, now - timedelta(days=2)),
        _run(project, now - timedelta(hours=20)),
        _run(project, now + timedelta(hours=1)),
    )
    _ingest(api, key, [old, recent, future])

    def ids(**body: Any) -> set[str]:
        r = api.post(QUERY, key=key, json={"project_ids": [project], **body})
        assert r.status_code == 200, r.text
        return {item["id"] for item in r.json()["items"]}

    assert ids() == {recent["id"]}
    assert ids(min_start_time=(now - timedelta(days=3)).isoformat()) == {old["id"], recent["id"]}
    assert ids(max_start_time=(now + timedelta(hours=2)).isoformat()) == {
        recent["id"],
        future["id"],
    }
    # the default follows the emulator's clock
    emulator.control.advance_clock(2 * 3600)
    assert ids() == {recent["id"], future["id"]}


def test_selects(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _project(api, key)
    start = datetime.now(UTC) - timedelta(minutes=5)
    run = _run(
        project,
        start,
        end_time=(start + timedelta(seconds=2)).isoformat(),
        outputs={"a": "yo"},
        tags=["t1"],
        extra={"metadata": {"tenant": "a"}},
        prompt_tokens=3,
        completion_tokens=4,
    )
    _ingest(api, key, [run])
    body = {"project_ids": [project], **_window()}

    item = api.post(QUERY, key=key, json=body).json()["items"][0]
    assert item == {"id": run["id"]}  # only ID by default

    chosen = ["NAME", "STATUS", "LATENCY_SECONDS", "TAGS", "METADATA", "TOTAL_TOKENS"]
    item = api.post(QUERY, key=key, json={**body, "selects": chosen}).json()["items"][0]
    assert item == {
        "name": "run",
        "status": "SUCCESS",
        "latency_seconds": 2.0,
        "tags": ["t1"],
        "metadata": {"tenant": "a"},
        "total_tokens": 7,
    }
    everything = api.post(QUERY, key=key, json={**body, "selects": sorted(FIELDS)})
    assert everything.status_code == 200  # and valid against query.RunResponse (api fixture)
    assert everything.json()["items"][0]["run_type"] == "CHAIN"

    r = api.post(QUERY, key=key, json={**body, "selects": ["name"]})  # upper case only
    assert "remedy" in _problem(r, 400)


def test_select_fields_are_the_specs() -> None:
    assert set(FIELDS) == enum_values("query.RunSelectField")


def test_filters(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _project(api, key)
    now = datetime.now(UTC) - timedelta(minutes=1)
    root = _run(project, now, run_type="chain")
    trace, root_order = root["id"], f"{now:%Y%m%dT%H%M%S%fZ}{root['id']}"
    root.update(trace_id=trace, dotted_order=root_order)
    child = _run(
        project,
        now + timedelta(seconds=1),
        run_type="llm",
        trace_id=trace,
        parent_run_id=trace,
        dotted_order=f"{root_order}.{now + timedelta(seconds=1):%Y%m%dT%H%M%S%fZ}",
        error="boom",
    )
    child["dotted_order"] += child["id"]
    other = _run(project, now + timedelta(seconds=2), run_type="tool")
    _ingest(api, key, [root, child, other])

    def ids(**filters: Any) -> set[str]:
        body = {"project_ids": [project], **_window(), **filters}
        r = api.post(QUERY, key=key, json=body)
        assert r.status_code == 200, r.text
        return {item["id"] for item in r.json()["items"]}

    assert ids(is_root=True) == {root["id"], other["id"]}
    assert ids(is_root=False) == {child["id"]}
    assert ids(has_error=True) == {child["id"]}
    assert ids(has_error=False) == {root["id"], other["id"]}
    assert ids(trace_id=trace) == {root["id"], child["id"]}
    assert ids(run_type="LLM") == {child["id"]}
    assert ids(ids=[other["id"], str(uuid.uuid4())]) == {other["id"]}
    assert ids(ids=[other["id"]], is_root=False) == set()


def test_reference_dataset_resolves_its_sessions(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    dataset = str(uuid.uuid4())
    started = datetime.now(UTC) - timedelta(days=3)
    experiment = _project(api, key, reference_dataset_id=dataset, start_time=started.isoformat())
    _project(api, key)  # not an experiment of that dataset
    old = _run(experiment, started + timedelta(hours=1))  # older than the default day
    _ingest(api, key, [old])
    r = api.post(QUERY, key=key, json={"reference_dataset_id": dataset})
    assert [item["id"] for item in r.json()["items"]] == [old["id"]]
    r = api.post(QUERY, key=key, json={"reference_dataset_id": str(uuid.uuid4())})
    assert r.json() == {"items": [], "has_more": False}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({}, 400, "exactly one"),
        ({"project_ids": []}, 400, "exactly one"),
        ({"reference_dataset_id": "{uuid}", "project_ids": ["{project}"]}, 400, "exactly one"),
        ({"project_ids": ["not-a-uuid"]}, 422, "UUID"),
        ({"project_ids": ["{uuid}"]}, 404, "not found"),
        ({"project_ids": ["{project}"], "filter": 'eq(name, "x")'}, 400, "filter"),
        ({"project_ids": ["{project}"], "run_type": "llm"}, 400, "run_type"),
        ({"project_ids": ["{project}"], "sort_order": "NEWEST"}, 400, "sort_order"),
        ({"project_ids": ["{project}"], "cursor": "%%%"}, 400, "cursor"),
        (
            {
                "project_ids": ["{project}"],
                "min_start_time": "2026-01-02T00:00:00Z",
                "max_start_time": "2026-01-01T00:00:00Z",
            },
            400,
            "after",
        ),
    ],
)
def test_errors_are_problem_details(
    emulator: EmulatorServer, api: ApiClient, body: dict[str, Any], status: int, needle: str
) -> None:
    project = _project(api, emulator.admin_key)

    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        if value == "{uuid}":
            return str(uuid.uuid4())
        return project if value == "{project}" else value

    r = api.post(QUERY, key=emulator.admin_key, json={k: fill(v) for k, v in body.items()})
    assert needle in _problem(r, status)["detail"]


def test_malformed_json_is_400(emulator: EmulatorServer, api: ApiClient) -> None:
    r = api.post(
        QUERY,
        key=emulator.admin_key,
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    _problem(r, 400)


def test_auth_and_workspace_rules(emulator: EmulatorServer, api: ApiClient) -> None:
    ws = new_workspace(api, emulator)
    okey, admin = emulator.org_admin_key, emulator.admin_key
    theirs = _project(api, okey, tenant=ws)
    _ingest(api, okey, [_run(theirs, datetime.now(UTC))], tenant=ws)
    body = {"project_ids": [theirs], **_window()}

    _problem(api.post(QUERY, json=body), 401)
    _problem(api.post(QUERY, key="lsv2_sk_" + "0" * 32 + "_" + "0" * 10, json=body), 401)
    # another workspace's project is not found; naming that workspace is forbidden
    assert "not found" in _problem(api.post(QUERY, key=admin, json=body), 404)["detail"]
    _problem(api.post(QUERY, key=admin, tenant=ws, json=body), 403)
    # an org key needs X-Tenant-Id, then reads that workspace
    _problem(api.post(QUERY, key=okey, json=body), 403)
    assert len(api.post(QUERY, key=okey, tenant=ws, json=body).json()["items"]) == 1
    # a reader key of that workspace reads it too; a key scoped elsewhere does not
    reader = new_key(api, okey, tenant=ws, read_only=True)["key"]
    assert len(api.post(QUERY, key=reader, json=body).json()["items"]) == 1
    scoped = api.post(
        "/api/v1/orgs/current/service-keys",
        key=okey,
        org=emulator.org_id,
        json={"workspaces": [emulator.workspace_id]},
    ).json()["key"]
    _problem(api.post(QUERY, key=scoped, tenant=ws, json=body), 403)


def test_both_path_forms_and_route_name(emulator: EmulatorServer, api: ApiClient) -> None:
    project = _project(api, emulator.admin_key)
    for path in (QUERY, "/v2/runs/query"):
        r = api.post(path, key=emulator.admin_key, json={"project_ids": [project]})
        assert r.status_code == 200 and r.json() == {"items": [], "has_more": False}
    assert emulator.control.request_counts()["by_route"]["POST /api/v2/runs/query"] == 2


def test_retrieve_one_run(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _project(api, key)
    run = _run(project, datetime.now(UTC) - timedelta(minutes=1))
    _ingest(api, key, [run])
    path = f"/api/v2/runs/{run['id']}"
    params = {"project_id": project, "start_time": run["start_time"], "selects": ["ID", "NAME"]}
    r = api.get(path, key=key, params=params)
    assert r.status_code == 200 and r.json() == {"id": run["id"], "name": "run"}
    wrong_time = {**params, "start_time": "2026-01-01T00:00:00Z"}
    assert api.get(path, key=key, params=wrong_time).status_code == 404
    assert api.get(path, key=key, params={**params, "project_id": "x"}).status_code == 422
    missing = {k: v for k, v in params.items() if k != "start_time"}
    assert api.get(path, key=key, params=missing).json()["status"] == 400
