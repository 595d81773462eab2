"""Isolation check: can tenant A's key read tenant B's traces?

Traces one run per tenant with the tenant's own key (the real `langsmith` SDK), reads it back
with that key, then tries the cross reads. The report says what it saw: with a project per
tenant in one shared workspace, a workspace key reads every project of the workspace
(LangSmith Cloud's key scope is the workspace), which the report shows as a warning with the
mitigation; with a workspace per tenant the cross read is refused.
"""

from __future__ import annotations

import uuid
from typing import Literal

import langsmith
from langsmith.utils import LangSmithError
from pydantic import BaseModel

from tenant_keys.errors import BadInput
from tenant_keys.models import validate_tenant_id
from tenant_keys.services import Services

ReadOutcome = Literal["readable", "refused"]
MITIGATION = (
    "Tenant keys are workspace-scoped in LangSmith: a key reads every project of its "
    "workspace. Keep keys server-side only, or give each tenant its own workspace "
    "(isolation mode `workspace`, an org service key scoped to that workspace)."
)


class CrossRead(BaseModel):
    reader: str
    target: str
    outcome: ReadOutcome
    runs_seen: int
    detail: str


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
            "| reader key | target project | outcome | detail |",
            "|---|---|---|---|",
            *(f"| {c.reader} | {c.target} | {c.outcome} | {c.detail} |" for c in self.cross_reads),
        ]
        if not self.isolated:
            lines += ["", f"Mitigation: {MITIGATION}"]
        return "\n".join(lines)


def check_pair(tenant_a: str, tenant_b: str) -> tuple[str, str]:
    """Two valid, different tenant ids, checked before any side effect."""
    for tenant_id in (tenant_a, tenant_b):
        validate_tenant_id(tenant_id)
    if tenant_a == tenant_b:
        raise BadInput("name two different tenants")
    return tenant_a, tenant_b


def _client(services: Services, tenant_id: str) -> tuple[langsmith.Client, str]:
    """A client with the tenant's current key (read where it is used) and the tenant's project."""
    record = services.store.read(tenant_id)
    client = langsmith.Client(
        api_url=services.settings.langsmith_url,
        api_key=record.api_key.get_secret_value(),
        workspace_id=record.workspace_id,
    )
    return client, record.project_name


def _read(client: langsmith.Client, project: str, probe: str) -> tuple[ReadOutcome, int, str]:
    try:
        runs = [r for r in client.list_runs(project_name=project, is_root=True) if r.name == probe]
    except LangSmithError as exc:  # refused or not visible to this key
        return "refused", 0, type(exc).__name__
    return "readable", len(runs), f"{len(runs)} probe run(s) listed"


def probe_isolation(services: Services, tenant_a: str, tenant_b: str) -> IsolationReport:
    probe = f"isolation-probe-{uuid.uuid4().hex[:8]}"
    clients = {t: _client(services, t) for t in (tenant_a, tenant_b)}
    try:
        for tenant_id, (client, project) in clients.items():
            with langsmith.tracing_context(enabled=True, client=client, project_name=project):
                langsmith.traceable(name=probe)(lambda t: t)(tenant_id)
            client.flush()
        own_ok = all(_read(client, project, probe)[1] >= 1 for client, project in clients.values())
        cross = []
        for reader, target in ((tenant_a, tenant_b), (tenant_b, tenant_a)):
            outcome, seen, detail = _read(clients[reader][0], clients[target][1], probe)
            cross.append(
                CrossRead(
                    reader=reader, target=target, outcome=outcome, runs_seen=seen, detail=detail
                )
            )
    finally:
        for client, _ in clients.values():
            client.close()
    return IsolationReport(tenants=[tenant_a, tenant_b], own_reads_ok=own_ok, cross_reads=cross)
