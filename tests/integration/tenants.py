"""Tenants set up for an integration test without a flow run of their own: the core's
onboarding, plus the tenant's Prefect lock (what the onboarding flow adds). Tests of the
onboarding flow itself use the flow."""

from __future__ import annotations

from tasks.locks import tenant_locks
from tenant_keys.onboarding import OnboardingResult, onboard
from tenant_keys.services import get_services
from tenant_keys.workspaces import isolation_for


def onboard_directly(
    tenant_ids: list[str], trace_budget: int | None = None, isolation: str | None = None
) -> list[OnboardingResult]:
    services = get_services()
    mode = isolation_for(services.settings, isolation)
    results = [onboard(services, t, trace_budget, mode) for t in tenant_ids]
    assert all(r.outcome == "created" for r in results), results
    tenant_locks().ensure(tenant_ids)
    return results
