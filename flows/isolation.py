"""Isolation check: the Prefect shell of `tenant_keys.isolation`, with its report artifact."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tenant_keys.isolation import MITIGATION, IsolationReport, check_pair, probe_isolation
from tenant_keys.services import get_services


@task(name="probe-isolation", cache_policy=NO_CACHE, persist_result=False)
def probe(tenant_a: str, tenant_b: str | None) -> IsolationReport:
    return probe_isolation(get_services(), tenant_a, tenant_b)


@flow(name="check-isolation")
def check_isolation(tenant_a: str, tenant_b: str | None = None) -> IsolationReport:
    """Try each tenant's key on the other's project (without tenant B: tenant A's key on the
    canary project) and record what LangSmith allowed."""
    check_pair(tenant_a, tenant_b)
    report = probe(tenant_a, tenant_b)
    create_markdown_artifact(
        key="isolation-check",
        markdown=report.markdown(),
        description="Cross-tenant read attempts: key ids never, outcomes only",
    )
    if not report.isolated:
        get_run_logger().warning(
            "tenants %s can read each other's traces: %s", report.tenants, MITIGATION
        )
    return report
