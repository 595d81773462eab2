"""Tenants for the benchmarks: onboarded with the onboarding steps, 32 at a time, without a
Prefect task per tenant (seeding is not what a benchmark measures)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def seed(count: int) -> list[str]:
    """Onboard `bench-00000`... and create their locks; returns the tenant ids."""
    from flows.onboarding import onboard_one
    from tasks.locks import ensure_tenant_locks

    tenants = [f"bench-{n:05d}" for n in range(count)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(onboard_one, tenants))
    assert all(r.outcome == "created" for r in results)
    ensure_tenant_locks(tenants)
    return tenants
