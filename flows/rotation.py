"""Rotation: create → test → promote → retire, for one tenant or every tenant.

Task granularity: one task per tenant runs that tenant's protocol (the steps
are plain functions in `tenant_keys.rotation`). A task per step would
quadruple Prefect's per-task overhead (7-20 ms each, reference/prefect.md),
which at a thousand tenants would rival the LangSmith rate-limit bound the
fan-out is meant to sit at. Steps retry their own calls (the clients do),
never through Prefect retries, so compensation stays explicit here.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from tasks.events import emit_tenant_event
from tasks.locks import LockUnavailable, ensure_tenant_locks, tenant_lock, tenant_locks
from tenant_keys.errors import BadInput, KeyTestFailed, RetireFailed
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
from tenant_keys.secret_store import RETIRE_PENDING, SecretState
from tenant_keys.services import get_services

# Tenants per lock lease in a fan-out: small enough that a revoke waiting on one tenant of
# the batch waits seconds, large enough to spare the server a write per tenant.
LOCK_BATCH = 16

Outcome = Literal["rotated", "already-rotated", "waiting", "failed", "retire-failed"]


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
                retire_key(services, tenant_id, version=old_version, key_id=retired)
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


@task(
    name="rotate-tenant",
    task_run_name="rotate-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def rotate_tenant(
    tenant_id: str, rotation_id: str, retire_now: bool = True, locked: bool = False
) -> RotationResult:
    logger = get_run_logger()
    result = rotate_one(tenant_id, rotation_id, retire_now=retire_now, locked=locked)
    logger.info(
        "tenant=%s rotation=%s outcome=%s old_key_id=%s new_key_id=%s",
        tenant_id,
        rotation_id,
        result.outcome,
        result.old_key_id,
        result.new_key_id,
    )
    return result


@task(
    name="retire-tenant-key",
    task_run_name="retire-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def retire_tenant(tenant_id: str) -> str | None:
    services = get_services()
    with tenant_lock(tenant_id):
        state = services.store.describe(tenant_id)
        grace = services.settings.grace_seconds
        return retire_tenant_key(tenant_id, grace_seconds=grace, state=state).key_id


def resolve_tenants(tenants: list[str] | Literal["all"]) -> list[str]:
    """The tenant ids to act on, validated before any side effect."""
    if tenants == "all":
        return sorted(get_services().store.iter_tenants())
    if not tenants:
        raise BadInput("no tenants given: name tenants or pass 'all'")
    return [validate_tenant_id(t) for t in dict.fromkeys(tenants)]


def default_rotation_id() -> str:
    """A scheduled run's id comes from its scheduled time, so a rerun of that run resumes it."""
    scheduled = flow_run.scheduled_start_time
    return new_rotation_id(scheduled) if flow_run.id and scheduled else new_rotation_id()


def _max_workers() -> int:
    return int(os.environ.get("TENANT_KEYS_MAX_CONCURRENCY", "64"))


@flow(name="rotate-keys", task_runner=ThreadPoolTaskRunner(max_workers=_max_workers()))
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
    results: dict[str, RotationResult] = {}
    step = max(1, len(tenant_ids) // 20)

    def rotate_batch(batch: list[str]) -> dict[str, RotationResult]:
        try:
            with tenant_locks(batch):
                futures = {
                    rotate_tenant.submit(t, rotation_id, retire_now=grace == 0, locked=True): t
                    for t in batch
                }
                return {t: _collect(f, t, rotation_id) for f, t in futures.items()}
        except LockUnavailable as exc:
            return {
                t: RotationResult(
                    tenant_id=t, outcome="failed", rotation_id=rotation_id, error=str(exc)
                )
                for t in batch
            }

    # Locks go a batch at a time (one lease per batch); several batches run at once so
    # the pipe stays full while a batch finishes its slowest tenant.
    batches = [tenant_ids[i : i + LOCK_BATCH] for i in range(0, len(tenant_ids), LOCK_BATCH)]
    with ThreadPoolExecutor(max_workers=max(1, _max_workers() // LOCK_BATCH)) as pool:
        running = [pool.submit(contextvars.copy_context().run, rotate_batch, b) for b in batches]
        for future in as_completed(running):
            before = len(results)
            results.update(future.result())
            if len(results) // step > before // step or len(results) == len(tenant_ids):
                update_progress_artifact(progress, 100.0 * len(results) / len(tenant_ids))

    if grace > 0:
        _retire_after_grace(results, grace)

    ordered = [results[t] for t in tenant_ids]
    create_table_artifact(
        key="rotation",
        table=[r.model_dump(mode="json", exclude_none=True) for r in ordered],
        description=f"Rotation {rotation_id} of {len(ordered)} tenant(s): key ids only",
    )
    failed = [r for r in ordered if r.outcome in ("failed", "retire-failed")]
    summary = f"rotation {rotation_id}: {len(ordered) - len(failed)} of {len(ordered)} tenant(s) ok, {len(failed)} failed"
    logger.info(summary)
    if failed:
        return Failed(message=f"{summary}: {', '.join(r.tenant_id for r in failed)}")
    return Completed(message=summary)


def _collect(future, tenant_id: str, rotation_id: str) -> RotationResult:  # type: ignore[no-untyped-def]
    future.wait()
    if future.state.is_completed():
        return future.result()
    error = future.state.message or "failed"
    outcome: Outcome = "retire-failed" if "RetireFailed" in error else "failed"
    return RotationResult(
        tenant_id=tenant_id, outcome=outcome, rotation_id=rotation_id, error=error
    )


def _retire_after_grace(results: dict[str, RotationResult], grace: float) -> None:
    rotated = [t for t, r in results.items() if r.outcome == "rotated"]
    if not rotated:
        return
    time.sleep(grace)  # one wait for the whole fan-out: every tenant was promoted before it
    retire_futures = {retire_tenant.submit(t): t for t in rotated}
    for future, tenant_id in retire_futures.items():
        future.wait()
        previous = results[tenant_id]
        if future.state.is_completed():
            results[tenant_id] = previous.model_copy(update={"old_key_id": future.result()})
        else:
            results[tenant_id] = previous.model_copy(
                update={"outcome": "retire-failed", "error": future.state.message}
            )


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
