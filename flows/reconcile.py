"""Reconcile: finish what failures left half done, for every tenant (hourly) or the ones named.

1. Survey, reads only and no lock: the tool's keys at LangSmith (one list call) and every
   tenant's secret (concurrent reads). The tenants are those with a secret under the
   prefix plus those a key's description names (ListSecrets lags; a key does not).
2. Plan, pure (`tenant_keys.reconcile`): the repairs, from the listing.
3. Dry run: the plan as a table artifact; nothing changes.
4. Apply: one task per tenant with repairs. Under the tenant's lock it reads the secret
   again, asks LangSmith whether each key the secret holds still authenticates (the ground
   truth, not the listing of step 1, which a rotation may have overtaken), plans again from
   that, and does the local repairs (discard a dead AWSPENDING, retire, delete orphans).
   A rotation (resume, replace a dead key, rotate an expiring one) or finishing an
   offboarding takes the tenant's lock itself, so it runs right after the lock is released.

Every repair is an event (`tenant-keys.reconcile.<kind>`) and a row of the table artifact.
A dead AWSCURRENT (drift) is also logged as a warning: someone deleted a key behind the tool.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from flows.offboarding import offboard_one
from flows.rotation import default_rotation_id, retire_tenant_key, rotate_one
from tasks.events import emit_tenant_event
from tasks.locks import ensure_tenant_locks, tenant_lock
from tenant_keys.errors import BadInput
from tenant_keys.keys import KeyScope
from tenant_keys.models import utcnow, validate_tenant_id
from tenant_keys.reconcile import (
    LOCAL_KINDS,
    PROTOCOL_KINDS,
    OwnKey,
    Policy,
    Repair,
    RepairKind,
    TenantSnapshot,
    liveness_from_list,
    plan,
    plan_tenant,
)
from tenant_keys.rotation import PendingKey, discard_pending_key
from tenant_keys.services import Services, get_services
from tenant_keys.settings import Settings
from tenant_keys.survey import list_own_keys, probe_liveness, snapshot_tenant, snapshot_tenants

Outcome = Literal["planned", "done", "already-done", "waiting", "failed", "needs-attention"]
DEFAULT_EXPIRING_WITHIN_DAYS = 7.0
# Older than any onboarding in flight (mint → store takes about a second), younger than an hour.
DEFAULT_ORPHAN_MIN_AGE_SECONDS = 600.0
# A key still waiting to be retired a day after its rotation means retires keep failing: the
# survey emits this event for each such tenant (an automation notifies; docs/automations.md).
RETIRE_OVERDUE_EVENT = "tenant-keys.retire.overdue"
RETIRE_OVERDUE_AFTER = timedelta(days=1)


class RepairRow(BaseModel):
    """One repair, planned or done: ids only, never a key."""

    tenant_id: str
    kind: RepairKind
    outcome: Outcome
    key_id: str | None = None
    rotation_id: str | None = None
    new_key_id: str | None = None
    reason: str = ""
    error: str | None = None


class ReconcileReport(BaseModel):
    applied: bool
    rotation_id: str
    tenants_surveyed: int
    rows: list[RepairRow]


def make_policy(
    settings: Settings, expiring_within_days: float, orphan_min_age_seconds: float
) -> Policy:
    """The thresholds, checked before any side effect."""
    if not 0 <= expiring_within_days < settings.key_lifetime_days:
        raise BadInput(
            f"expiring_within_days={expiring_within_days} is out of range: give 0 or more and "
            f"less than the key lifetime ({settings.key_lifetime_days} days), or every key would "
            "rotate on every run"
        )
    if orphan_min_age_seconds < 0:
        raise BadInput("orphan_min_age_seconds must be 0 or more")
    return Policy(
        grace_seconds=settings.grace_seconds,
        expiring_within=timedelta(days=expiring_within_days),
        orphan_min_age=timedelta(seconds=orphan_min_age_seconds),
    )


# -- carrying out one tenant's repairs -----------------------------------------------------------


def repair_one(
    tenant_id: str, keys: list[OwnKey], policy: Policy, rotation_id: str
) -> list[RepairRow]:
    """Plan the tenant again from fresh facts and carry the repairs out (see the module doc)."""
    services = get_services()
    snapshot = snapshot_tenant(services.store, tenant_id)
    if snapshot.status == "active":
        with tenant_lock(tenant_id):
            snapshot = snapshot_tenant(services.store, tenant_id)  # no rotation moves labels now
            repairs = _replan(services, snapshot, keys, policy, rotation_id)
            rows = [
                _apply_local(services, r, policy, keys) for r in repairs if r.kind in LOCAL_KINDS
            ]
    else:  # no live secret: nothing to lock against; young keys are spared by the orphan age
        repairs = _replan(services, snapshot, keys, policy, rotation_id)
        rows = [_apply_local(services, r, policy, keys) for r in repairs if r.kind in LOCAL_KINDS]
    rows += [_apply_protocol(r, policy) for r in repairs if r.kind in PROTOCOL_KINDS]
    rows += [_row(r, "needs-attention") for r in repairs if r.kind == "attention"]
    return rows


def _replan(
    services: Services,
    snapshot: TenantSnapshot,
    keys: list[OwnKey],
    policy: Policy,
    rotation_id: str,
) -> list[Repair]:
    live = probe_liveness(services, snapshot) if snapshot.status == "active" else {}
    return plan_tenant(snapshot, live, keys, now=utcnow(), policy=policy, rotation_id=rotation_id)


def _apply_local(
    services: Services, repair: Repair, policy: Policy, keys: list[OwnKey]
) -> RepairRow:
    tenant_id = repair.tenant_id
    try:
        if repair.kind == "discard-pending":
            assert repair.version_id and repair.key_id
            pending = PendingKey(token=repair.version_id, key_id=repair.key_id, resumed=True)
            discard_pending_key(services, tenant_id, pending)
            return _row(repair, "done")
        if repair.kind == "retire":
            state = services.store.describe(tenant_id)
            retired = retire_tenant_key(tenant_id, grace_seconds=policy.grace_seconds, state=state)
            return _row(repair, "waiting" if retired.waiting_seconds > 0 else "done")
        assert repair.kind == "delete-orphan" and repair.key_id
        mode = next((k.mode for k in keys if k.key_id == repair.key_id), "project")
        deleted = KeyScope(mode=mode).delete(services.langsmith, repair.key_id)
        return _row(repair, "done" if deleted else "already-done")
    except Exception as exc:  # one repair failing never stops the tenant's others
        return _row(repair, "failed", error=str(exc))


def _apply_protocol(repair: Repair, policy: Policy) -> RepairRow:
    tenant_id = repair.tenant_id
    try:
        if repair.kind == "finish-offboarding":
            offboard_one(tenant_id)
            return _row(repair, "done")
        if repair.kind == "replace-dead-key":
            get_run_logger().warning(
                "DRIFT tenant=%s: AWSCURRENT key %s no longer authenticates; replacing it",
                tenant_id,
                repair.key_id,
            )
        assert repair.rotation_id
        # A dead key needs no grace window: no app can be using it.
        retire_now = policy.grace_seconds == 0 or repair.kind == "replace-dead-key"
        result = rotate_one(tenant_id, repair.rotation_id, retire_now=retire_now)
    except Exception as exc:
        return _row(repair, "failed", error=str(exc))
    outcome: Outcome = "waiting"  # an older key still waits out its grace window
    if result.outcome == "rotated":
        outcome = "done"
    elif result.outcome == "already-rotated":
        outcome = "already-done"
    return _row(repair, outcome, new_key_id=result.new_key_id, error=result.error)


def _row(repair: Repair, outcome: Outcome, **fields: str | None) -> RepairRow:
    return RepairRow(
        tenant_id=repair.tenant_id,
        kind=repair.kind,
        outcome=outcome,
        key_id=repair.key_id,
        rotation_id=repair.rotation_id,
        reason=repair.reason,
        **fields,
    )


@task(
    name="reconcile-tenant",
    task_run_name="reconcile-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def reconcile_tenant(
    tenant_id: str, keys: list[OwnKey], policy: Policy, rotation_id: str
) -> list[RepairRow]:
    rows = repair_one(tenant_id, keys, policy, rotation_id)
    logger = get_run_logger()
    for row in rows:
        emit_tenant_event(
            f"tenant-keys.reconcile.{row.kind}",
            tenant_id,
            outcome=row.outcome,
            key_id=row.key_id,
            rotation_id=row.rotation_id,
            new_key_id=row.new_key_id,
            error=row.error,
        )
        logger.info(
            "tenant=%s repair=%s outcome=%s key_id=%s", tenant_id, row.kind, row.outcome, row.key_id
        )
    return rows


# -- the flow ------------------------------------------------------------------------------------


# Tenants repaired at once. A sweep repairs a handful (the survey before it runs at
# TENANT_KEYS_MAX_CONCURRENCY); fixed here, as in the other flows, because a flow's task
# runner is built at import, before the settings are read and checked.
REPAIR_WORKERS = 16


@flow(name="reconcile", task_runner=ThreadPoolTaskRunner(max_workers=REPAIR_WORKERS))
def reconcile(
    tenants: list[str] | Literal["all"] = "all",
    apply: bool = False,
    expiring_within_days: float = DEFAULT_EXPIRING_WITHIN_DAYS,
    orphan_min_age_seconds: float = DEFAULT_ORPHAN_MIN_AGE_SECONDS,
) -> State:
    """Compare Secrets Manager with LangSmith and repair (with `apply`; else only plan).

    The final state's data is a `ReconcileReport`. An applied run fails if a repair failed
    or a tenant needs a human (e.g. a secret someone edited into bad JSON).
    """
    services = get_services()
    policy = make_policy(services.settings, expiring_within_days, orphan_min_age_seconds)
    scope = None if tenants == "all" else _validated(tenants)
    rotation_id = f"reconcile-{default_rotation_id()}"

    now = utcnow()
    keys = list_own_keys(services)
    if scope is not None:
        keys = [k for k in keys if k.tenant_id in scope]
        tenant_ids = set(scope)
    else:
        tenant_ids = set(services.store.iter_tenants()) | {k.tenant_id for k in keys}
    snapshots = snapshot_tenants(
        services.store, tenant_ids, workers=services.settings.max_concurrency
    )
    report_overdue_retires(snapshots, now)
    live = liveness_from_list(keys, now)
    repairs = plan(snapshots, keys, live, now=now, policy=policy, rotation_id=rotation_id)

    if not apply:
        rows = [_row(r, "needs-attention" if r.kind == "attention" else "planned") for r in repairs]
        return _finish(rows, applied=False, rotation_id=rotation_id, surveyed=len(snapshots))

    rows = [_row(r, "needs-attention") for r in repairs if r.kind == "attention"]
    to_fix = list(dict.fromkeys(r.tenant_id for r in repairs if r.kind != "attention"))
    status = {s.tenant_id: s.status for s in snapshots}
    ensure_tenant_locks([t for t in to_fix if status[t] in ("active", "offboarding")])
    rows += _fan_out(to_fix, keys, policy, rotation_id)
    return _finish(rows, applied=True, rotation_id=rotation_id, surveyed=len(snapshots))


def report_overdue_retires(snapshots: list[TenantSnapshot], now: datetime) -> None:
    """An event per tenant whose RETIRE_PENDING key has waited longer than RETIRE_OVERDUE_AFTER.
    The wait counts from the current key's issue: the rotation that minted it is the one that
    set the old key aside (Secrets Manager keeps no date for a label move)."""
    for snapshot in snapshots:
        old, current = snapshot.retire_pending, snapshot.current
        if old is None or current is None:
            continue
        waiting = now - current.issued_at
        if waiting > RETIRE_OVERDUE_AFTER:
            emit_tenant_event(
                RETIRE_OVERDUE_EVENT,
                snapshot.tenant_id,
                key_id=old.key_id,
                rotation_id=current.rotation_id,
                waiting_hours=round(waiting.total_seconds() / 3600, 1),
            )


def _validated(tenants: list[str]) -> list[str]:
    if not tenants:
        raise BadInput("no tenants given: name tenants or pass 'all'")
    return [validate_tenant_id(t) for t in dict.fromkeys(tenants)]


def _fan_out(
    tenant_ids: list[str], keys: list[OwnKey], policy: Policy, rotation_id: str
) -> list[RepairRow]:
    if not tenant_ids:
        return []
    by_tenant: dict[str, list[OwnKey]] = {}
    for key in keys:
        by_tenant.setdefault(key.tenant_id, []).append(key)
    progress = create_progress_artifact(
        0.0, key="reconcile-progress", description="Reconcile: tenants repaired"
    )
    futures = {
        reconcile_tenant.submit(t, by_tenant.get(t, []), policy, rotation_id): t for t in tenant_ids
    }
    rows: dict[str, list[RepairRow]] = {}
    step = max(1, len(futures) // 20)
    for done, future in enumerate(as_completed(list(futures)), start=1):
        tenant_id = futures[future]
        future.wait()
        if future.state.is_completed():
            rows[tenant_id] = future.result()
        else:  # the lock or the survey failed: nothing of this tenant was decided
            error = future.state.message or "failed"
            rows[tenant_id] = [
                RepairRow(
                    tenant_id=tenant_id,
                    kind="attention",
                    outcome="failed",
                    reason="reconcile of this tenant failed",
                    error=error,
                )
            ]
        if done % step == 0 or done == len(futures):
            update_progress_artifact(progress, 100.0 * done / len(futures))
    return [row for t in tenant_ids for row in rows[t]]


def _finish(rows: list[RepairRow], *, applied: bool, rotation_id: str, surveyed: int) -> State:
    report = ReconcileReport(
        applied=applied, rotation_id=rotation_id, tenants_surveyed=surveyed, rows=rows
    )
    tenants = len({r.tenant_id for r in rows})
    failed = [r for r in rows if r.outcome == "failed"]
    attention = [r for r in rows if r.outcome == "needs-attention"]
    if applied:
        done = sum(r.outcome in ("done", "already-done") for r in rows)
        summary = (
            f"reconcile: {done} repair(s) done for {tenants} tenant(s) of {surveyed} surveyed, "
            f"{len(failed)} failed, {len(attention)} need attention"
        )
    else:
        planned = sum(r.outcome == "planned" for r in rows)
        summary = (
            f"dry run: {planned} repair(s) planned for {tenants} tenant(s) of {surveyed} "
            f"surveyed, {len(attention)} need attention; nothing changed"
        )
    create_table_artifact(
        key="reconcile" if applied else "reconcile-plan",
        table=[r.model_dump(mode="json", exclude_none=True) for r in rows]
        or [{"outcome": "nothing to do"}],
        description=summary,
    )
    get_run_logger().info(summary)
    if applied and (failed or attention):
        names = ", ".join(sorted({r.tenant_id for r in failed + attention}))
        return Failed(message=f"{summary}: {names}", data=report)
    return Completed(message=summary, data=report)
