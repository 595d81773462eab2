"""Per-project quota checks: each tenant's traces in the billing window against its budget.

Plain functions, importable without Prefect; `flows/quota.py` runs them as tasks.

Where the numbers come from (docs/quota.md has the details):
- budgets and the status last reported, from the tenant secrets' tags (ListSecrets
  carries them: one call per 100 tenants);
- traces, from `GET /api/v1/sessions?include_stats=true&stats_start_time=<window start>`
  filtered to `tenant-` names: one call per 100 projects. `run_count` there counts root
  runs, i.e. traces. The API has no end bound for it, so the window is "since its start",
  which is the current billing window.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tenant_keys.errors import BadInput, TenantNotFound
from tenant_keys.events import QuotaChangedEvent, QuotaStatus
from tenant_keys.langsmith import LangSmithAdmin, Project
from tenant_keys.layout import TAG_BUDGET, TAG_PROJECT, TAG_QUOTA_STATUS
from tenant_keys.models import project_name, validate_tenant_id
from tenant_keys.secret_store import SecretStore
from tenant_keys.services import Services

# "conflict": the tenant's project tag names a project that another tenant's tag names too, or
# one that is not named for it: not measured, never alerted on or limited.
RowStatus = Literal["ok", "warning", "exceeded", "project-missing", "conflict"]

PROJECT_NAME_FILTER = project_name("")  # "tenant-": every tenant project's name has it
DEFAULT_WARNING_SHARE = 0.8
# LangSmith's usage-limit type that matches a trace budget.
MONTHLY_TRACES = "monthly_traces"


class TenantBudget(BaseModel):
    """One tenant as its secret's tags describe it."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    project_id: str | None
    budget: int  # the tag's, or the default when the tag is missing or not a number
    reported: QuotaStatus


class ProjectUsage(BaseModel):
    model_config = ConfigDict(frozen=True)

    project_id: str
    project_name: str
    workspace_id: str
    traces: int
    last_run: datetime | None


