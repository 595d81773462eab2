"""Quota check: every tenant's traces in the billing window against its budget, hourly.

Order: budgets (ListSecrets tags) and usage (projects list with stats) are fetched at
once, in a few paginated calls each → statuses are computed → each tenant whose status
changed gets one task: enforce (optional) → event → remember the status in its tag.

Task granularity: one task for each paginated fetch, and one per *changed* tenant, not one
per tenant. An hourly check of 10,000 tenants as 10,000 tasks would spend 70-200 s in
Prefect's per-task overhead alone (reference/prefect.md); changes are few per hour.

Compensation is forward and at-least-once: the status tag is written last, so a failure
before it repeats the tenant's alert on the next run rather than losing it.
"""

from __future__ import annotations

from datetime import datetime

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.states import Completed, Failed
from pydantic import BaseModel

from tasks.events import emit
from tasks.runs import threads
from tenant_keys.events import QUOTA_EVENTS
from tenant_keys.models import utcnow
from tenant_keys.quota import (
    ProjectUsage,
    QuotaRow,
    QuotaTransition,
    TenantBudget,
    announce_change,
    as_utc,
    assess,
    count_by_status,
    dedicated_workspaces,
    fetch_usage,
    format_share,
    load_budgets,
    remember_status,
    table_rows,
    validate_warning_share,
    window_start,
    workspaces_to_search,
)
from tenant_keys.services import get_services

# A table artifact past this many rows is more than anyone scrolls in the UI and a sizeable
# write to Prefect's database each hour; the rows beyond it are the least used (the table is
# sorted), and `tenant-keys quota` prints them all.
ARTIFACT_MAX_ROWS = 1000


class QuotaReport(BaseModel):
    """What the flow's final state carries (ids and counts only) for the CLI to print."""

    window_start: datetime
    rows: list[QuotaRow]
    transitions: list[QuotaTransition]


# -- tasks -----------------------------------------------------------------------------------


@task(name="load-budgets", cache_policy=NO_CACHE, persist_result=False)
def load_tenant_budgets() -> list[TenantBudget]:
    services = get_services()
    return load_budgets(services.store, services.settings.default_trace_budget)


@task(name="fetch-usage", cache_policy=NO_CACHE, persist_result=False)
def fetch_shared_usage(since: datetime) -> dict[str, ProjectUsage]:
    return fetch_usage(get_services().langsmith, since)


@task(name="fetch-usage-elsewhere", cache_policy=NO_CACHE, persist_result=False)
def fetch_unlisted_usage(
    unlisted: list[TenantBudget], since: datetime, shared_workspace: str | None
) -> dict[str, ProjectUsage]:
    """Usage of tenants in workspaces of their own (their project was not in the shared list)."""
    services = get_services()
    usage: dict[str, ProjectUsage] = {}
    for workspace in sorted(workspaces_to_search(services.store, unlisted, shared_workspace)):
        usage.update(fetch_usage(services.langsmith, since, workspace_id=workspace))
    return usage


@task(
    name="record-quota-status",
    task_run_name="quota-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def record_status(
    tenant_id: str, row: QuotaRow, since: datetime, enforce_limit: bool
) -> QuotaTransition:
    """Enforce (if asked) → emit the change's event → remember the new status."""
    services = get_services()
    event = announce_change(services, row, since, enforce_limit=enforce_limit)
    emit([event])
    remember_status(services.store, tenant_id, event.status)
    get_run_logger().info(
        "tenant=%s quota %s -> %s traces=%s budget=%s event=%s usage_limit=%s",
        tenant_id,
        row.reported,
        event.status,
        row.traces,
        row.budget,
        event.name,
        event.usage_limit,
    )
    return QuotaTransition(
        tenant_id=tenant_id,
        previous=row.reported,
        status=event.status,
        event=event.name,
        usage_limit=event.usage_limit,
    )


# -- the flow --------------------------------------------------------------------------------


@flow(name="check-quotas", task_runner=threads(16))
def check_quotas(
    warning_share: float = 0.8,
    billing_day: int = 1,
    since: datetime | None = None,
    enforce: bool = False,
) -> State:
    """Compare every tenant's traces in the billing window with its budget; alert on changes.

    warning_share: fraction of the budget from which a tenant is in `warning`.
    billing_day: day of the month the billing window starts (1-28, UTC).
    since: an explicit window start, instead of the one `billing_day` gives.
    enforce: also set a LangSmith usage limit for tenants with a workspace of their own.
    """
    logger = get_run_logger()
    validate_warning_share(warning_share)
    start = as_utc(since) if since else window_start(utcnow(), billing_day)
    services = get_services()  # settings errors surface here, before any call

    budgets_future = load_tenant_budgets.submit()
    usage_future = fetch_shared_usage.submit(start)
    budgets, usage = budgets_future.result(), usage_future.result()

    shared = services.settings.langsmith_workspace_id or next(
        (u.workspace_id for u in usage.values()), None
    )
    rows = assess(budgets, usage, warning_share)
    missing = {r.tenant_id for r in rows if r.status == "project-missing"}
    if missing:
        unlisted = [t for t in budgets if t.tenant_id in missing]
        usage = {**usage, **fetch_unlisted_usage(unlisted, start, shared)}
        rows = assess(budgets, usage, warning_share)

    dedicated = dedicated_workspaces(rows, shared) if enforce else set()
    changed = [r for r in rows if r.new_status is not None]
    futures = {
        r.tenant_id: record_status.submit(
            r.tenant_id, r, start, enforce_limit=r.workspace_id in dedicated
        )
        for r in changed
    }
    transitions = [_collect(futures[r.tenant_id], r) for r in changed]

    create_table_artifact(
        key="quota",
        table=table_rows(rows[:ARTIFACT_MAX_ROWS]),
        description=_artifact_description(start, len(rows)),
    )
    failed = [t for t in transitions if t.error]
    summary = _summary(start, rows, transitions)
    logger.info(summary)
    report = QuotaReport(window_start=start, rows=rows, transitions=transitions)
    if failed:
        names = ", ".join(t.tenant_id for t in failed)
        return Failed(message=f"{summary}; {len(failed)} not recorded: {names}", data=report)
    return Completed(message=summary, data=report)


def _collect(future: PrefectFuture[QuotaTransition], row: QuotaRow) -> QuotaTransition:
    future.wait()
    if future.state.is_completed():
        return future.result()
    assert row.new_status is not None
    return QuotaTransition(
        tenant_id=row.tenant_id,
        previous=row.reported,
        status=row.new_status,
        event=QUOTA_EVENTS[row.new_status],
        error=future.state.message or "failed",
    )


def _summary(start: datetime, rows: list[QuotaRow], transitions: list[QuotaTransition]) -> str:
    counts = count_by_status(rows)
    statuses = ("ok", "warning", "exceeded", "project-missing", "conflict")
    parts = [f"{counts.get(s, 0)} {s}" for s in statuses]
    top = next((r for r in rows if r.share is not None), None)
    most = f"; most used: {top.tenant_id} {format_share(top.share)} %" if top else ""
    return (
        f"quota since {start.date().isoformat()}: {len(rows)} tenant(s), {', '.join(parts)}; "
        f"{len(transitions)} status change(s){most}"
    )


def _artifact_description(start: datetime, total: int) -> str:
    shown = f"the {ARTIFACT_MAX_ROWS} most used of {total}" if total > ARTIFACT_MAX_ROWS else total
    return f"Trace quota since {start.isoformat()}: {shown} tenant(s), by share of budget used"
