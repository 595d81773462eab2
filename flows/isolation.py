"""Isolation check: can tenant A's key read tenant B's traces?

Traces one run per tenant with the tenant's own key (the real `langsmith` SDK), reads
it back with that key, then tries the cross reads. The report says what it saw: with a
project per tenant in one shared workspace, a workspace key reads every project of the
workspace (LangSmith Cloud's key scope is the workspace), which the report shows as a
warning with the mitigation; with a workspace per tenant the cross read is refused.
"""

from __future__ import annotations

import uuid
from typing import Literal

import langsmith
from langsmith.utils import LangSmithError
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tenant_keys.errors import BadInput
from tenant_keys.models import validate_tenant_id
from tenant_keys.services import get_services

Outcome = Literal["readable", "refused"]
MITIGATION = (
    "Tenant keys are workspace-scoped in LangSmith: a key reads every project of its "
    "workspace. Keep keys server-side only, or give each tenant its own workspace "
    "(isolation mode `workspace`, an org service key scoped to that workspace)."
)


class CrossRead(BaseModel):
    reader: str
    target: str
    outcome: Outcome
    runs_seen: int
    detail: str


class IsolationReport(BaseModel):
    tenants: list[str]
    own_reads_ok: bool
    cross_reads: list[CrossRead]

    @property
    def isolated(self) -> bool:
        return all(read.outcome == "refused" for read in self.cross_reads)


def _client(tenant_id: str) -> tuple[langsmith.Client, str]:
    """A client with the tenant's current key (read where it is used) and the tenant's project."""
    services = get_services()
    record = services.store.read(tenant_id)
    client = langsmith.Client(
        api_url=services.settings.langsmith_url,
        api_key=record.api_key.get_secret_value(),
        workspace_id=record.workspace_id,
    )
    return client, record.project_name


def _read(client: langsmith.Client, project: str, probe: str) -> tuple[Outcome, int, str]:
    try:
        runs = [r for r in client.list_runs(project_name=project, is_root=True) if r.name == probe]
    except LangSmithError as exc:  # refused or not visible to this key
        return "refused", 0, type(exc).__name__
    return "readable", len(runs), f"{len(runs)} probe run(s) listed"


@task(name="probe-isolation", cache_policy=NO_CACHE, persist_result=False)
def probe_isolation(tenant_a: str, tenant_b: str) -> IsolationReport:
    probe = f"isolation-probe-{uuid.uuid4().hex[:8]}"
    clients = {t: _client(t) for t in (tenant_a, tenant_b)}
    for tenant_id, (client, project) in clients.items():
        with langsmith.tracing_context(enabled=True, client=client, project_name=project):
            langsmith.traceable(name=probe)(lambda t: t)(tenant_id)
        client.flush()
    own_ok = all(_read(client, project, probe)[1] >= 1 for client, project in clients.values())
    cross = []
    for reader, target in ((tenant_a, tenant_b), (tenant_b, tenant_a)):
        outcome, seen, detail = _read(clients[reader][0], clients[target][1], probe)
        cross.append(
            CrossRead(reader=reader, target=target, outcome=outcome, runs_seen=seen, detail=detail)
        )
    for client, _ in clients.values():
        client.close()
    return IsolationReport(tenants=[tenant_a, tenant_b], own_reads_ok=own_ok, cross_reads=cross)


def render(report: IsolationReport) -> str:
    verdict = "isolated" if report.isolated else "**NOT isolated** (warning)"
    lines = [
        f"# Isolation check: {' / '.join(report.tenants)}",
        "",
        f"Verdict: {verdict}. Each tenant read its own probe run: {'yes' if report.own_reads_ok else 'NO'}.",
        "",
        "| reader key | target project | outcome | detail |",
        "|---|---|---|---|",
        *(f"| {c.reader} | {c.target} | {c.outcome} | {c.detail} |" for c in report.cross_reads),
    ]
    if not report.isolated:
        lines += ["", f"Mitigation: {MITIGATION}"]
    return "\n".join(lines)


@flow(name="check-isolation")
def check_isolation(tenant_a: str, tenant_b: str) -> IsolationReport:
    """Try each tenant's key on the other's project and record what LangSmith allowed."""
    for tenant_id in (tenant_a, tenant_b):
        validate_tenant_id(tenant_id)
    if tenant_a == tenant_b:
        raise BadInput("name two different tenants")
    report = probe_isolation(tenant_a, tenant_b)
    create_markdown_artifact(
        key="isolation-check",
        markdown=render(report),
        description="Cross-tenant read attempts: key ids never, outcomes only",
    )
    if not report.isolated:
        get_run_logger().warning(
            "tenants %s can read each other's traces: %s", report.tenants, MITIGATION
        )
    return report
