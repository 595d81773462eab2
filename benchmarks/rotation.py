"""Rotation fan-out benchmark: how close the weekly rotation sits to the rate-limit bound.

Starts the local stack with the LangSmith emulator and moto in processes of their own,
seeds N tenants, then runs the `rotate-keys` flow through a Prefect server three times:

1. limited: emulated latency, LangSmith's rate limit and Secrets Manager's 50 writes/s on;
   prints wall time, calls per system, 429s and the ratio of wall time to the binding
   bound (calls / limit, per limit);
2. langsmith-bound: the same without the write pacing, so LangSmith's limit binds;
3. unlimited: same latency, no LangSmith rate limit and no pacing of Secrets Manager
   writes (moto has no quota; AWS's 50 writes/s would cap any loop at 10 rotations/s);
   compares tenants/s with a plain sequential loop (mint -> store -> delete per tenant,
   no Prefect) on a sample of tenants.

    .venv/bin/python benchmarks/rotation.py --tenants 1000 --latency-ms 50 --limit 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Every tenant's log line still goes to the Prefect server, as in a real run; only the
# terminal is spared a thousand of them (before prefect is imported: it reads this then).
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

from benchmarks.seeding import seed
from devstack.stack import LocalStack

SM_WRITES = {
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "TagResource",
    "CreateSecret",
    "DeleteSecret",
}
SM_WRITES_PER_SECOND = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--limit", type=int, default=2000, help="LangSmith calls per minute per key"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential-sample", type=int, default=50)
    parser.add_argument("--skip-unlimited", action="store_true")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Path(tmp), separate_processes=True) as stack,
    ):
        os.environ.update(stack.env())
        os.environ["TENANT_KEYS_MAX_CONCURRENCY"] = str(args.concurrency)

        print(f"seeding {args.tenants} tenants ...", flush=True)
        started = time.monotonic()
        _set_limits(stack, latency_ms=0, langsmith=None, secret_writes=None)  # not measured
        tenants = seed(args.tenants)
        print(f"  seeded in {time.monotonic() - started:.1f} s")

        _set_limits(
            stack, args.latency_ms, langsmith=args.limit, secret_writes=SM_WRITES_PER_SECOND
        )
        report("limited", run_rotation(stack, "bench-limited"), args, len(tenants))

        if args.skip_unlimited:
            return
        # What the fan-out does where LangSmith's limit binds (an account whose write quota
        # was raised): does it sit at that bound without a 429 storm?
        _set_limits(stack, args.latency_ms, langsmith=args.limit, secret_writes=None)
        report("langsmith-bound", run_rotation(stack, "bench-langsmith"), args, len(tenants))

        _set_limits(stack, args.latency_ms, langsmith=None, secret_writes=None)
        unlimited = run_rotation(stack, "bench-unlimited")
        report("unlimited", unlimited, args, len(tenants))
        sequential = sequential_baseline(tenants[: args.sequential_sample])
        fanout_rate = len(tenants) / unlimited["wall"]
        print(
            f"\nsequential loop (mint -> store -> delete, no Prefect), {len(sequential)} tenants:"
        )
        print(
            f"  {1 / statistics.mean(sequential):.1f} tenants/s "
            f"(median {statistics.median(sequential) * 1000:.0f} ms per tenant)"
        )
        print(
            f"  fan-out / sequential throughput: {fanout_rate * statistics.mean(sequential):.1f}x "
            "(goal: >= 4x)"
        )


def _set_limits(
    stack: LocalStack, latency_ms: float, *, langsmith: int | None, secret_writes: float | None
) -> None:
    """The emulator's latency and rate limit, and the client's pacing to match (None: off)."""
    limits = {"other": langsmith} if langsmith else False
    stack.langsmith.control.configure(latency_ms=latency_ms, rate_limits=limits)
    os.environ["TENANT_KEYS_LANGSMITH_CALLS_PER_MINUTE"] = str(langsmith or 1_000_000)
    os.environ["TENANT_KEYS_SECRET_WRITES_PER_SECOND"] = str(secret_writes or 100_000)
    from tenant_keys.services import reset_services

    reset_services()


def run_rotation(stack: LocalStack, rotation_id: str) -> dict[str, Any]:
    from prefect.logging.handlers import APILogHandler

    from flows.rotation import rotate_keys
    from tenant_keys.services import get_services

    sm_calls: Counter[str] = Counter()
    # Count Secrets Manager calls by operation through botocore's event system.
    get_services().store._client.meta.events.register(
        "before-call.secrets-manager", lambda model, **_: sm_calls.update([model.name])
    )
    stack.langsmith.control.reset_request_counts()
    started = time.monotonic()
    state = rotate_keys("all", rotation_id=rotation_id, return_state=True)
    wall = time.monotonic() - started
    counts = stack.langsmith.control.request_counts()
    APILogHandler().flush()  # the run's log lines reach the server before it stops
    return {"wall": wall, "state": state, "langsmith": counts, "secretsmanager": sm_calls}


def report(name: str, run: dict[str, Any], args: argparse.Namespace, tenants: int) -> None:
    counts = run["langsmith"]
    admin_key_calls = sum(
        n
        for route, n in counts["by_route"].items()
        if route in ("POST /api/v1/api-key", "DELETE /api/v1/api-key/{api_key_id}")
    )
    sm = run["secretsmanager"]
    sm_writes = sum(n for op, n in sm.items() if op in SM_WRITES)
    # Each limit that is on gives a bound: its calls / its rate. The largest binds.
    bounds: dict[str, float] = {}
    if name in ("limited", "langsmith-bound"):
        bounds[f"LangSmith (admin calls / {args.limit} per min)"] = admin_key_calls / (
            args.limit / 60.0
        )
    if name == "limited":
        bounds[f"Secrets Manager (writes / {SM_WRITES_PER_SECOND:.0f} per s)"] = (
            sm_writes / SM_WRITES_PER_SECOND
        )
    print(f"\n== {name}: {tenants} tenants, latency {args.latency_ms:.0f} ms ==")
    print(f"  final state: {run['state'].message}")
    print(f"  wall time: {run['wall']:.1f} s, {tenants / run['wall']:.1f} tenants/s")
    print(f"  LangSmith calls: {counts['total']} (admin key: {admin_key_calls}); by route:")
    for route, n in sorted(counts["by_route"].items()):
        print(f"    {route}: {n}")
    print(f"  429s received: {counts['by_status'].get('429', 0)}")
    print(
        f"  Secrets Manager calls: {sum(sm.values())}, writes {sm_writes} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(sm.items()))})"
    )
    if not bounds:
        print("  limits: none")
        return
    for limit, seconds in bounds.items():
        print(f"  bound of {limit}: {seconds:.1f} s")
    print(f"  wall / binding bound: {run['wall'] / max(bounds.values()):.3f} (goal: <= 1.15)")


def sequential_baseline(tenants: list[str]) -> list[float]:
    """Per-tenant seconds of the plain loop: mint a key, store it as AWSPENDING, delete it."""
    from tenant_keys.keys import mint_key, record_for
    from tenant_keys.models import version_token
    from tenant_keys.services import get_services

    services = get_services()
    durations = []
    for tenant_id in tenants:
        started = time.monotonic()
        base = services.store.read(tenant_id)
        created = mint_key(services, tenant_id, "bench-seq")
        record = record_for(
            created,
            project_id=base.project_id,
            project_name=base.project_name,
            workspace_id=base.workspace_id,
            rotation_id="bench-seq",
        )
        token = version_token(tenant_id, "bench-seq")
        services.store.put_pending(tenant_id, record, token=token)
        services.langsmith.delete_key(created.id)
        services.store.remove_label(tenant_id, "AWSPENDING", from_version=token)
        durations.append(time.monotonic() - started)
    return durations


if __name__ == "__main__":
    main()
