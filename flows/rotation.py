"""Rotation of one tenant's key or every tenant's: the Prefect shell of `tenant_keys.rotation`.

Task granularity: one task per batch of tenants, which takes the batch's locks under one
lease and runs each tenant's protocol in a thread of its own. A task per tenant made the
Prefect server the busiest process of a fan-out (37 ms of its CPU per tenant, more than
Secrets Manager and LangSmith together): the task runs, their state events and a lease per
tenant. The batch's task ends Failed and names its failed tenants; every tenant's outcome is
in its log line and the rotation table. The protocol retries its own calls, never through
Prefect retries, so compensation stays explicit.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Literal
from uuid import UUID

from prefect import State, Task, flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.states import Completed, Failed

from tasks.events import emit
from tasks.locks import tenant_locks
from tasks.runs import scheduled_rotation_id
from tenant_keys.errors import LockUnavailable
from tenant_keys.models import validate_rotation_id
from tenant_keys.rotation import RotationResult, retire, rotate, rotation_targets
from tenant_keys.services import get_services

# Tenants per task and per lock lease: small enough that a lock wait on one tenant of the
# batch costs seconds, large enough that Prefect's per-task work is spread thin.
BATCH = 16


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
def retire_batch(tenant_ids: list[str], rotation_id: str) -> State:
    """Retire the old keys of a batch of rotated tenants once their grace window has passed."""
    services = get_services()
    return _for_each_locked(
        tenant_ids, rotation_id, lambda tenant_id: retire(services, tenant_id, rotation_id)
    )


def _for_each_locked(
    tenant_ids: list[str], rotation_id: str, work: Callable[[str], RotationResult]
) -> State:
    """`work` for every tenant at once under one lease; a tenant's failure is its own result.
    The task ends Failed, naming its failed tenants, if any failed; the flow reads every
    tenant's result from the state's data either way."""
    logger = get_run_logger()

    def one(tenant_id: str) -> RotationResult:
        result = work(tenant_id)
        emit(result.events)
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
        with tenant_locks().hold(tenant_ids), ThreadPoolExecutor(len(tenant_ids)) as pool:
            runs = [pool.submit(contextvars.copy_context().run, one, t) for t in tenant_ids]
            results = [run.result() for run in runs]
    except LockUnavailable as exc:
        logger.error("batch %s: %s", tenant_ids[0], exc)
        results = [_failed(t, rotation_id, str(exc)) for t in tenant_ids]
    failed = [r for r in results if r.failed]
    if failed:
        names = ", ".join(f"{r.tenant_id} ({r.outcome})" for r in failed)
        return Failed(message=f"{len(failed)} of {len(results)} failed: {names}", data=results)
    return Completed(message=f"{len(results)} ok", data=results)


def _failed(tenant_id: str, rotation_id: str, error: str) -> RotationResult:
    return RotationResult(
        tenant_id=tenant_id, outcome="failed", rotation_id=rotation_id, error=error
    )


def _run_batches(
    batch_task: Task[..., State],
    tenant_ids: list[str],
    rotation_id: str,
    on_progress: Callable[[int], None],
    **options: bool,
) -> dict[str, RotationResult]:
    """Run `batch_task` over the tenants, BATCH at a time, with at most `max_concurrency`
    tenants in flight; `on_progress(done)` after each batch."""
    in_flight = get_services().settings.max_concurrency
    size = min(BATCH, in_flight)
    batches = [tenant_ids[i : i + size] for i in range(0, len(tenant_ids), size)]

    def run(batch: list[str]) -> list[RotationResult]:
        state = batch_task(batch, rotation_id, return_state=True, **options)
        data = state.result(raise_on_failure=False)
        if isinstance(data, list):
            return data
        # The task itself broke (not one of its tenants): every tenant of the batch failed.
        return [_failed(t, rotation_id, state.message or "batch failed") for t in batch]

    results: dict[str, RotationResult] = {}
    with ThreadPoolExecutor(max_workers=in_flight // size) as pool:
        runs = [pool.submit(contextvars.copy_context().run, run, b) for b in batches]
        for done in as_completed(runs):
            results.update((r.tenant_id, r) for r in done.result())
            on_progress(len(results))
    return results


@flow(name="rotate-keys")
def rotate_keys(
    tenants: list[str] | Literal["all"] = "all",
    rotation_id: str | None = None,
    dry_run: bool = False,
) -> State:
    """Rotate the named tenants' keys (or every tenant's). One failing tenant never stops the
    others."""
    services = get_services()
    tenant_ids = rotation_targets(services, tenants)
    rotation_id = validate_rotation_id(rotation_id) if rotation_id else scheduled_rotation_id()
    if dry_run:
        return _dry_run(tenant_ids, rotation_id)

    grace = services.settings.grace_seconds
    tenant_locks().ensure(tenant_ids)
    progress = create_progress_artifact(
        0.0, key="rotation-progress", description=f"Rotation {rotation_id}: tenants done"
    )
    assert isinstance(progress, UUID)  # called from a sync flow: the sync variant ran
    step = max(1, len(tenant_ids) // 20)
    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        if done // step > reported // step or done == len(tenant_ids):
            update_progress_artifact(progress, 100.0 * done / len(tenant_ids))
        reported = done

    results = _run_batches(rotate_batch, tenant_ids, rotation_id, report, retire_now=grace == 0)
    if grace > 0:
        _retire_after_grace(results, grace, rotation_id)

    ordered = [results[t] for t in tenant_ids]
    create_table_artifact(
        key="rotation",
        table=[r.model_dump(mode="json", exclude_none=True) for r in ordered],
        description=f"Rotation {rotation_id} of {len(ordered)} tenant(s): key ids only",
    )
    failed = [r for r in ordered if r.failed]
    summary = (
        f"rotation {rotation_id}: {len(ordered) - len(failed)} of {len(ordered)} tenant(s) ok, "
        f"{len(failed)} failed"
    )
    get_run_logger().info(summary)
    if failed:
        return Failed(message=f"{summary}: {', '.join(r.tenant_id for r in failed)}")
    return Completed(message=summary)


def _retire_after_grace(results: dict[str, RotationResult], grace: float, rotation_id: str) -> None:
    rotated = [t for t, r in results.items() if r.outcome == "rotated"]
    if not rotated:
        return
    time.sleep(grace)  # one wait for the whole fan-out: every tenant was promoted before it
    retired = _run_batches(retire_batch, rotated, rotation_id, lambda done: None)
    for tenant_id, retire_result in retired.items():
        previous = results[tenant_id]
        if retire_result.failed:
            update = {"outcome": retire_result.outcome, "error": retire_result.error}
        else:
            update = {"old_key_id": retire_result.old_key_id}
        results[tenant_id] = previous.model_copy(update=update)


def _dry_run(tenant_ids: list[str], rotation_id: str) -> State:
    store = get_services().store
    rows = []
    for tenant_id in tenant_ids:
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
        description=f"Dry run: {len(rows)} tenant(s) would be rotated",
    )
    return Completed(message=f"dry run: {len(rows)} tenant(s) would be rotated")