class QuotaRow(BaseModel):
    """A tenant's standing in the window: what the table, the events and the tag are made of."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    project_id: str | None
    project_name: str | None
    workspace_id: str | None
    traces: int | None
    budget: int
    share: float | None  # traces / budget; inf for any trace on a budget of 0
    status: RowStatus
    reported: QuotaStatus  # the status remembered from the previous check
    last_run: datetime | None

    @property
    def new_status(self) -> QuotaStatus | None:
        """The status to remember, or None when nothing changed (or nothing could be measured)."""
        status = self.status
        if status == "project-missing" or status == "conflict" or status == self.reported:
            return None
        return status


# -- inputs ----------------------------------------------------------------------------------


def window_start(now: datetime, billing_day: int = 1) -> datetime:
    """Start (00:00 UTC) of the billing window holding `now`; windows start on `billing_day`."""
    if not 1 <= billing_day <= 28:
        raise BadInput(f"billing day {billing_day} is invalid: use 1-28 (every month has that day)")
    now = now.astimezone(UTC)
    start = now.replace(day=billing_day, hour=0, minute=0, second=0, microsecond=0)
    if start <= now:
        return start
    year, month = (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)
    return start.replace(year=year, month=month)


def as_utc(moment: datetime) -> datetime:
    """A window start as given (a naive time is read as UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def validate_warning_share(value: float) -> float:
    if not 0 < value <= 1:
        raise BadInput(f"warning share {value} is invalid: give a fraction of the budget, e.g. 0.8")
    return value


def parse_budget(value: str) -> int:
    """A budget as the CLI or a tag gives it: a whole number ≥ 0."""
    text = value.strip()
    if not text.isdigit():
        raise BadInput(
            f"budget {value!r} is invalid: give a whole number of traces ≥ 0, e.g. 50000"
        )
    return int(text)


def load_budgets(store: SecretStore, default_budget: int) -> list[TenantBudget]:
    """Every tenant's budget, project id and reported status, from ListSecrets (one call per 100)."""
    tenants = []
    for tenant_id, tags in store.iter_tenant_tags():
        raw_budget = tags.get(TAG_BUDGET, "")
        from_tag = raw_budget.strip().isdigit()
        reported = tags.get(TAG_QUOTA_STATUS, "ok")
        tenants.append(
            TenantBudget(
                tenant_id=tenant_id,
                project_id=tags.get(TAG_PROJECT) or None,
                budget=int(raw_budget) if from_tag else default_budget,
                reported=reported if reported in ("warning", "exceeded") else "ok",
            )
        )
    return tenants


def fetch_usage(
    langsmith: LangSmithAdmin, since: datetime, *, workspace_id: str | None = None
) -> dict[str, ProjectUsage]:
    """Traces since `since` of every `tenant-` project of a workspace, by project id.

    One call per 100 projects whose name contains `tenant-`; names are not trusted to mean
    a tenant (the caller matches project ids from the secrets' tags).
    """
    projects = langsmith.iter_projects(
        name_contains=PROJECT_NAME_FILTER,
        include_stats=True,
        stats_start_time=since,
        workspace_id=workspace_id,
    )
    return {p.id: _usage(p) for p in projects}


def _usage(project: Project) -> ProjectUsage:
    return ProjectUsage(
        project_id=project.id,
        project_name=project.name,
        workspace_id=project.tenant_id,
        traces=project.run_count or 0,
        last_run=project.last_run_start_time,
    )


def workspaces_to_search(
    store: SecretStore, tenants: Iterable[TenantBudget], shared_workspace: str | None
) -> set[str]:
    """Workspaces other than the shared one that hold projects of the given tenants.

    Called only for tenants whose project the shared listing did not show (a tenant with its
    own workspace, or a deleted project): one GetSecretValue each, for the workspace id.
    """
    found = set()
    for tenant in tenants:
        try:
            workspace = store.read(tenant.tenant_id).workspace_id
        except TenantNotFound:
            continue  # offboarded since the listing
        if workspace and workspace != shared_workspace:
            found.add(workspace)
    return found


# -- the assessment --------------------------------------------------------------------------


def share_of_budget(traces: int, budget: int) -> float:
    if budget > 0:
        return traces / budget
    return math.inf if traces else 0.0


def status_for(traces: int, budget: int, warning_share: float) -> QuotaStatus:
    """exceeded above the budget, warning from `warning_share` of it, else ok."""
    share = share_of_budget(traces, budget)
    if share > 1.0:
        return "exceeded"
    if traces and share >= warning_share:
        return "warning"
    return "ok"


def assess(
    tenants: Iterable[TenantBudget],
    usage: dict[str, ProjectUsage],
    warning_share: float,
) -> list[QuotaRow]:
    """One row per tenant, most used share of budget first; missing projects and conflicts last."""
    tenants = list(tenants)
    by_name = {u.project_name: u for u in usage.values()}
    tagged = Counter(t.project_id for t in tenants if t.project_id)
    rows = []
    for tenant in tenants:
        found = usage.get(tenant.project_id or "")
        if found is None and tenant.project_id is None:  # no project tag: fall back on the name
            found = by_name.get(project_name(tenant.tenant_id))
        shared = tenant.project_id is not None and tagged[tenant.project_id] > 1
        foreign = found is not None and found.project_name != project_name(tenant.tenant_id)
        row = _row(tenant, found, warning_share)
        if shared or foreign:
            row = row.model_copy(update={"status": "conflict", "traces": None, "share": None})
        rows.append(row)
    return sorted(rows, key=_rank)


def _row(tenant: TenantBudget, found: ProjectUsage | None, warning_share: float) -> QuotaRow:
    if found is None:
        return QuotaRow(
            tenant_id=tenant.tenant_id,
            project_id=tenant.project_id,
            project_name=project_name(tenant.tenant_id),
            workspace_id=None,
            traces=None,
            budget=tenant.budget,
            share=None,
            status="project-missing",
            reported=tenant.reported,
            last_run=None,
        )
    return QuotaRow(
        tenant_id=tenant.tenant_id,
        project_id=found.project_id,
        project_name=found.project_name,
        workspace_id=found.workspace_id,
        traces=found.traces,
        budget=tenant.budget,
        share=share_of_budget(found.traces, tenant.budget),
        status=status_for(found.traces, tenant.budget, warning_share),
        reported=tenant.reported,
        last_run=found.last_run,
    )


def _rank(row: QuotaRow) -> tuple[bool, float, str]:
    return (row.share is None, -(row.share or 0.0), row.tenant_id)


class QuotaTransition(BaseModel):
    tenant_id: str
    previous: QuotaStatus
    status: QuotaStatus
    event: str
    usage_limit: int | None = None
    error: str | None = None


def announce_change(
    services: Services, row: QuotaRow, since: datetime, *, enforce_limit: bool
) -> QuotaChangedEvent:
    """A changed tenant: enforce its budget (if asked) and describe the change as its event.
    The caller emits the event, then remembers the status (`remember_status`): the tag comes
    last, so a failure before it repeats the alert on the next run rather than losing it."""
    status = row.new_status
    assert status is not None, "only changed tenants get here"
    limit = enforce_budget(services.langsmith, row) if enforce_limit else None
    share = row.share
    return QuotaChangedEvent(
        tenant_id=row.tenant_id,
        status=status,
        previous=row.reported,
        project_id=row.project_id,
        traces=row.traces,
        budget=row.budget,
        percent_used=None if share is None or math.isinf(share) else round(share * 100, 1),
        window_start=since,
        usage_limit=limit,
    )


def remember_status(store: SecretStore, tenant_id: str, status: QuotaStatus) -> None:
    store.set_tags(tenant_id, {TAG_QUOTA_STATUS: status})


def set_budget(store: SecretStore, tenant_id: str, budget: int) -> None:
    """Change a tenant's trace budget (the tag onboarding set); the tenant must exist."""
    validate_tenant_id(tenant_id)
    if budget < 0:
        raise BadInput(f"budget {budget} is invalid: give a whole number of traces ≥ 0")
    store.describe(tenant_id)  # TenantNotFound says how to onboard it
    store.set_tags(tenant_id, {TAG_BUDGET: str(budget)})


# -- presentation ----------------------------------------------------------------------------


def format_share(share: float | None) -> str:
    if share is None:
        return "-"
    return "∞" if math.isinf(share) else f"{share * 100:.1f}"


def table_rows(rows: Iterable[QuotaRow]) -> list[dict[str, str | int | None]]:
    """The columns of the artifact and of `tenant-keys quota`: ids and counts, never keys."""
    return [
        {
            "tenant": r.tenant_id,
            "project": r.project_name,
            "traces": r.traces,
            "budget": r.budget,
            "%": format_share(r.share),
            "status": r.status,
            "last run": r.last_run.isoformat(timespec="seconds") if r.last_run else None,
        }
        for r in rows
    ]


def count_by_status(rows: Iterable[QuotaRow]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.status] += 1
    return dict(counts)


# -- enforcement (optional) ------------------------------------------------------------------


def dedicated_workspaces(rows: Iterable[QuotaRow], shared_workspace: str | None) -> set[str]:
    """Workspaces that hold exactly one tenant's project and are not the shared one.

    Only there does a workspace usage limit limit one tenant; in a shared workspace it
    would stop every tenant's tracing, so those tenants are only alerted on.
    """
    per_workspace: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.workspace_id:
            per_workspace[row.workspace_id] += 1
    return {ws for ws, n in per_workspace.items() if n == 1 and ws != shared_workspace}


def enforce_budget(langsmith: LangSmithAdmin, row: QuotaRow) -> int:
    """Set the tenant's workspace `monthly_traces` limit to its budget; returns the limit.

    Called on a change to exceeded (LangSmith then rejects the workspace's new traces) and
    on recovery (a raised budget lifts the limit with it).
    """
    if row.workspace_id is None:
        raise BadInput(f"tenant {row.tenant_id!r} has no measured workspace: nothing to limit")
    limit = langsmith.set_usage_limit(MONTHLY_TRACES, row.budget, workspace_id=row.workspace_id)
    return limit.limit_value
