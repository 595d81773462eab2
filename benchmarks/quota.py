"""Quota check benchmark: N tenants with traces, request counts and wall time of `check-quotas`.

Starts the local stack (the emulator and moto in processes of their own where the stack
offers it), seeds N tenants directly (secret with tags, `tenant-<id>` project, root runs
with one child each; onboarding through Prefect would measure onboarding), then runs:

1. first check, in this process: every status change of the seed is recorded
   (tag write + event per changed tenant);
2. steady check, in this process: nothing changed since;
3. cold check: a fresh `python -c` process that imports Prefect and runs the flow, as a
   worker would each hour (Prefect's client start-up included; the server is up).

Prints LangSmith requests (counted at the emulator), Secrets Manager calls (counted with
botocore's event hooks) and wall times, against the goal of ⌈N/100⌉ + a handful LangSmith
requests and 30 s.

    .venv/bin/python benchmarks/quota.py --tenants 10000
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack.stack import LocalStack  # noqa: E402
from tests.integration.quota_seed import Target, seed_tenants  # noqa: E402

BUDGET = 10
COLD_CHECK = (
    "from flows.quota import check_quotas; s = check_quotas(return_state=True); print(s.message)"
)


def traces_of(i: int) -> int:
    """Most tenants well under budget; 1 % in warning (9 of 10), 1 % over (12 of 10)."""
    if i % 100 == 1:
        return 9
    if i % 100 == 2:
        return 12
    return i % 7


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="emulated per-call latency")
    args = parser.parse_args()

    separate = "separate_processes" in inspect.signature(LocalStack).parameters
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Path(tmp), **({"separate_processes": True} if separate else {})) as stack,
    ):
        os.environ.update(stack.env())
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        from tenant_keys.services import get_services, reset_services

        reset_services()
        settings = get_services().settings
        target = Target(
            langsmith_url=stack.langsmith.url,
            admin_key=stack.langsmith.admin_key,
            workspace_id=stack.langsmith.workspace_id,
            aws_endpoint_url=stack.moto.url,
            secret_prefix=settings.secret_prefix,
        )
        print(f"seeding {args.tenants} tenants ...", flush=True)
        started = time.monotonic()
        ids = [f"bench-{i:05d}" for i in range(args.tenants)]
        # One worker: moto fails a CreateSecret that inserts while another request scans its
        # secrets (HTTP 500, "dictionary changed size during iteration"), from ~3,000 on.
        seeded = seed_tenants(target, ids, budget=lambda i: BUDGET, traces=traces_of, workers=1)
        traces = sum(t.traces for t in seeded)
        print(
            f"  {len(seeded)} tenants, {traces} traces ({2 * traces} runs) "
            f"in {time.monotonic() - started:.1f} s"
        )
        stack.langsmith.control.configure(latency_ms=args.latency_ms)

        bound = math.ceil(args.tenants / 100)
        print(f"\ngoal: ≤ {bound} + a handful LangSmith requests, < 30 s")
        print(f"{'run':<8}{'wall s':>8}{'LangSmith':>11}  {'Secrets Manager calls':<32}result")
        for name in ("first", "steady"):
            figures = in_process_check(stack)
            print(
                f"{name:<8}{figures['wall']:>8.1f}{figures['langsmith']:>11}  "
                f"{_fmt(figures['sm']):<32}{figures['message']}"
            )
        breakdown(stack)
        cold = cold_check(stack)
        print(
            f"{'cold':<8}{cold['wall']:>8.1f}{cold['langsmith']:>11}  "
            f"{'(not counted: other process)':<32}{cold['message']}"
        )


def in_process_check(stack: LocalStack) -> dict[str, Any]:
    from flows.quota import check_quotas
    from tenant_keys.services import get_services

    calls: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        calls[model.name] = calls.get(model.name, 0) + 1

    client = get_services().store._client  # the store's own client: count what it sends
    client.meta.events.register("before-call.secrets-manager.*", count)
    stack.langsmith.control.reset_request_counts()
    started = time.monotonic()
    state = check_quotas(return_state=True)
    wall = time.monotonic() - started
    client.meta.events.unregister("before-call.secrets-manager.*", count)
    return {
        "wall": wall,
        "langsmith": stack.langsmith.control.request_counts()["total"],
        "sm": calls,
        "message": state.message,
    }


def breakdown(stack: LocalStack) -> None:
    """The two paginated walks alone, without Prefect: where the wall time goes."""
    from tenant_keys.models import utcnow
    from tenant_keys.quota import fetch_usage, load_budgets, window_start
    from tenant_keys.services import get_services

    services = get_services()
    started = time.monotonic()
    tenants = load_budgets(services.store, services.settings.default_trace_budget)
    secrets_walk = time.monotonic() - started
    started = time.monotonic()
    usage = fetch_usage(services.langsmith, window_start(utcnow()))
    sessions_walk = time.monotonic() - started
    print(
        f"  alone: ListSecrets walk {secrets_walk:.1f} s ({len(tenants)} tenants), "
        f"sessions walk {sessions_walk:.1f} s ({len(usage)} projects)"
    )


def cold_check(stack: LocalStack) -> dict[str, Any]:
    stack.langsmith.control.reset_request_counts()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", COLD_CHECK],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "wall": time.monotonic() - started,
        "langsmith": stack.langsmith.control.request_counts()["total"],
        "message": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "",
    }


def _fmt(calls: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))


if __name__ == "__main__":
    main()
