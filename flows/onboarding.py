"""Onboarding: the Prefect shell of `tenant_keys.onboarding`, a task per tenant."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.events import emit
from tasks.locks import tenant_locks
from tasks.runs import threads
from tenant_keys.models import IsolationMode
from tenant_keys.onboarding import (
    OnboardingResult,
    onboard,
    refuse_offboarded,
    validate_budget,
    validate_tenants,
)
from tenant_keys.services import get_services
from tenant_keys.workspaces import isolation_for


@task(
    name="onboard-tenant",
    task_run_name="onboard-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def onboard_tenant(
    tenant_id: str, trace_budget: int | None = None, isolation: IsolationMode | None = None
) -> OnboardingResult:
    logger = get_run_logger()
    try:
        result = onboard(get_services(), tenant_id, trace_budget, isolation)
    except Exception as exc:
        logger.error("tenant=%s step=onboard outcome=failed error=%s", tenant_id, exc)
        raise
    emit(result.events)
    logger.info(
        "tenant=%s step=onboard outcome=%s project=%s key_id=%s",
        tenant_id,
        result.outcome,
        result.project_id,
        result.key_id,
    )
    return result


@flow(name="onboard-tenants", task_runner=threads(16), log_prints=False)
def onboard_tenants(
    tenant_ids: list[str], trace_budget: int | None = None, isolation: str | None = None
) -> list[OnboardingResult]:
    """Onboard each tenant: its own project, key and secret. Existing tenants are left alone.
    `isolation` ('project' | 'workspace' | 'tagged') overrides the `isolation` setting for these
    tenants."""
    validate_tenants(tenant_ids)
    validate_budget(trace_budget)
    services = get_services()
    mode = isolation_for(services.settings, isolation)  # settings errors surface here too
    refuse_offboarded(services, tenant_ids)
    tenant_locks().ensure(tenant_ids)  # every later flow takes the tenant's lock
    futures = {
        tenant_id: onboard_tenant.submit(tenant_id, trace_budget, mode) for tenant_id in tenant_ids
    }
    results: list[OnboardingResult] = []
    for tenant_id, future in futures.items():
        future.wait()
        if future.state.is_completed():
            results.append(future.result())
        else:
            error = future.state.message or "failed"
            results.append(OnboardingResult(tenant_id=tenant_id, outcome="failed", error=error))
    create_table_artifact(
        key="onboarding",
        table=[r.model_dump(mode="json", exclude_none=True) for r in results],
        description=f"Onboarding of {len(results)} tenant(s): ids only, never keys",
    )
    failed = [r.tenant_id for r in results if r.outcome == "failed"]
    if failed:
        raise RuntimeError(
            f"onboarding failed for {len(failed)} of {len(results)} tenant(s): {', '.join(failed)}"
        )
    return results
