"""Rotation through Prefect: the flow's states, batches and artifacts, the locks across runs,
and the CLI. The protocol itself is tested in tests/core/test_rotate.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import boto3
import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.events import Event
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.states import State

import flows.rotation as rotation_flow
from devstack.stack import LocalStack
from flows.rotation import rotate_keys
from tasks.locks import lock_name, tenant_locks
from tenant_keys.events import KeyRotatedEvent, tenant_resource
from tenant_keys.layout import CURRENT
from tenant_keys.services import get_services, reset_services
from tests.integration.revoke_helpers import wait_for
from tests.integration.tenants import onboard_directly
from tests.invariants import assert_finished, assert_no_orphans, current_key_works, live_tool_keys

pytestmark = pytest.mark.usefixtures("stack")

DELETE_KEY = "/api/v1/api-key/{api_key_id}"


def _onboarded(tenant_id: str) -> str:
    [result] = onboard_directly([tenant_id])
    assert result.key_id
    return result.key_id


def _labels(tenant_id: str) -> set[str]:
    state = get_services().store.describe(tenant_id)
    return {label for labels in state.versions.values() for label in labels}


def test_rotation_replaces_the_key_and_deletes_the_old_one(
    stack: LocalStack, tenant_id: str
) -> None:
    old_key = _onboarded(tenant_id)
    old_record = get_services().store.read(tenant_id)

    state = rotate_keys([tenant_id], rotation_id="r-happy", return_state=True)

    assert state.is_completed(), state.message
    record = get_services().store.read(tenant_id)
    assert record.key_id != old_key and record.rotation_id == "r-happy"
    assert current_key_works(tenant_id)
    assert not get_services().langsmith.authenticates(old_record.api_key), (
        "the old key must be dead"
    )
    assert_finished(tenant_id)
    assert live_tool_keys(stack, tenant_id) == {record.key_id}


def test_each_rotated_tenant_has_its_event_related_to_the_run_and_its_batch(
    tenant_id: str,
) -> None:
    """A batch sends its tenants' events in one request: still one event per tenant, about the
    tenant, with its new key id, related to the flow run and the batch's task run."""
    ids = [f"{tenant_id}-{n}" for n in range(3)]
    onboard_directly(ids)

    state = rotate_keys(ids, rotation_id="r-events", return_state=True)

    assert state.is_completed(), state.message
    batch = _task_run(state, "rotate-")
    for t in ids:
        [event] = wait_for(partial(_events, KeyRotatedEvent.NAME, t), 30, f"{t}'s event")
        assert event.payload["key_id"] == get_services().store.read(t).key_id
        assert event.payload["rotation_id"] == "r-events"
        related = {r.id for r in event.related}
        assert f"prefect.flow-run.{state.state_details.flow_run_id}" in related
        assert f"prefect.task-run.{batch.id}" in related
        assert batch.start_time and batch.end_time
        assert batch.start_time <= event.occurred <= batch.end_time


def test_events_prefect_refuses_leave_the_rotation_done_and_say_so_in_the_log(
    tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mock for the fault: the Prefect server refusing the batch's events while it still
    # serves the run's own calls cannot be provoked on the real server.
    def refuse(events: Any) -> None:
        raise httpx.ConnectError("events refused")

    monkeypatch.setattr(rotation_flow, "emit_batch", refuse)
    onboard_directly([tenant_id])

    state = rotate_keys([tenant_id], rotation_id="r-no-events", return_state=True)

    assert state.is_completed(), state.message
    assert get_services().store.read(tenant_id).rotation_id == "r-no-events"
    line = f"batch {tenant_id}: 1 event(s) not sent to Prefect: events refused"
    wait_for(lambda: line in _run_log(state), 30, "the log line of the unsent events")


def test_the_projects_listed_ahead_answer_a_tenants_first_question(
    stack: LocalStack, tenant_id: str
) -> None:
    onboard_directly([tenant_id])
    reset_services()
    services = get_services()
    project_id = services.store.read(tenant_id).project_id

    rotation_flow._list_projects_ahead(services)
    stack.langsmith.control.reset_request_counts()
    services.ownership.project(tenant_id, project_id, None)

    assert "GET /api/v1/sessions" not in stack.langsmith.control.request_counts()["by_route"]


def test_a_failed_listing_ahead_is_left_to_the_tenants_own_questions(
    stack: LocalStack, tenant_id: str
) -> None:
    onboard_directly([tenant_id])
    reset_services()
    services = get_services()
    stack.langsmith.control.inject_fault(
        method="GET", route="/api/v1/sessions", status=403, count=None
    )
    try:
        rotation_flow._list_projects_ahead(services)  # refused: nothing raised, nothing kept
    finally:
        stack.langsmith.control.clear_faults()
    project_id = services.store.read(tenant_id).project_id

    assert services.ownership.project(tenant_id, project_id, None).id == project_id


def _run_log(state: State) -> str:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    return "\n".join(log.message for log in logs)


def _events(name: str, tenant_id: str) -> list[Event]:
    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(name=[name]),
                resource=EventResourceFilter(
                    id=[tenant_resource(tenant_id)["prefect.resource.id"]]
                ),
            ),
            limit=10,
        )
    return list(page.events)


