"""The real ``langsmith`` SDK against the emulator: projects, tracing, runs and stats.

Runs are read with ``client.runs.query()`` (the /v2 API), which replaces the deprecated
``Client.list_runs``; the suite turns the SDK's deprecation warnings into errors (conftest)."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import langsmith
import pytest
from langsmith import traceable
from langsmith._internal._beta_decorator import LangSmithDeprecationWarning
from langsmith.utils import (
    LangSmithAuthError,
    LangSmithConflictError,
    LangSmithNotFoundError,
    LangSmithUserError,
)

from devstack.langsmith_emulator import EmulatorServer

from .conftest import ApiClient, new_key, new_workspace, query_runs

ALL_RUN_FIELDS = ["ID", "NAME", "RUN_TYPE", "START_TIME", "ERROR", "PARENT_RUN_IDS", "TRACE_ID"]


def _window() -> dict[str, datetime]:
    """An explicit query window around now (the default would be the last day)."""
    now = datetime.now(UTC)
    return {"min_start_time": now - timedelta(hours=1), "max_start_time": now + timedelta(hours=1)}


@traceable(run_type="llm", name="answer")
def _llm(question: str) -> dict[str, Any]:
    return {
        "answer": question.upper(),
        "usage_metadata": {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12},
    }


@traceable(run_type="chain", name="pipeline")
def _pipeline(question: str) -> str:
    answer: str = _llm(question)["answer"]
    return answer


@traceable(run_type="chain", name="broken")
def _broken() -> None:
    raise RuntimeError("boom")


def test_create_read_list_projects(
    emulator: EmulatorServer, sdk_client: Callable[..., langsmith.Client]
) -> None:
    client = sdk_client(emulator.admin_key)
    project = client.create_project("tenant-alpha", description="a", metadata={"tenant": "alpha"})
    assert project.name == "tenant-alpha"
    assert str(project.tenant_id) == emulator.workspace_id

    again = client.read_project(project_name="tenant-alpha")
    assert again.id == project.id
    assert client.read_project(project_id=project.id).name == "tenant-alpha"

    client.create_project("tenant-beta")
    names = {p.name for p in client.list_projects()}
    assert {"tenant-alpha", "tenant-beta"} <= names
    assert [p.name for p in client.list_projects(name_contains="alph")] == ["tenant-alpha"]
    assert [p.name for p in client.list_projects(metadata={"tenant": "alpha"})] == ["tenant-alpha"]

    with pytest.raises(LangSmithConflictError):
        client.create_project("tenant-alpha")
    assert client.create_project("tenant-alpha", upsert=True).id == project.id

    with pytest.raises(LangSmithNotFoundError):
        client.read_project(project_name="does-not-exist")
    client.delete_project(project_name="tenant-beta")
    assert not client.has_project("tenant-beta")


def test_tracing_lands_in_tenant_project_and_counts(
    emulator: EmulatorServer, api: ApiClient, sdk_client: Callable[..., langsmith.Client]
) -> None:
    tenant_key = new_key(api, emulator.admin_key)["key"]
    client = sdk_client(tenant_key)
    client.create_project("tenant-1")

    with langsmith.tracing_context(enabled=True, client=client, project_name="tenant-1"):
        for i in range(4):
            _pipeline(f"q{i}")
        with pytest.raises(RuntimeError):
            _broken()
    client.flush()

    project = client.read_project(project_name="tenant-1", include_stats=True)
    assert project.run_count == 5  # root runs (traces)
    assert project.total_tokens == 4 * 12
    assert project.prompt_tokens == 4 * 7
    assert project.error_rate == pytest.approx(1 / 5)
    assert project.last_run_start_time is not None

    pid = str(project.id)
    runs = query_runs(client, project_ids=[pid], selects=ALL_RUN_FIELDS, **_window())
    assert len(runs) == 9  # 4 pipelines + 4 llm children + 1 broken
    assert {r.name for r in runs} == {"pipeline", "answer", "broken"}
    roots = query_runs(client, project_ids=[pid], is_root=True, selects=ALL_RUN_FIELDS, **_window())
    assert len(roots) == 5
    errored = [r for r in roots if r.error]
    assert len(errored) == 1 and "boom" in errored[0].error
    child = next(r for r in runs if r.name == "answer")
    assert child.parent_run_ids and child.trace_id != child.id
    assert child.run_type == "LLM"

    async def retrieve() -> str | None:
        run = await client.runs.retrieve(
            child.id, project_id=pid, start_time=child.start_time, selects=["NAME"]
        )
        return run.name

    assert asyncio.run(retrieve()) == "answer"

    stats = client.get_run_stats(project_names=["tenant-1"], is_root=True)
    assert stats["run_count"] == 5
    assert client.get_run_stats(project_names=["tenant-1"])["run_count"] == 9

    counts = emulator.control.request_counts()
    assert counts["by_route"].get("POST /api/v1/runs/multipart", 0) >= 1


def test_auto_created_project_lives_in_the_keys_workspace(
    emulator: EmulatorServer, api: ApiClient, sdk_client: Callable[..., langsmith.Client]
) -> None:
    ws = new_workspace(api, emulator, "Tenant Two")
    key = new_key(api, emulator.org_admin_key, tenant=ws)["key"]
    client = sdk_client(key)
    with langsmith.tracing_context(enabled=True, client=client, project_name="auto-made"):
        _pipeline("hello")
    client.flush()

    project = client.read_project(project_name="auto-made", include_stats=True)
    assert str(project.tenant_id) == ws
    assert project.run_count == 1
    # The default workspace's admin sees nothing of it.
    admin = sdk_client(emulator.admin_key)
    with pytest.raises(LangSmithNotFoundError):
        admin.read_project(project_name="auto-made")


def test_workspace_key_reads_every_project_of_its_workspace(
    emulator: EmulatorServer, api: ApiClient, sdk_client: Callable[..., langsmith.Client]
) -> None:
    """The Cloud limitation: a tenant's workspace key reaches its neighbours' projects."""
    key_a = new_key(api, emulator.admin_key, description="tenant a")["key"]
    key_b = new_key(api, emulator.admin_key, description="tenant b")["key"]
    client_a, client_b = sdk_client(key_a), sdk_client(key_b)
    with langsmith.tracing_context(enabled=True, client=client_a, project_name="proj-a"):
        _pipeline("secret of a")
    client_a.flush()
    project_a = client_b.read_project(project_name="proj-a")
    runs_seen_by_b = query_runs(
        client_b, project_ids=[str(project_a.id)], selects=["INPUTS"], **_window()
    )
    assert any(r.inputs.get("question") == "secret of a" for r in runs_seen_by_b)


def test_stats_start_time_filters(
    emulator: EmulatorServer, sdk_client: Callable[..., langsmith.Client]
) -> None:
    client = sdk_client(emulator.admin_key)
    project = client.create_project("windowed")
    old = datetime.now(UTC) - timedelta(days=3)
    for start in (old, datetime.now(UTC)):
        client.create_run(
            "r",
            inputs={},
            run_type="chain",
            project_name="windowed",
            start_time=start,
            end_time=start + timedelta(seconds=2),
            id=uuid.uuid4(),
        )
    client.flush()
    assert client.read_project(project_id=project.id, include_stats=True).run_count == 2
    stats = client.get_run_stats(
        project_ids=[project.id], start_time=(old + timedelta(days=1)).isoformat()
    )
    assert stats["run_count"] == 1
    assert stats["latency_p50"] == pytest.approx(2.0)


def test_org_scoped_key_without_workspace_raises_user_error(
    emulator: EmulatorServer, sdk_client: Callable[..., langsmith.Client]
) -> None:
    client = sdk_client(emulator.org_admin_key)
    with pytest.raises(LangSmithUserError, match="org-scoped"):
        client.create_project("needs-a-workspace")
    scoped = sdk_client(emulator.org_admin_key, workspace_id=emulator.workspace_id)
    assert scoped.create_project("with-workspace").name == "with-workspace"


def test_deleted_key_is_refused_by_the_sdk(
    emulator: EmulatorServer, api: ApiClient, sdk_client: Callable[..., langsmith.Client]
) -> None:
    created = new_key(api, emulator.admin_key)
    client = sdk_client(created["key"])
    client.create_project("before-delete")
    r = api.delete(f"/api/v1/api-key/{created['id']}", key=emulator.admin_key)
    assert r.status_code == 200
    with pytest.raises(LangSmithAuthError):
        client.read_project(project_name="before-delete")


def test_runs_query_follows_cursor_pages(
    emulator: EmulatorServer, api: ApiClient, sdk_client: Callable[..., langsmith.Client]
) -> None:
    project = api.post(
        "/api/v1/sessions", key=emulator.admin_key, json={"name": "many-runs"}
    ).json()
    now = datetime.now(UTC)
    posts = [
        {
            "id": str(uuid.uuid4()),
            "name": f"run-{i}",
            "run_type": "chain",
            "inputs": {"i": i},
            "start_time": (now + timedelta(milliseconds=i)).isoformat(),
            "end_time": (now + timedelta(milliseconds=i + 1)).isoformat(),
            "session_id": project["id"],
        }
        for i in range(230)
    ]
    r = api.post("/runs/batch", key=emulator.admin_key, json={"post": posts})
    assert r.status_code == 202
    client = sdk_client(emulator.admin_key)
    runs = query_runs(client, project_ids=[project["id"]], selects=["ID", "NAME"], **_window())
    assert len(runs) == 230
    assert len({r.id for r in runs}) == 230
    assert runs[0].name == "run-229"  # newest first
    assert emulator.control.request_counts()["by_route"]["POST /api/v2/runs/query"] == 3


def test_langsmith_deprecations_are_errors_in_this_suite() -> None:
    with pytest.raises(LangSmithDeprecationWarning):
        warnings.warn("read with client.runs.query()", LangSmithDeprecationWarning, stacklevel=1)
