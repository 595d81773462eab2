"""Reconcile: the Prefect shell of `tenant_keys.reconcile`, for every tenant (hourly) or the
ones named.

Survey and plan in the flow (reads only); a dry run stops at the plan's table artifact.
Applied, one task per tenant with repairs: the core repairs it under the tenant's lock. Every
repair is an event (`tenant-keys.reconcile.<kind>`) and a row of the table artifact. A dead
AWSCURRENT (drift) is also logged as a warning: someone deleted a key behind the tool; so is
a tagged tenant's role, policy or tag that was missing or changed.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.states import Completed, Failed

from tasks.events import emit
from tasks.locks import tenant_locks
from tasks.runs import scheduled_rotation_id, threads
from tenant_keys.errors import BadInput
from tenant_keys.models import validate_tenant_id
from tenant_keys.reconcile import (
    DEFAULT_EXPIRING_WITHIN_DAYS,
    DEFAULT_ORPHAN_MIN_AGE_SECONDS,
    ReconcileReport,
    RepairRow,
    Survey,
    make_policy,
    planned,
    repair,
    row,
    survey,
)
from tenant_keys.reconcile_plan import OwnKey, Policy
from tenant_keys.services import get_services


@task(
    name="reconcile-tenant",
    task_run_name="reconcile-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def reconcile_tenant(
    tenant_id: str, keys: list[OwnKey], policy: Policy, rotation_id: str
) -> list[RepairRow]:
    rows = repair(get_services(), tenant_id, keys, policy, rotation_id, tenant_locks())
    logger = get_run_logger()
    for done in rows:
        if done.kind == "replace-dead-key":
            logger.warning(
                "DRIFT tenant=%s: AWSCURRENT key %s no longer authenticated; replaced: %s",
                tenant_id,
                done.key_id,
                done.outcome,
            )
        if done.kind == "repair-access":
            logger.warning(
                "DRIFT tenant=%s: tagged isolation (%s); repaired: %s, new key: %s",
                tenant_id,
                done.reason,
                done.outcome,
                done.new_key_id or "none needed",
            )
        emit([*done.events, done.event()])
        logger.info(
            "tenant=%s repair=%s outcome=%s key_id=%s",
            tenant_id,
            done.kind,
            done.outcome,
            done.key_id,
        )
    return rows


# -- the flow ------------------------------------------------------------------------------------


# Tenants repaired at once. A sweep repairs a handful (the survey before it runs at
# TENANT_KEYS_MAX_CONCURRENCY); fixed here, as in the other flows, because a flow's task
# runner is built at import, before the settings are read and checked.
REPAIR_WORKERS = 16


@flow(name="reconcile", task_runner=threads(REPAIR_WORKERS))
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
    named = None if tenants == "all" else _validated(tenants)
    found = survey(services, named, policy, f"reconcile-{scheduled_rotation_id()}")
    emit(found.events)
    if not apply:
        return _finish(planned(found))

    rows = [row(r, "needs-attention") for r in found.repairs if r.kind == "attention"]
    to_fix = found.tenants_to_repair()
    tenant_locks().ensure(found.lockable(to_fix))
    rows += _fan_out(found, to_fix, policy)
    surveyed = len(found.snapshots)
    return _finish(
        ReconcileReport(
            applied=True, rotation_id=found.rotation_id, tenants_surveyed=surveyed, rows=rows
        )
    )


def _validated(tenants: list[str]) -> list[str]:
    if not tenants:
        raise BadInput("no tenants given: name tenants or pass 'all'")
    return [validate_tenant_id(t) for t in dict.fromkeys(tenants)]


def _fan_out(found: Survey, tenant_ids: list[str], policy: Policy) -> list[RepairRow]:
    if not tenant_ids:
        return []
    progress = create_progress_artifact(
        0.0, key="reconcile-progress", description="Reconcile: tenants repaired"
    )
    assert isinstance(progress, UUID)  # called from a sync flow: the sync variant ran
    futures = {
        reconcile_tenant.submit(t, found.keys_of(t), policy, found.rotation_id): t
        for t in tenant_ids
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


def _finish(report: ReconcileReport) -> State:
    rows, applied, surveyed = report.rows, report.applied, report.tenants_surveyed
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
    if report.failed:
        names = ", ".join(sorted({r.tenant_id for r in failed + attention}))
        return Failed(message=f"{summary}: {names}", data=report)
    return Completed(message=summary, data=report)