def test_one_failing_tenant_does_not_stop_the_others(stack: LocalStack, tenant_id: str) -> None:
    ids = [f"{tenant_id}-{n}" for n in range(3)]
    onboard_directly(ids)
    broken = ids[1]
    # Someone edits the tenant's secret into bad JSON.
    sm = boto3.client("secretsmanager", endpoint_url=stack.moto.url, region_name="us-east-1")
    sm.put_secret_value(SecretId=get_services().store.name(broken), SecretString="{not json")

    state = rotate_keys(ids, rotation_id="r-many", return_state=True)

    assert state.is_failed()
    assert "2 of 3 tenant(s) ok, 1 failed" in (state.message or "") and broken in (
        state.message or ""
    )
    for t in (ids[0], ids[2]):
        assert get_services().store.read(t).rotation_id == "r-many"
        assert current_key_works(t)


def test_the_next_batch_starts_while_the_last_one_finishes_and_the_limit_holds(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 4 with 4 tenants in flight: the second batch does not wait for the first
    one's slowest tenant, and never more than 4 tenants are in flight."""
    ids = [f"{tenant_id}-{n}" for n in range(8)]
    onboard_directly(ids)
    monkeypatch.setenv("TENANT_KEYS_MAX_CONCURRENCY", "4")
    reset_services()
    guard, in_flight, peak = threading.Lock(), [0], [0]
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    real_rotate = rotation_flow.rotate

    def timed_rotate(services: Any, tenant: str, *args: Any, **kwargs: Any) -> Any:
        with guard:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            started[tenant] = time.monotonic()
        try:
            if tenant == ids[0]:
                time.sleep(2.0)  # the first batch's slowest tenant
            return real_rotate(services, tenant, *args, **kwargs)
        finally:
            with guard:
                in_flight[0] -= 1
                ended[tenant] = time.monotonic()

    monkeypatch.setattr(rotation_flow, "rotate", timed_rotate)  # the real protocol, timed

    state = rotate_keys(ids, rotation_id="r-overlap", return_state=True)

    assert state.is_completed(), state.message
    assert peak[0] == 4
    second_batch = ids[4:]
    assert min(started[t] for t in second_batch) < ended[ids[0]], "the batches did not overlap"
    assert all(get_services().store.read(t).rotation_id == "r-overlap" for t in ids)


def test_a_lock_held_past_the_wait_fails_the_batch_visibly_and_touches_nothing(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"{tenant_id}-{n}" for n in range(2)]  # one batch: its locks go under one lease
    onboard_directly(ids)
    store = get_services().store
    keys = {t: store.read(t).key_id for t in ids}
    monkeypatch.setenv("TENANT_KEYS_LOCK_WAIT_SECONDS", "2")
    reset_services()
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:  # another run, stuck on one tenant of the batch
        with tenant_locks().hold([ids[1]]):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert held.wait(30)
        state = rotate_keys(ids, rotation_id="r-locked", return_state=True)
    finally:
        release.set()
        holder.join()
        monkeypatch.delenv("TENANT_KEYS_LOCK_WAIT_SECONDS")
        reset_services()

    assert state.is_failed() and "0 of 2 tenant(s) ok, 2 failed" in (state.message or "")
    assert {t: store.read(t).key_id for t in ids} == keys, "no tenant of the batch was touched"
    for t in ids:
        assert live_tool_keys(stack, t) == {keys[t]}
    # In the UI, the batch's task run is Failed and names its tenants.
    batch = _task_run(state, "rotate-")
    assert batch.state is not None and batch.state.is_failed()
    assert all(t in (batch.state.message or "") for t in ids), batch.state.message


def test_a_tenant_whose_lock_is_gone_gets_it_back_and_is_rotated(tenant_id: str) -> None:
    """The rotation lists no locks before its batches: a lease that misses a tenant's lock
    (a tenant from before locks, a lock deleted by hand) creates it and leases again."""
    _onboarded(tenant_id)
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(lock_name(tenant_id))

        state = rotate_keys([tenant_id], rotation_id="r-lock-gone", return_state=True)

        assert state.is_completed(), state.message
        assert client.read_global_concurrency_limit_by_name(lock_name(tenant_id)).limit == 1
    assert get_services().store.read(tenant_id).rotation_id == "r-lock-gone"


def test_a_batch_task_that_breaks_fails_each_of_its_tenants(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"{tenant_id}-{n}" for n in range(2)]
    onboard_directly(ids)
    keys = {t: get_services().store.read(t).key_id for t in ids}

    # The lock server failing with a 500 cannot be provoked on the local stack: patched.
    class BrokenLocks:
        @contextmanager
        def hold(self, tenant_ids: list[str], *, create_missing: bool) -> Iterator[None]:
            raise RuntimeError("lock server answered 500")
            yield

    monkeypatch.setattr(rotation_flow, "tenant_locks", BrokenLocks)

    state = rotate_keys(ids, rotation_id="r-broken-batch", return_state=True)

    assert state.is_failed() and "0 of 2 tenant(s) ok, 2 failed" in (state.message or "")
    assert {t: get_services().store.read(t).key_id for t in ids} == keys
    batch = _task_run(state, "rotate-")
    assert batch.state is not None and "lock server answered 500" in (batch.state.message or "")


def _task_run(state: State, prefix: str) -> TaskRun:
    """The flow run's task run named `prefix...`, once the server recorded its final state."""
    flow_run_id = state.state_details.flow_run_id
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            found = [r for r in runs if r.name.startswith(prefix)]
            if found and found[0].state and found[0].state.is_final():
                return found[0]
            assert time.monotonic() < deadline, f"no final task run {prefix}*: {runs}"
            time.sleep(0.5)


def test_two_concurrent_rotations_of_one_tenant_serialise(
    stack: LocalStack, tenant_id: str
) -> None:
    _onboarded(tenant_id)
    states: dict[str, State] = {}

    def run(rotation_id: str) -> None:
        states[rotation_id] = rotate_keys([tenant_id], rotation_id=rotation_id, return_state=True)

    threads = [threading.Thread(target=run, args=(r,)) for r in ("r-a", "r-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(s.is_completed() for s in states.values()), {r: s.message for r, s in states.items()}
    record = get_services().store.read(tenant_id)
    assert record.rotation_id in ("r-a", "r-b")
    assert current_key_works(tenant_id)
    assert live_tool_keys(stack, tenant_id) == {record.key_id}
    assert_finished(tenant_id)
    assert len(get_services().store.describe(tenant_id).versions) == 2  # AWSCURRENT and AWSPREVIOUS


def test_dry_run_changes_nothing(stack: LocalStack, tenant_id: str) -> None:
    key = _onboarded(tenant_id)
    before = stack.langsmith.control.request_counts()["total"]
    state = rotate_keys([tenant_id], dry_run=True, return_state=True)
    assert state.is_completed() and "1 tenant(s) would be rotated" in (state.message or "")
    assert get_services().store.read(tenant_id).key_id == key
    assert stack.langsmith.control.request_counts()["total"] == before
    assert CURRENT in _labels(tenant_id)


def test_cli_rotates_several_tenants_with_a_progress_bar(stack: LocalStack, tenant_id: str) -> None:
    from typer.testing import CliRunner

    from tenant_keys.cli import app

    ids = [f"{tenant_id}-{n}" for n in range(3)]
    onboard_directly(ids)
    before = {t: get_services().store.read(t).key_id for t in ids}

    result = CliRunner().invoke(app, ["rotate", *ids, "--rotation-id", "r-cli"])

    assert result.exit_code == 0, result.output
    assert "3 of 3 tenant(s) ok" in result.output
    assert all(get_services().store.read(t).key_id != before[t] for t in ids)
    bad = CliRunner().invoke(app, ["rotate", "Not_A_Slug"])
    assert bad.exit_code == 2 and "lowercase slug" in bad.output


def test_with_a_grace_window_the_old_key_is_retired_after_it(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key = _onboarded(tenant_id)
    monkeypatch.setenv("TENANT_KEYS_GRACE_SECONDS", "2")
    reset_services()
    try:
        store = get_services().store
        state = rotate_keys([tenant_id], rotation_id="r-grace", return_state=True)
        assert state.is_completed(), state.message
        assert old_key not in live_tool_keys(stack, tenant_id), "retired once the grace passed"
        assert_finished(tenant_id)
        assert store.read(tenant_id).rotation_id == "r-grace"
    finally:
        monkeypatch.delenv("TENANT_KEYS_GRACE_SECONDS")
        reset_services()
    assert_no_orphans(stack, tenant_id)
