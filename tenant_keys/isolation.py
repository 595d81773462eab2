"""Isolation check: can tenant A's key read tenant B's traces (or the canary project's)?

Traces one run per tenant with the tenant's own key (the real `langsmith` SDK), reads it back
with that key through the runs query (`client.runs.query`), then tries the cross reads: the
runs, and the probe tagged isolation proves its keys with (`tagged.probe`: its own project
read, the other project and its runs refused). Without a second tenant, the other project is
the canary project, which no tenant key may read. The report says what it saw: with a project
per tenant in one shared workspace, a workspace key reads every project of the workspace
(LangSmith Cloud's key scope is the workspace), which the report shows as a warning with the
mitigation; with a workspace per tenant, or tagged isolation, the cross read is refused.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

import langsmith
from pydantic import BaseModel, ConfigDict

from tenant_keys import tagged
from tenant_keys.errors import BadInput
from tenant_keys.layout import TenantKeyRecord
from tenant_keys.models import validate_tenant_id
from tenant_keys.services import Services

ReadOutcome = Literal["readable", "refused"]
MITIGATION = (
    "Tenant keys are workspace-scoped in LangSmith: a key reads every project of its "
    "workspace. Keep keys server-side only, or give each tenant its own workspace "
    "(isolation mode `workspace`, an org service key scoped to that workspace), or confine "
    "each tenant's keys to its tagged project (isolation mode `tagged`, which needs ABAC)."
)
CANARY = "canary"  # the target's name in a report when no second tenant is given


class CrossRead(BaseModel):
    reader: str
    target: str
    outcome: ReadOutcome  # readable when either read below was
    runs_seen: int
    detail: str
    project: ReadOutcome = "refused"  # the target project, read by id
    runs: ReadOutcome = "refused"  # the target's runs, through the runs query


class IsolationReport(BaseModel):
    tenants: list[str]
    own_reads_ok: bool
    cross_reads: list[CrossRead]

    @property
    def isolated(self) -> bool:
        return all(read.outcome == "refused" for read in self.cross_reads)

    def markdown(self) -> str:
        verdict = "isolated" if self.isolated else "**NOT isolated** (warning)"
        own = "yes" if self.own_reads_ok else "NO"
        lines = [
            f"# Isolation check: {' / '.join(self.tenants)}",
            "",
            f"Verdict: {verdict}. Each tenant read its own probe run: {own}.",
            "",
            "| reader key | target project | outcome | project | runs | detail |",
            "|---|---|---|---|---|---|",
            *(
                f"| {c.reader} | {c.target} | {c.outcome} | {c.project} | {c.runs} | {c.detail} |"
                for c in self.cross_reads
            ),
        ]
        if not self.isolated:
            lines += ["", f"Mitigation: {MITIGATION}"]
        return "\n".join(lines)


def check_pair(tenant_a: str, tenant_b: str | None) -> list[str]:
    """Two valid, different tenant ids (or one, checked against the canary project), checked
    before any side effect."""
    tenants = [tenant_a] if tenant_b is None else [tenant_a, tenant_b]
    for tenant_id in tenants:
        validate_tenant_id(tenant_id)
    if tenant_a == tenant_b:
        raise BadInput("name two different tenants, or one to check against the canary project")
    return tenants


class _Tenant(BaseModel):
    """A tenant as the probe uses it: a client with its current key, its project."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: langsmith.Client
    project_id: str
    project_name: str
    record: TenantKeyRecord


def _tenant(services: Services, tenant_id: str) -> _Tenant:
    record = services.store.read(tenant_id)  # the key, read where it is used
    client = langsmith.Client(
        api_url=services.settings.langsmith_url,
        api_key=record.api_key.get_secret_value(),
        workspace_id=record.workspace_id,
    )
    return _Tenant(
        client=client,
        project_id=record.project_id,
        project_name=record.project_name,
        record=record,
    )


def _read(reader: langsmith.Client, target: _Tenant, probe: str) -> tuple[ReadOutcome, int, str]:
    """What the reader's key sees of the probe's runs in the target's project, through the runs
    query (the window covers the probe: it was sent seconds ago)."""

    async def names() -> list[str]:
        since = datetime.now(UTC) - timedelta(hours=1)
        query = reader.runs.query(
            project_ids=[target.project_id], min_start_time=since, is_root=True, selects=["NAME"]
        )
        return [run.name async for run in query if run.name is not None]

    try:
        seen = sum(name == probe for name in asyncio.run(names()))
    except Exception as exc:
        # Refused (401/403) or not visible to this key (404); anything else is not an answer.
        status = getattr(exc, "status_code", None)
        if status not in (401, 403, 404):
            raise
        return "refused", 0, f"{type(exc).__name__} ({status})"
    return "readable", seen, f"{seen} probe run(s) listed"


def probe_isolation(services: Services, tenant_a: str, tenant_b: str | None) -> IsolationReport:
    """Each tenant's key against the other's project, or tenant A's against the canary project
    when no tenant B is given."""
    probe = f"isolation-probe-{uuid.uuid4().hex[:8]}"
    names = check_pair(tenant_a, tenant_b)
    tenants = {t: _tenant(services, t) for t in names}
    try:
        for tenant_id, tenant in tenants.items():
            with langsmith.tracing_context(
                enabled=True, client=tenant.client, project_name=tenant.project_name
            ):
                langsmith.traceable(name=probe)(lambda t: t)(tenant_id)
            tenant.client.flush()
        own_ok = all(_read(t.client, t, probe)[1] >= 1 for t in tenants.values())
        if tenant_b is None:
            pairs = [(tenant_a, CANARY)]
            canary = tagged.ensure_canary(services.langsmith)
            targets = {CANARY: (canary.id, f"the canary project {tagged.CANARY_PROJECT}")}
        else:
            pairs = [(tenant_a, tenant_b), (tenant_b, tenant_a)]
            targets = {t: (tenants[t].project_id, f"tenant {t}'s project") for t in names}
        cross = []
        for reader, target in pairs:
            project_id, label = targets[target]
            seen = tagged.probe(
                services.langsmith, tenants[reader].record, project_id, label, attempts=1
            )
            own_ok = own_ok and seen.own_project == "readable"
            runs_seen, detail = 0, "no probe run of its own"
            if target in tenants:
                _, runs_seen, detail = _read(tenants[reader].client, tenants[target], probe)
            project: ReadOutcome = "readable" if seen.other_project == "readable" else "refused"
            runs: ReadOutcome = "readable" if seen.other_runs == "readable" else "refused"
            readable = "readable" in (project, runs) or runs_seen > 0
            cross.append(
                CrossRead(
                    reader=reader,
                    target=target,
                    outcome="readable" if readable else "refused",
                    runs_seen=runs_seen,
                    detail=detail,
                    project=project,
                    runs=runs,
                )
            )
    finally:
        for tenant in tenants.values():
            tenant.client.close()
    return IsolationReport(tenants=names, own_reads_ok=own_ok, cross_reads=cross)
