"""Rotation: create → test → promote → retire, for one tenant or every tenant.

Task granularity: one task per batch of tenants, which takes the batch's locks
under one lease and runs each tenant's protocol (plain functions in
`tenant_keys.rotation`) in a thread of its own. A task per tenant made the
Prefect server the busiest process of a fan-out (37 ms of its CPU per tenant,
more than Secrets Manager and LangSmith together): the task runs, their state
events and a lease per tenant. The batch's task ends Failed and names its failed
tenants; every tenant's outcome is in its log line and the rotation table.
Steps retry their own calls (the clients do), never through Prefect retries,
so compensation stays explicit here.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from typing import Literal

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from tasks.events import emit_tenant_event
from tasks.locks import LockUnavailable, ensure_tenant_locks, tenant_lock, tenant_locks
from tenant_keys.errors import BadInput, KeyTestFailed, RetireFailed
from tenant_keys.keys import KeyScope
from tenant_keys.models import new_rotation_id, validate_tenant_id
from tenant_keys.rotation import (
    RetireResult,
    create_pending_key,
    discard_pending_key,
    promote_pending_key,
    retire_key,
    retire_old_key,
    test_pending_key,
)
from tenant_keys.secret_store import RETIRE_PENDING, TAG_OFFBOARDING, SecretState
from tenant_keys.services import get_services

# Tenants per task and per lock lease: small enough that a revoke waiting on one tenant of
# the batch waits seconds, large enough that Prefect's per-task work is spread thin.
BATCH = 16

Outcome = Literal["rotated", "already-rotated", "waiting", "offboarding", "failed", "retire-failed"]
FAILED = ("failed", "retire-failed")


class RotationResult(BaseModel):
    tenant_id: str
    outcome: Outcome
    rotation_id: str
    old_key_id: str | None = None
    new_key_id: str | None = None
    error: str | None = None
    seconds: float = 0.0


def rotate_one(
    tenant_id: str, rotation_id: str, *, retire_now: bool, locked: bool = False
) -> RotationResult:
    """The protocol for one tenant, under the tenant's lock (taken here unless `locked`)."""
    services = get_services()
    store, grace = services.store, services.settings.grace_seconds
    started = time.monotonic()

    def result(outcome: Outcome, **fields: str | None) -> RotationResult:
        seconds = round(time.monotonic() - started, 3)
        return RotationResult(
            tenant_id=tenant_id, outcome=outcome, rotation_id=rotation_id, seconds=seconds, **fields
        )

    with nullcontext() if locked else tenant_lock(tenant_id):
        state = store.describe(tenant_id)
        if state.leaving:  # offboarding deletes its keys; a new one would only outlive it
            return result("offboarding")
        if state.version_with(RETIRE_PENDING):
            # An earlier rotation's old key must be gone before this one marks another.
            earlier = retire_tenant_key(tenant_id, grace_seconds=grace, state=state)
            if earlier.waiting_seconds > 0:
                wait = (
                    f"previous key waits {earlier.waiting_seconds:.0f} s more for its grace window"
                )
                return result("waiting", old_key_id=earlier.key_id, error=wait)
            state = store.describe(tenant_id)
        pending = create_pending_key(services, tenant_id, rotation_id, state)
        if pending is None:
            return result("already-rotated")
        try:
            test_pending_key(services, tenant_id, pending)
        except KeyTestFailed:
            discard_pending_key(services, tenant_id, pending)
            raise
        old_version = promote_pending_key(services, tenant_id, pending, state)
        emit_tenant_event(
            "tenant-keys.key.rotated", tenant_id, rotation_id=rotation_id, key_id=pending.key_id
        )
        if not retire_now or old_version is None:
            return result("rotated", new_key_id=pending.key_id)
        if pending.replaces_key_id is None:  # resumed: the old key id is in the labelled version
            now = store.describe(tenant_id)
            retired = retire_tenant_key(tenant_id, grace_seconds=0.0, state=now).key_id
        else:
            retired = pending.replaces_key_id
            with _retire_alarm(tenant_id, retired):
                scope = KeyScope.of(state.tags)
                retire_key(services, tenant_id, scope, version=old_version, key_id=retired)
        return result("rotated", old_key_id=retired, new_key_id=pending.key_id)


def retire_tenant_key(tenant_id: str, *, grace_seconds: float, state: SecretState) -> RetireResult:
    """Retire the RETIRE_PENDING key if its grace window has passed."""
    with _retire_alarm(tenant_id, None):
        return retire_old_key(get_services(), tenant_id, grace_seconds=grace_seconds, state=state)


@contextmanager
def _retire_alarm(tenant_id: str, key_id: str | None) -> Iterator[None]:
    """Forward compensation: a failed retire keeps its label (the durable record), emits an
    event and fails the tenant's run visibly; reconcile and the next rotation retry it."""
    try:
        yield
    except Exception as exc:
        emit_tenant_event("tenant-keys.retire.failed", tenant_id, key_id=key_id, error=str(exc))
        raise RetireFailed(tenant_id, key_id, type(exc).__name__) from exc


def resolve_tenants(tenants: list[str] | Literal["all"]) -> list[str]:
    """The tenant ids to act on, validated before any side effect."""
    if tenants == "all":
        listed = get_services().store.iter_tenant_tags()
        return sorted(tenant_id for tenant_id, tags in listed if TAG_OFFBOARDING not in tags)
    if not tenants:
        raise BadInput("no tenants given: name tenants or pass 'all'")
    return [validate_tenant_id(t) for t in dict.fromkeys(tenants)]


