"""Rotation of one tenant's key or every tenant's: the Prefect shell of `tenant_keys.rotation`.

Task granularity: one task per batch of tenants, which takes the batch's locks under one
lease and runs each tenant's protocol in a thread of its own. A task per tenant made the
Prefect server the busiest process of a fan-out (37 ms of its CPU per tenant, more than
Secrets Manager and LangSmith together): the task runs, their state events and a lease per
tenant. The fan-out streams: tenants are listed page by page and fed to the batches as they
come, and results are tallied as they finish, so memory does not grow with the tenants. The
batch's task ends Failed and names its failed tenants; every tenant's outcome is a log line
of its task and its events go to Prefect in one request per batch (`emit_batch`); the run
keeps a summary table, the failures and a link to those lines. The
protocol retries its own calls, never through Prefect retries, so compensation stays explicit.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext, suppress
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Literal
from uuid import UUID

import httpx
from prefect import State, Task, flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run
from prefect.settings import PREFECT_UI_URL
from prefect.states import Completed, Failed

from flows.slots import Slots
from tasks.events import emit_batch
from tasks.locks import tenant_locks
from tasks.runs import scheduled_rotation_id
from tenant_keys.errors import LockUnavailable, TenantKeysError
from tenant_keys.events import TenantEvent
from tenant_keys.models import validate_rotation_id
from tenant_keys.rotation import RotationResult, RotationTally, retire, rotate, rotation_targets
from tenant_keys.services import Services, get_services

# Tenants per task and per lock lease: small enough that a lock wait on one tenant of the
# batch costs seconds, large enough that Prefect's per-task work is spread thin.
BATCH = 32

# One fan-out's tenants in flight, across its batches. Batches overlap, so the next one has
# its locks and waits at the door while the last one's slowest tenants finish: a batch ends
# with its slowest tenant, and without the overlap the tenants in flight averaged half
# the limit. The batch that took its locks first is served first.
_tenant_slots: contextvars.ContextVar[Slots | None] = contextvars.ContextVar(
    "tenant_slots", default=None
)


def _batch_run_name() -> str:
    ids: list[str] = task_run.parameters["tenant_ids"]
    prefix = task_run.task_name.split("-")[0]
    return f"{prefix}-{ids[0]}" if len(ids) == 1 else f"{prefix}-{ids[0]}..{ids[-1]}"


@task(
    name="rotate-batch", task_run_name=_batch_run_name, cache_policy=NO_CACHE, persist_result=False
)
def rotate_batch(tenant_ids: list[str], rotation_id: str, retire_now: bool) -> State:
    """Rotate a batch of tenants under one lease of their locks, each tenant in a thread."""
    services = get_services()
    return _for_each_locked(
        tenant_ids,
        rotation_id,
        lambda tenant_id: rotate(services, tenant_id, rotation_id, retire_now=retire_now),
    )


@task(
    name="retire-batch", task_run_name=_batch_run_name, cache_policy=NO_CACHE, persist_result=False
)
def retire_batch(tenant_ids: list[str], rotation_id: str, old_key_ids: dict[str, str]) -> State:
    """Retire the keys a batch of rotated tenants replaced, once their grace window has passed."""
    services = get_services()
    return _for_each_locked(
        tenant_ids,
        rotation_id,
        lambda tenant_id: retire(services, tenant_id, rotation_id, old_key_ids[tenant_id]),
    )


def _for_each_locked(
    tenant_ids: list[str], rotation_id: str, work: Callable[[str], RotationResult]
) -> State:
    """`work` for every tenant at once under one lease; a tenant's failure is its own result.
    The task ends Failed, naming its failed tenants, if any failed; the flow reads every
    tenant's result from the state's data either way."""
    logger = get_run_logger()

    slots = _tenant_slots.get()
    events: list[tuple[TenantEvent, datetime]] = []

    def one(tenant_id: str, locked_at: float) -> RotationResult:
        with slots.hold((locked_at, tenant_id)) if slots else nullcontext():
            result = work(tenant_id)
        finished = datetime.now(UTC)
        events.extend((event, finished) for event in result.events)
        log = logger.error if result.failed else logger.info
        log(
            "tenant=%s rotation=%s outcome=%s old_key_id=%s new_key_id=%s%s",
            tenant_id,
            rotation_id,
            result.outcome,
            result.old_key_id,
            result.new_key_id,
            f" error={result.error}" if result.error else "",
        )
        return result

    try:
        with (
            tenant_locks().hold(tenant_ids, create_missing=True),
            ThreadPoolExecutor(len(tenant_ids)) as pool,
        ):
            locked_at = time.monotonic()
            runs = [
                pool.submit(contextvars.copy_context().run, one, t, locked_at) for t in tenant_ids
            ]
            results = [run.result() for run in runs]
    except LockUnavailable as exc:
        logger.error("batch %s: %s", tenant_ids[0], exc)
        results = [_failed(t, rotation_id, str(exc)) for t in tenant_ids]
    try:
        emit_batch(events)
    except httpx.HTTPError as exc:
        logger.error(
            "batch %s: %d event(s) not sent to Prefect: %s", tenant_ids[0], len(events), exc
        )
    failed = [r for r in results if r.failed]
    if failed:
        names = ", ".join(f"{r.tenant_id} ({r.outcome})" for r in failed)
        return Failed(message=f"{len(failed)} of {len(results)} failed: {names}", data=results)
    return Completed(message=f"{len(results)} ok", data=results)


def _failed(tenant_id: str, rotation_id: str, error: str) -> RotationResult:
    return RotationResult(
        tenant_id=tenant_id, outcome="failed", rotation_id=rotation_id, error=error
    )


def _batches(tenant_ids: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(tenant_ids)
    while batch := list(islice(it, size)):
        yield batch


def _run_batches(
    batch_task: Task[..., State],
    tenant_ids: Iterable[str],
    rotation_id: str,
    on_result: Callable[[RotationResult], None],
    **options: Any,
) -> None:
    """Run `batch_task` over the tenants as they come, BATCH at a time, with at most
    `max_concurrency` tenants in flight; `on_result` for every tenant as its batch finishes."""
    in_flight = get_services().settings.max_concurrency
    size = min(BATCH, in_flight)
    workers = 2 * max(1, in_flight // size)
    _tenant_slots.set(Slots(in_flight))

    def run(batch: list[str]) -> list[RotationResult]:
        state = batch_task(batch, rotation_id, return_state=True, **options)
        data = state.result(raise_on_failure=False)
        if isinstance(data, list):
            return data
        # The task itself broke (not one of its tenants): every tenant of the batch failed.
        return [_failed(t, rotation_id, state.message or "batch failed") for t in batch]

    def collect(done: Iterable[Future[list[RotationResult]]]) -> None:
        for future in done:
            for result in future.result():
                on_result(result)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        running: set[Future[list[RotationResult]]] = set()
        for batch in _batches(tenant_ids, size):
            if len(running) >= workers:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                collect(done)
            running.add(pool.submit(contextvars.copy_context().run, run, batch))
        collect(wait(running).done)


@flow(name="rotate-keys")
def rotate_keys(
    tenants: list[str] | Literal["all"] = "all",
    rotation_id: str | None = None,
    dry_run: bool = False,
) -> State:
    """Rotate the named tenants' keys (or every tenant's). One failing tenant never stops the
    others."""
    services = get_services()
    targets = rotation_targets(services, tenants)
    rotation_id = validate_rotation_id(rotation_id) if rotation_id else scheduled_rotation_id()
    if dry_run:
        return _dry_run(targets, rotation_id)

    if tenants == "all" and services.settings.isolation != "workspace":
        threading.Thread(target=_list_projects_ahead, args=(services,), daemon=True).start()
    grace = services.settings.grace_seconds
    progress = create_progress_artifact(
        0.0, key="rotation-progress", description=f"Rotation {rotation_id}: tenants done"
    )
    assert isinstance(progress, UUID)  # called from a sync flow: the sync variant ran
    listed = 0

    def counted() -> Iterator[str]:
        nonlocal listed
        for tenant_id in targets:
            listed += 1
            yield tenant_id

    tally = RotationTally()
    reported = 0.0

    def on_result(result: RotationResult) -> None:
        nonlocal reported
        tally.add(result, keep_replaced=grace > 0)
        share = 100.0 * tally.total / max(listed, 1)
        if share - reported >= 5 or tally.total == listed:
            update_progress_artifact(progress, share)
            reported = share

    _run_batches(rotate_batch, counted(), rotation_id, on_result, retire_now=grace == 0)
    if grace > 0:
        _retire_after_grace(tally, grace, rotation_id)
    return _finish(tally, rotation_id)


def _list_projects_ahead(services: Services) -> None:
    """Every tenant's first step asks whether its project is its own: for a rotation of every
    tenant, the shared workspace's listing is taken while the flow lists tenants and takes
    locks, not after the first tenants asked."""
    with suppress(TenantKeysError):  # the tenants' own questions take it again, visibly
        services.ownership.list_projects_ahead(None)


def _retire_after_grace(tally: RotationTally, grace: float, rotation_id: str) -> None:
    """One wait for the whole fan-out (every tenant was promoted before it), then the retires."""
    if not tally.replaced:
        return
    time.sleep(grace)

    def on_result(result: RotationResult) -> None:
        if result.failed:  # the tenant rotated, but its old key lives on: it fails visibly
            tally.counts["rotated"] -= 1
            tally.add(result, keep_replaced=False)

    _run_batches(
        retire_batch, list(tally.replaced), rotation_id, on_result, old_key_ids=tally.replaced
    )


def _finish(tally: RotationTally, rotation_id: str) -> State:
    """The run's record: a summary table, the failures, and where every tenant's line is."""
    create_table_artifact(
        key="rotation",
        table=[{"outcome": o, "tenants": n} for o, n in sorted(tally.counts.items())],
        description=f"Rotation {rotation_id}: tenants by outcome",
    )
    if tally.failures:
        left_out = f" (and {tally.failures_left_out} more)" if tally.failures_left_out else ""
        create_table_artifact(
            key="rotation-failures",
            table=[r.model_dump(mode="json", exclude_none=True) for r in tally.failures],
            description=f"Rotation {rotation_id}: the tenants that failed{left_out}; key ids only",
        )
    if flow_run.id and PREFECT_UI_URL.value():
        create_link_artifact(
            key="rotation-log",
            link=f"{PREFECT_UI_URL.value()}/runs/flow-run/{flow_run.id}",
            link_text="every tenant's outcome: one log line each (tenant=..., outcome=...)",
            description=f"Rotation {rotation_id}: every tenant's line",
        )
    summary = (
        f"rotation {rotation_id}: {tally.total - tally.failed} of {tally.total} tenant(s) ok, "
        f"{tally.failed} failed"
    )
    get_run_logger().info(summary)
    if tally.failed:
        names = ", ".join(r.tenant_id for r in tally.failures)
        return Failed(message=f"{summary}: {names}")
    return Completed(message=summary)


def _dry_run(tenant_ids: Iterable[str], rotation_id: str) -> State:
    store = get_services().store
    rows: list[dict[str, str]] = []
    total = 0
    for tenant_id in tenant_ids:
        total += 1
        if len(rows) < RotationTally.MAX_ROWS:
            record = store.read(tenant_id)
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "current_key_id": record.key_id,
                    "issued_at": record.issued_at.isoformat(),
                    "rotation_id": rotation_id,
                }
            )
    create_table_artifact(
        key="rotation-plan",
        table=rows,
        description=f"Dry run: {total} tenant(s) would be rotated (the first {len(rows)} shown)",
    )
    return Completed(message=f"dry run: {total} tenant(s) would be rotated")
