"""Workspace usage limits (monthly trace caps) and their enforcement at ingest.

A workspace enters the reject set once the number of traces (root runs) received this calendar
month (UTC, emulator clock) reaches a ``monthly_traces`` limit, or the longlived ones reach a
``monthly_longlived_traces`` limit; new traces are then answered 429. Real LangSmith applies
limits approximately and with a cache delay; the emulator applies them at once.
"""

from __future__ import annotations

from typing import Any

from .state import Store, Workspace

_TENANT_LIMIT_TYPE = {
    "monthly_traces": "user_defined_monthly_traces",
    "monthly_longlived_traces": "user_defined_monthly_longlived_traces",
}


def monthly_counts(store: Store, ws: Workspace) -> dict[str, int]:
    now = store.clock.now()
    long_ = ws.monthly_traces.get((now.year, now.month, "longlived"), 0)
    short = ws.monthly_traces.get((now.year, now.month, "shortlived"), 0)
    return {"monthly_traces": long_ + short, "monthly_longlived_traces": long_}


def _exceeded(store: Store, ws: Workspace) -> tuple[str, int] | None:
    counts = monthly_counts(store, ws)
    for limit in ws.usage_limits.values():
        if counts.get(limit.limit_type, 0) >= limit.limit_value:
            return limit.limit_type, limit.limit_value
    return None


def reject_reason(store: Store, ws: Workspace) -> str | None:
    hit = _exceeded(store, ws)
    if hit is None:
        return None
    return f"Usage limit {hit[0]} of {hit[1]} exceeded for this workspace"


def limit_info(store: Store, ws: Workspace) -> dict[str, Any]:
    """TenantUsageLimitInfo."""
    hit = _exceeded(store, ws)
    if hit is None:
        return {"in_reject_set": False, "usage_limit_type": None, "tenant_limit": None}
    return {
        "in_reject_set": True,
        "usage_limit_type": _TENANT_LIMIT_TYPE[hit[0]],
        "tenant_limit": hit[1],
    }