def default_rotation_id() -> str:
    """A scheduled run's id comes from its scheduled time, so a rerun of that run resumes it."""
    scheduled = flow_run.scheduled_start_time
    return new_rotation_id(scheduled) if flow_run.id and scheduled else new_rotation_id()


def _batch_run_name() -> str:
    ids: list[str] = task_run.parameters["tenant_ids"]
    prefix = task_run.task_name.split("-")[0]
    return f"{prefix}-{ids[0]}" if len(ids) == 1 else f"{prefix}-{ids[0]}..{ids[-1]}"


@task(
    name="rotate-batch",
    task_run_name=_batch_run_name,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def rotate_batch(tenant_ids: list[str], rotation_id: str, retire_now: bool) -> State:
    """Rotate a batch of tenants under one lease of their locks, each tenant in a thread."""

    def rotate(tenant_id: str) -> RotationResult:
        return rotate_one(tenant_id, rotation_id, retire_now=retire_now, locked=True)

    return _batch_state(_for_each_locked(tenant_ids, rotation_id, rotate))


@task(
    name="retire-batch",
    task_run_name=_batch_run_name,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def retire_batch(tenant_ids: list[str], rotation_id: str) -> State:
    """Retire the old keys of a batch of rotated tenants once their grace window has passed."""
    services = get_services()

    def retire(tenant_id: str) -> RotationResult:
        state = services.store.describe(tenant_id)
        grace = services.settings.grace_seconds
        retired = retire_tenant_key(tenant_id, grace_seconds=grace, state=state)
        return RotationResult(
            tenant_id=tenant_id,
            outcome="rotated",
            rotation_id=rotation_id,
            old_key_id=retired.key_id,
        )

    return _batch_state(_for_each_locked(tenant_ids, rotation_id, retire))


def _for_each_locked(
    tenant_ids: list[str], rotation_id: str, work: Callable[[str], RotationResult]
) -> list[RotationResult]:
    """`work` for every tenant at once under one lease; a tenant's failure is its own result."""
    logger = get_run_logger()

    def guarded(tenant_id: str) -> RotationResult:
        started = time.monotonic()
        try:
            result = work(tenant_id)
        except Exception as exc:
            outcome: Outcome = "retire-failed" if isinstance(exc, RetireFailed) else "failed"
            result = RotationResult(
                tenant_id=tenant_id,
                outcome=outcome,
                rotation_id=rotation_id,
                error=f"{type(exc).__name__}: {exc}",
                seconds=round(time.monotonic() - started, 3),
            )
        log = logger.error if result.outcome in FAILED else logger.info
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
        with tenant_locks(tenant_ids), ThreadPoolExecutor(len(tenant_ids)) as pool:
            runs = [pool.submit(contextvars.copy_context().run, guarded, t) for t in tenant_ids]
            return [run.result() for run in runs]
    except LockUnavailable as exc:
        logger.error("batch %s: %s", tenant_ids[0], exc)
        return [
            RotationResult(tenant_id=t, outcome="failed", rotation_id=rotation_id, error=str(exc))
            for t in tenant_ids
        ]


def _batch_state(results: list[RotationResult]) -> State:
    """The batch's task ends Failed, naming its failed tenants, if any failed; the flow reads
    every tenant's result from the state's data either way."""
    failed = [r for r in results if r.outcome in FAILED]
    if failed:
        names = ", ".join(f"{r.tenant_id} ({r.outcome})" for r in failed)
        return Failed(message=f"{len(failed)} of {len(results)} failed: {names}", data=results)
    return Completed(message=f"{len(results)} ok", data=results)


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
    workers = in_flight // size

    def run(batch: list[str]) -> list[RotationResult]:
        state = batch_task(batch, rotation_id, return_state=True, **options)
        data = state.result(raise_on_failure=False)
        if isinstance(data, list):
            return data
        # The task itself broke (not one of its tenants): every tenant of the batch failed.
        error = state.message or "batch failed"
        return [
            RotationResult(tenant_id=t, outcome="failed", rotation_id=rotation_id, error=error)
            for t in batch
        ]

    results: dict[str, RotationResult] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
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
    """Rotate the named tenants' keys (or every tenant's). One failing tenant never stops the others."""
    logger = get_run_logger()
    tenant_ids = resolve_tenants(tenants)
    rotation_id = rotation_id or default_rotation_id()
    if dry_run:
        return _dry_run(tenant_ids, rotation_id)

    grace = get_services().settings.grace_seconds
    ensure_tenant_locks(tenant_ids)
    progress = create_progress_artifact(
        0.0, key="rotation-progress", description=f"Rotation {rotation_id}: tenants done"
    )
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
    failed = [r for r in ordered if r.outcome in FAILED]
    summary = f"rotation {rotation_id}: {len(ordered) - len(failed)} of {len(ordered)} tenant(s) ok, {len(failed)} failed"
    logger.info(summary)
    if failed:
        return Failed(message=f"{summary}: {', '.join(r.tenant_id for r in failed)}")
    return Completed(message=summary)


def _retire_after_grace(results: dict[str, RotationResult], grace: float, rotation_id: str) -> None:
    rotated = [t for t, r in results.items() if r.outcome == "rotated"]
    if not rotated:
        return
    time.sleep(grace)  # one wait for the whole fan-out: every tenant was promoted before it
    retired = _run_batches(retire_batch, rotated, rotation_id, lambda done: None)
    for tenant_id, retire in retired.items():
        previous = results[tenant_id]
        if retire.outcome in FAILED:
            update = {"outcome": retire.outcome, "error": retire.error}
        else:
            update = {"old_key_id": retire.old_key_id}
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
