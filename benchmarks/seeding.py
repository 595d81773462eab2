"""Tenants for the benchmarks: onboarded with the onboarding steps, 32 at a time, without a
Prefect task per tenant (seeding is not what a benchmark measures)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def seed(count: int) -> list[str]:
    """Onboard `bench-00000`... and create their locks; returns the tenant ids."""
    from tasks.events import emit
    from tasks.locks import tenant_locks
    from tenant_keys.onboarding import OnboardingResult, onboard
    from tenant_keys.services import get_services

    services = get_services()

    def onboard_one(tenant_id: str) -> OnboardingResult:
        result = onboard(services, tenant_id)
        emit(result.events)  # as the onboarding flow's task does
        return result

    tenants = [f"bench-{n:05d}" for n in range(count)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(onboard_one, tenants))
    assert all(r.outcome == "created" for r in results)
    tenant_locks().ensure(tenants)
    return tenants
