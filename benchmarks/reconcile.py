"""Reconcile benchmark: what an hourly sweep costs, and what the repairs cost.

Starts the local stack (emulator and moto in processes of their own) and seeds N tenants.
It breaks a few of them: some get their current key deleted behind the tool's back (drift),
others get an orphan key. Then it runs the `reconcile` flow three times, each through a
Prefect server:

1. a dry run (survey + plan);
2. an apply;
3. a second dry run, which must plan nothing.

For each run it prints the wall time, the calls per outside system and the repairs.

    .venv/bin/python benchmarks/reconcile.py --tenants 300 --broken 10 --latency-ms 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.seeding import seed
from devstack.stack import LocalStack


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--broken", type=int, default=10, help="tenants of each broken kind")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Path(tmp), separate_processes=True) as stack,
    ):
        os.environ.update(stack.env())
        os.environ["TENANT_KEYS_MAX_CONCURRENCY"] = str(args.concurrency)
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

        print(f"seeding {args.tenants} tenants ...", flush=True)
        started = time.monotonic()
        tenants = seed(args.tenants)
        print(f"  seeded in {time.monotonic() - started:.1f} s")
        break_some(tenants, args.broken)
        stack.langsmith.control.configure(latency_ms=args.latency_ms)

        for name, apply in (("dry run", False), ("apply", True), ("second dry run", False)):
            result = run(stack, apply)
            report(name, result, len(tenants))
        from prefect._internal.concurrency.services import QueueService

        QueueService.drain_all(timeout=10)  # logs and events, while the server still listens


def break_some(tenants: list[str], count: int) -> None:
    from tenant_keys.keys import mint_key
    from tenant_keys.services import get_services

    services = get_services()
    for tenant_id in tenants[:count]:  # drift: the current key deleted behind the tool's back
        services.langsmith.delete_key(services.store.read(tenant_id).key_id)
    for tenant_id in tenants[count : 2 * count]:  # a crash between mint and store
        mint_key(services, tenant_id, "bench-orphan")
    print(f"  broke {count} tenants by drift and {count} by an orphan key")


def run(stack: LocalStack, apply: bool) -> dict[str, Any]:
    from flows.reconcile import reconcile
    from tenant_keys.services import get_services

    sm_calls: Counter[str] = Counter()
    client = get_services().store._client
    handler = lambda model, **_: sm_calls.update([model.name])  # noqa: E731
    client.meta.events.register("before-call.secrets-manager", handler)
    stack.langsmith.control.reset_request_counts()
    started = time.monotonic()
    state = reconcile("all", apply=apply, orphan_min_age_seconds=0.0, return_state=True)
    wall = time.monotonic() - started
    client.meta.events.unregister("before-call.secrets-manager", handler)
    return {
        "wall": wall,
        "state": state,
        "report": state.result(raise_on_failure=False),
        "langsmith": stack.langsmith.control.request_counts(),
        "secretsmanager": sm_calls,
    }


def report(name: str, result: dict[str, Any], tenants: int) -> None:
    rows = Counter((r.kind, r.outcome) for r in result["report"].rows)
    print(f"\n== {name}: {tenants} tenants")
    print(f"  wall {result['wall']:.2f} s ({tenants / result['wall']:.0f} tenants/s surveyed)")
    print(f"  state: {result['state'].message}")
    print(f"  repairs: {dict(rows) or 'none'}")
    routes = result["langsmith"]["by_route"]
    print(f"  LangSmith calls: {result['langsmith']['total']} {dict(sorted(routes.items()))}")
    sm = result["secretsmanager"]
    print(f"  Secrets Manager calls: {sum(sm.values())} {dict(sorted(sm.items()))}")


if __name__ == "__main__":
    main()
