"""Projects over raw HTTP: CRUD, 409, upsert, filters, paging, 422s, stats from ingested runs."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.langsmith_emulator import EmulatorServer

from .conftest import ApiClient


def _create(api: ApiClient, key: str, name: str, **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/sessions", key=key, json={"name": name, **body})
    assert r.status_code == 200, r.text
    project: dict[str, Any] = r.json()  # TracerSession
    return project


def test_duplicate_name_is_409_and_upsert_returns_existing(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    key = emulator.admin_key
    first = _create(api, key, "dup")
    r = api.post("/api/v1/sessions", key=key, json={"name": "dup"})
    assert r.status_code == 409
    assert r.json() == {"detail": "Session already exists."}
    r = api.post("/sessions?upsert=true", key=key, json={"name": "dup", "description": "new"})
    assert r.status_code == 200 and r.json()["id"] == first["id"]


def test_read_patch_delete(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _create(api, key, "crud", extra={"metadata": {"tier": "gold"}})
    other = _create(api, key, "crud-other")
    pid = project["id"]
    r = api.patch(f"/api/v1/sessions/{pid}", key=key, json={"description": "d", "name": "crud2"})
    assert r.status_code == 200 and r.json()["name"] == "crud2" and r.json()["description"] == "d"
    r = api.patch(f"/api/v1/sessions/{pid}", key=key, json={"name": "crud-other"})
    assert r.status_code == 409
    assert api.get(f"/api/v1/sessions/{pid}", key=key).json()["name"] == "crud2"
    assert api.delete(f"/api/v1/sessions/{pid}", key=key).status_code == 200
    assert api.get(f"/api/v1/sessions/{pid}", key=key).status_code == 404
    assert api.delete(f"/api/v1/sessions/{pid}", key=key).status_code == 404
    # the freed name can be used again
    _create(api, key, "crud2")
    r = api.delete(
        "/api/v1/sessions", key=key, params={"session_ids": [other["id"], str(uuid.uuid4())]}
    )
    assert r.status_code == 200
    assert api.get(f"/api/v1/sessions/{other['id']}", key=key).status_code == 404


def test_filters_and_paging(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    ids = [_create(api, key, f"page-{i:03d}")["id"] for i in range(25)]
    _create(api, key, "unrelated")
    r = api.get("/api/v1/sessions", key=key, params={"name": "page-007"})
    assert [p["id"] for p in r.json()] == [ids[7]]
    r = api.get("/api/v1/sessions", key=key, params={"name_contains": "PAGE-01"})
    assert sorted(p["name"] for p in r.json()) == [f"page-{i:03d}" for i in range(10, 20)]
    r = api.get("/api/v1/sessions", key=key, params={"id": [ids[1], ids[2]]})
    assert sorted(p["id"] for p in r.json()) == sorted([ids[1], ids[2]])

    seen = []
    offset = 0
    while True:
        page = api.get(
            "/api/v1/sessions",
            key=key,
            params={"name_contains": "page-", "limit": 10, "offset": offset},
        ).json()
        seen += [p["id"] for p in page]
        if len(page) < 10:
            break
        offset += 10
    assert sorted(seen) == sorted(ids) and len(seen) == 25
    r = api.get(
        "/api/v1/sessions", key=key, params={"sort_by": "name", "sort_by_desc": False, "limit": 2}
    )
    assert [p["name"] for p in r.json()] == ["page-000", "page-001"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"limit": "ten"},
        {"sort_by": "nope"},
        {"metadata": "not json"},
        {"id": "not-a-uuid"},
    ],
)
def test_bad_query_is_422(
    emulator: EmulatorServer, api: ApiClient, params: dict[str, str | int]
) -> None:
    r = api.get("/api/v1/sessions", key=emulator.admin_key, params=params)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, list) and {"loc", "msg", "type"} <= set(detail[0])


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"name": 5}',
        b'{"name": "x", "id": "nope"}',
        b"[1, 2]",
        b'{"name": "x", "trace_tier": "forever"}',
    ],
)
def test_bad_body_is_422(emulator: EmulatorServer, api: ApiClient, body: bytes) -> None:
    r = api.post(
        "/api/v1/sessions",
        key=emulator.admin_key,
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list)


def test_auth_comes_before_validation(api: ApiClient) -> None:
    r = api.get("/api/v1/sessions", params={"limit": 0})
    assert r.status_code == 401


def _run(
    session_id: str,
    start: datetime,
    *,
    parent: dict[str, Any] | None = None,
    error: str | None = None,
    tokens: tuple[int, int] = (0, 0),
    cost: float | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": "r",
        "run_type": "llm" if parent else "chain",
        "inputs": {"q": 1},
        "outputs": {"a": 2},
        "start_time": start.isoformat(),
        "end_time": (end or start + timedelta(seconds=1)).isoformat(),
        "session_id": session_id,
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
    }
    if parent:
        run["parent_run_id"] = parent["id"]
        run["trace_id"] = parent["id"]
    if error:
        run["error"] = error
    if cost is not None:
        run["total_cost"] = cost
    return run


def test_include_stats_and_stats_start_time(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _create(api, key, "stats")
    now = datetime.now(UTC)
    old = now - timedelta(days=10)
    root1 = _run(project["id"], old)
    child1 = _run(project["id"], old, parent=root1, tokens=(10, 5), cost=0.25)
    root2 = _run(project["id"], now, error="failed")
    child2 = _run(project["id"], now, parent=root2, tokens=(1, 1), cost=0.5)
    r = api.post("/runs/batch", key=key, json={"post": [root1, child1, root2, child2]})
    assert r.status_code == 202

    stats = api.get(
        f"/api/v1/sessions/{project['id']}", key=key, params={"include_stats": True}
    ).json()
    assert stats["run_count"] == 2
    assert stats["total_tokens"] == 17 and stats["prompt_tokens"] == 11
    assert stats["total_cost"] == "0.75"
    assert stats["error_rate"] == pytest.approx(0.5)
    assert stats["latency_p50"] == pytest.approx(1.0)
    assert stats["last_run_start_time"].startswith(now.isoformat()[:19])

    listed = api.get(
        "/api/v1/sessions",
        key=key,
        params={
            "include_stats": "true",
            "stats_start_time": (now - timedelta(days=1)).isoformat(),
            "name": "stats",
        },
    ).json()[0]
    assert listed["run_count"] == 1 and listed["total_tokens"] == 2
    assert listed["error_rate"] == 1.0

    plain = api.get(f"/api/v1/sessions/{project['id']}", key=key).json()
    assert plain["run_count"] is None


def test_runs_stats_endpoint(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    project = _create(api, key, "rs")
    now = datetime.now(UTC)
    root = _run(project["id"], now)
    child = _run(project["id"], now, parent=root, tokens=(3, 4))
    assert api.post("/runs/batch", key=key, json={"post": [root, child]}).status_code == 202
    body = {"session": [project["id"]], "is_root": True}
    r = api.post("/api/v1/runs/stats", key=key, json=body)
    assert r.status_code == 200 and r.json()["run_count"] == 1
    r = api.post("/api/v1/runs/stats", key=key, json={"session": [project["id"]]})
    assert r.json()["run_count"] == 2 and r.json()["total_tokens"] == 7
    window = {"session": [project["id"]], "start_time": (now + timedelta(hours=1)).isoformat()}
    assert api.post("/api/v1/runs/stats", key=key, json=window).json()["run_count"] == 0
    grouped = api.post(
        "/api/v1/runs/stats",
        key=key,
        json={"session": [project["id"]], "group_by": {"attribute": "run_type"}},
    ).json()
    assert grouped["llm"]["run_count"] == 1 and grouped["chain"]["run_count"] == 1
    r = api.post("/api/v1/runs/stats", key=key, json={"session": [str(uuid.uuid4())]})
    assert r.status_code == 404


def test_single_run_post_patch_and_get(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    run_id = str(uuid.uuid4())
    start = datetime.now(UTC)
    r = api.post(
        "/runs",
        key=key,
        json={
            "id": run_id,
            "name": "one",
            "run_type": "tool",
            "session_name": "singles",
            "start_time": start.isoformat(),
            "inputs": {"x": 1},
        },
    )
    assert r.status_code == 202
    assert api.post("/runs", key=key, json={"id": run_id, "name": "one"}).status_code == 409
    run = api.get(f"/api/v1/runs/{run_id}", key=key).json()
    assert run["status"] == "pending" and run["end_time"] is None
    r = api.patch(
        f"/runs/{run_id}",
        key=key,
        json={"end_time": (start + timedelta(seconds=3)).isoformat(), "outputs": {"y": 2}},
    )
    assert r.status_code == 202
    r = api.patch(f"/api/v1/runs/{run_id}", key=key, json={"extra": {"metadata": {"a": 1}}})
    assert r.status_code == 200
    run = api.get(f"/runs/{run_id}", key=key).json()
    assert run["status"] == "success" and run["outputs"] == {"y": 2}
    assert run["extra"]["metadata"] == {"a": 1}
    assert api.get(f"/api/v1/runs/{uuid.uuid4()}", key=key).status_code == 404
    bad = api.post("/runs", key=key, content=b"{oops", headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and "error" in bad.json()
    bad = api.post("/runs", key=key, json={"id": str(uuid.uuid4()), "run_type": "weird"})
    assert bad.status_code == 422


def test_ten_thousand_projects_stats_page_is_fast(emulator: EmulatorServer, api: ApiClient) -> None:
    """A stats page of 100 projects reads only those projects' runs."""
    store = emulator.store
    ws = store.workspaces[emulator.workspace_id]
    with store.lock:
        for i in range(10_000):
            store.create_project(ws, f"bulk-{i:05d}")
    hot = api.get("/api/v1/sessions", key=emulator.admin_key, params={"name": "bulk-09999"})
    hot_id = hot.json()[0]["id"]
    now = datetime.now(UTC)
    posts = [_run(hot_id, now + timedelta(milliseconds=i)) for i in range(2000)]
    assert api.post("/runs/batch", key=emulator.admin_key, json={"post": posts}).status_code == 202

    started = time.perf_counter()
    for offset in (0, 5000, 9900):
        page = api.get(
            "/api/v1/sessions",
            key=emulator.admin_key,
            params={"include_stats": True, "limit": 100, "offset": offset},
        )
        assert page.status_code == 200 and len(page.json()) == 100
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0, elapsed
