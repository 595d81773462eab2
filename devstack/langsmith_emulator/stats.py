"""Aggregates over ingested runs: per-project stats (TracerSession) and ``/runs/stats``.

Conventions (documented in docs/langsmith-emulator.md):
* TracerSession ``run_count``, latency percentiles and ``error_rate`` are over **root runs**
  (traces), as the LangSmith projects page shows them; token and cost sums are over all runs.
* ``/runs/stats`` aggregates every run matching the filter (``is_root=true`` for traces).
* Costs are strings in TracerSession and numbers in RunStats, as in the spec.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from .clock import iso
from .state import Project, Run


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = max(0, math.ceil(q * len(sorted_values)) - 1)
    return round(sorted_values[idx], 6)


def _latency(run: Run) -> float | None:
    if run.end_time is None:
        return None
    return max(0.0, (run.end_time - run.start_time).total_seconds())


def aggregate(runs: Iterable[Run], *, roots_for_counts: bool) -> dict[str, Any]:
    """Aggregate runs. With ``roots_for_counts``, counts/latency/errors use root runs only."""
    count = errors = 0
    latencies: list[float] = []
    prompt = completion = total = 0
    pcost = ccost = tcost = 0.0
    have_cost = False
    last_start: datetime | None = None
    for run in runs:
        prompt += run.prompt_tokens
        completion += run.completion_tokens
        total += run.total_tokens
        if run.total_cost is not None or run.prompt_cost is not None:
            have_cost = True
            pcost += run.prompt_cost or 0.0
            ccost += run.completion_cost or 0.0
            tcost += (
                run.total_cost
                if run.total_cost is not None
                else (run.prompt_cost or 0.0) + (run.completion_cost or 0.0)
            )
        if last_start is None or run.start_time > last_start:
            last_start = run.start_time
        if roots_for_counts and not run.is_root:
            continue
        count += 1
        if run.error is not None:
            errors += 1
        lat = _latency(run)
        if lat is not None:
            latencies.append(lat)
    latencies.sort()
    return {
        "run_count": count,
        "latency_p50": _percentile(latencies, 0.5),
        "latency_p99": _percentile(latencies, 0.99),
        "first_token_p50": None,
        "first_token_p99": None,
        "total_tokens": total,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_cost": tcost if have_cost else None,
        "prompt_cost": pcost if have_cost else None,
        "completion_cost": ccost if have_cost else None,
        "last_run_start_time": iso(last_start),
        "error_rate": (errors / count) if count else None,
        "streaming_rate": 0.0 if count else None,
    }


def _dec(value: float | None) -> str | None:
    if value is None:
        return None
    return str(Decimal(repr(value)).normalize()) if value else "0"


def project_stats(project: Project, start: datetime | None) -> dict[str, Any]:
    """TracerSession stats fields; cached per (project version, start)."""
    cache_key = (project.version, start)
    cached = project.stats_cache.get(cache_key)
    if cached is not None:
        return cached
    runs: Iterable[Run] = project.runs.values()
    if start is not None:
        runs = [r for r in runs if r.start_time >= start]
    agg = aggregate(runs, roots_for_counts=True)
    out = {
        **agg,
        "total_cost": _dec(agg["total_cost"]),
        "prompt_cost": _dec(agg["prompt_cost"]),
        "completion_cost": _dec(agg["completion_cost"]),
        "feedback_stats": {},
        "session_feedback_stats": {},
        "run_facets": [],
        "test_run_number": None,
    }
    if len(project.stats_cache) > 8:
        project.stats_cache.clear()
    project.stats_cache[cache_key] = out
    return out


EMPTY_STATS = {
    "run_count": None,
    "latency_p50": None,
    "latency_p99": None,
    "first_token_p50": None,
    "first_token_p99": None,
    "total_tokens": None,
    "prompt_tokens": None,
    "completion_tokens": None,
    "total_cost": None,
    "prompt_cost": None,
    "completion_cost": None,
    "last_run_start_time": None,
    "feedback_stats": None,
    "session_feedback_stats": None,
    "run_facets": None,
    "error_rate": None,
    "streaming_rate": None,
    "test_run_number": None,
}


def run_stats(runs: Iterable[Run]) -> dict[str, Any]:
    agg = aggregate(runs, roots_for_counts=False)
    agg.update(
        {
            "median_tokens": None,
            "feedback_stats": {},
            "run_facets": [],
        }
    )
    return agg
