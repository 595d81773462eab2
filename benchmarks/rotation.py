"""Rotation fan-out benchmark: how close the weekly rotation sits to the bound of the outside
system that binds, and what it costs each of them.

Starts the local stack (the LangSmith emulator and moto in processes of their own, a SQLite
Prefect server). Each run seeds its own N tenants (under a secret prefix of its own, limits
off, not measured), then runs the `rotate-keys` flow over all of them in a new process, as a
worker would, with that process's own pacing:

- `limited`: the emulator at `--latency-ms` with LangSmith Cloud's rate limits on (its
  published table: 1000 requests / 10 s per API key for these routes), the client paced at
  its default share of that limit, Secrets Manager writes paced at 50/s (AWS's quota);
- `langsmith-bound` (on request): the same without the write pacing, so LangSmith binds;
- `unlimited`: the same latency, no rate limit, no pacing; compared with a plain sequential
  loop (mint -> store -> delete per tenant, no Prefect) on a sample of tenants.

Per run it prints the calls each outside system answered (Secrets Manager from moto's counts
per secret, LangSmith from the emulator's, by key and route), each limit's bound (calls / its
rate: Secrets Manager writes / 50 per s, the admin key's LangSmith calls / the fan-out's paced
rate), which one binds, wall time and wall / that bound, the 429s and their share, tenants/s,
the flow process's peak RSS, whether every tenant was rotated (AWSCURRENT holds the key minted
for this rotation and LangSmith lists no other key of the tenant), and how long the Prefect
server takes to answer what the UI's page of the run reads.

    .venv/bin/python benchmarks/rotation.py --tenants 1000
    .venv/bin/python benchmarks/rotation.py --tenants 10000 --runs limited
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    SM_WRITES,
    SM_WRITES_PER_SECOND,
    MotoCalls,
    admin_key_id,
    apply_env,
    calls_between,
    fanout_rate,
    group_cpu,
    pacing_env,
    server_groups,
    start_rotation,
)
from benchmarks.seeding import seed
from devstack.langsmith_emulator import EmulatorControl
from devstack.stack import LocalStack

RUNS = ("limited", "langsmith-bound", "unlimited")
TENANT_PREFIX = {"limited": "lim", "langsmith-bound": "lsb", "unlimited": "unl"}
LANGSMITH_LIMIT = (1000, 10.0)  # LangSmith's published limit per API key (its default class)
RSS_GOAL_MB = 512
SHARE_429_GOAL = 0.01
CORES = os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=64, help="TENANT_KEYS_MAX_CONCURRENCY")
    parser.add_argument(
        "--runs",
        default="limited,unlimited",
        help=f"comma-separated, of {', '.join(RUNS)} (default: limited,unlimited)",
    )
    parser.add_argument("--sequential-sample", type=int, default=50)
    parser.add_argument(
        "--goal",
        type=float,
        default=None,
        help="wall / binding bound goal (default: 1.10, 1.15 from 10,000 tenants)",
    )
    args = parser.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if unknown := set(runs) - set(RUNS):
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")
    goal = args.goal or (1.15 if args.tenants >= 10_000 else 1.10)

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Path(tmp), separate_processes=True) as stack,
    ):
        os.environ.update(stack.env())
        os.environ["TENANT_KEYS_MAX_CONCURRENCY"] = str(args.concurrency)
        bench = Bench(stack, Path(tmp), args)
        print(
            f"rotation benchmark: {args.tenants} tenants, emulator latency "
            f"{args.latency_ms:g} ms, concurrency {args.concurrency}, runs: {', '.join(runs)}",
            flush=True,
        )
        results = {}
        for run in runs:
            results[run] = bench.run(run)
            report(run, results[run], goal)
        if "unlimited" in results:
            # The loop runs here, against the unlimited run's tenants and settings.
            bench.control.configure(latency_ms=args.latency_ms, rate_limits=False)
            apply_env(results["unlimited"]["env"])
            compare_sequential(results["unlimited"], args.sequential_sample)
        bench.close()


class Bench:
    def __init__(self, stack: LocalStack, tmp: Path, args: argparse.Namespace) -> None:
        self.stack, self.tmp, self.args = stack, tmp, args
        self.control = stack.langsmith.control
        self.admin_key_id = admin_key_id(self.control)
        self.moto = MotoCalls(stack.moto.url)
        self.groups = server_groups(stack)

    def close(self) -> None:
        self.moto.close()

    def run(self, run: str) -> dict[str, Any]:
        prefix_env = {"TENANT_KEYS_SECRET_PREFIX": f"langsmith-{run}/tenant"}
        # Seed with every limit off (not measured).
        self.control.configure(latency_ms=0, rate_limits=False)
        apply_env({**prefix_env, **pacing_env(None, None)})
        print(f"\nseeding {self.args.tenants} tenants for the {run} run ...", flush=True)
        started = time.monotonic()
        tenants = seed(
            self.args.tenants,
            prefix=TENANT_PREFIX[run],
            prefect_home=self.stack.prefect.home if self.stack.prefect else None,
            progress=lambda line: print(f"  {line}", flush=True),
        )
        print(f"  seeded in {time.monotonic() - started:.1f} s", flush=True)

        limited = run in ("limited", "langsmith-bound")
        env = {
            **prefix_env,
            **pacing_env(
                LANGSMITH_LIMIT if limited else None,
                SM_WRITES_PER_SECOND if run == "limited" else None,
            ),
        }
        listing = list_page_cost(prefix_env["TENANT_KEYS_SECRET_PREFIX"], len(tenants))
        self.control.configure(latency_ms=self.args.latency_ms, rate_limits=limited)
        secrets = [f"{prefix_env['TENANT_KEYS_SECRET_PREFIX']}/{t}" for t in tenants]
        before = self.moto.snapshot([*secrets, ""])  # "": calls naming no secret (ListSecrets)
        self.control.reset_request_counts()
        rotation_id = f"bench-{run}"
        load_before, cpu_before = load(), group_cpu(self.groups)
        flow = start_rotation(rotation_id, env, self.tmp / f"{run}.json").result()
        load_after, cpu_after = load(), group_cpu(self.groups)
        cpu = {"flow process": flow["cpu"]}
        cpu.update({name: cpu_after[name] - cpu_before[name] for name in cpu_after})
        langsmith = self.control.request_counts()
        after = self.moto.snapshot([*secrets, ""])
        apply_env(env)  # this process reads what the run left with the run's settings
        return {
            "run": run,
            "env": env,
            "tenants": tenants,
            "flow": flow,
            "langsmith": langsmith,
            "admin_calls": langsmith["by_key"].get(self.admin_key_id, 0),
            "fanout_rate": fanout_rate(env) if limited else None,
            "secrets_manager": calls_between(before, after),
            "rotated": rotated(self.control, tenants, rotation_id),
            "ui": ui_timings(flow["flow_run_id"]),
            "listing": listing,
            "load": (load_before, load_after),
            "cpu": cpu,
        }


def load() -> str:
    """The machine's 1, 5 and 15 minute load averages (2 cores: above 2, work waits)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def list_page_cost(prefix: str, tenants: int) -> dict[str, float]:
    """One page (100) of the ListSecrets the flow lists tenants with, timed here: moto walks
    and serialises every secret for each page (AWS does not), so at scale this is the local
    stack's cost, not the product's."""
    from tenant_keys.services import get_services

    client = get_services().store._client
    started = time.monotonic()
    client.list_secrets(MaxResults=100, Filters=[{"Key": "name", "Values": [prefix + "/"]}])
    return {"seconds": time.monotonic() - started, "pages": -(-tenants // 100)}


def rotated(control: EmulatorControl, tenants: list[str], rotation_id: str) -> dict[str, int]:
    """How many tenants have this rotation's key in AWSCURRENT, with no other key of theirs
    listed at LangSmith (the one they replaced was deleted)."""
    from tenant_keys.models import key_description, parse_key_description
    from tenant_keys.services import get_services

    live: dict[str, list[str]] = {}
    emulator_keys = control.keys()
    for key in emulator_keys:
        parsed = parse_key_description(key["description"] or "")
        if parsed and key["active"]:
            live.setdefault(parsed[0], []).append(key["description"])
    store = get_services().store

    def current_is_new(tenant_id: str) -> bool:
        return store.read(tenant_id).rotation_id == rotation_id

    with ThreadPoolExecutor(max_workers=16) as pool:
        current = dict(zip(tenants, pool.map(current_is_new, tenants), strict=True))
    return {
        "current": sum(current.values()),
        "only_new_key_live": sum(live.get(t) == [key_description(t, rotation_id)] for t in tenants),
    }


def ui_timings(flow_run_id: str | None) -> dict[str, Any]:
    """Seconds the Prefect server takes for what the UI's page of the flow run reads: the run,
    its task runs count, its artifacts, the first page of its logs; and all its logs, paged."""
    if not flow_run_id:
        return {}
    api = os.environ["PREFECT_API_URL"].rstrip("/")
    of_run = {"any_": [flow_run_id]}
    out: dict[str, Any] = {}
    with httpx.Client(base_url=api, timeout=120) as http:

        def timed(name: str, call: Callable[[], httpx.Response]) -> Any:
            started = time.monotonic()
            response = call()
            response.raise_for_status()
            out[name] = time.monotonic() - started
            return response.json()

        run = timed("read_flow_run", lambda: http.get(f"/flow_runs/{flow_run_id}"))
        out["task_runs"] = timed(
            "count_task_runs",
            lambda: http.post("/task_runs/count", json={"flow_runs": {"id": of_run}}),
        )
        artifacts = timed(
            "read_artifacts",
            lambda: http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": of_run}}),
        )
        out["artifacts"] = len(artifacts)
        logs_filter = {"logs": {"flow_run_id": of_run}, "sort": "TIMESTAMP_ASC", "limit": 200}
        timed("logs_page", lambda: http.post("/logs/filter", json=logs_filter))
        started, total, pages = time.monotonic(), 0, 0
        while True:
            page = http.post("/logs/filter", json={**logs_filter, "offset": total})
            page.raise_for_status()
            pages += 1
            total += len(page.json())
            if len(page.json()) < 200:
                break
        out["logs"], out["logs_pages"], out["all_logs"] = total, pages, time.monotonic() - started
        out["phases"] = phases(http, run, of_run)
    return out


def phases(http: httpx.Client, run: dict[str, Any], of_run: dict[str, Any]) -> dict[str, float]:
    """Where the flow's time went, from the server's records: flow start -> first batch task
    started (listing, locks, task start-up), first batch -> last batch ended (the fan-out),
    last batch -> flow end (tally, artifacts)."""
    starts, ends = [], []
    offset = 0
    while True:
        page = http.post(
            "/task_runs/filter",
            json={"flow_runs": {"id": of_run}, "limit": 200, "offset": offset},
        )
        page.raise_for_status()
        for task in page.json():
            if task["start_time"] and task["end_time"]:
                starts.append(datetime.fromisoformat(task["start_time"]))
                ends.append(datetime.fromisoformat(task["end_time"]))
        offset += 200
        if len(page.json()) < 200:
            break
    if not starts or not run.get("start_time") or not run.get("end_time"):
        return {}
    flow_start = datetime.fromisoformat(run["start_time"])
    flow_end = datetime.fromisoformat(run["end_time"])
    return {
        "to_first_batch": (min(starts) - flow_start).total_seconds(),
        "batches": (max(ends) - min(starts)).total_seconds(),
        "after_last_batch": (flow_end - max(ends)).total_seconds(),
        "start_unix": flow_start.timestamp(),
        "end_unix": flow_end.timestamp(),
    }


def report(run: str, result: dict[str, Any], goal: float) -> None:
    tenants = len(result["tenants"])
    flow, counts = result["flow"], result["langsmith"]
    wall = flow["wall"]
    before, after = result["load"]
    print(f"\n== {run}: {tenants} tenants == (load average {before} before, {after} after)")
    print(f"  final state: {flow['state']}: {flow['message']}")
    print(f"  wall time: {wall:.1f} s, {tenants / wall:.1f} tenants/s")

    # Secrets Manager, per tenant, from moto's counts per secret.
    per_secret = {k: v for k, v in result["secrets_manager"].items() if k}
    account = result["secrets_manager"].get("", Counter())
    writes = [sum(n for op, n in c.items() if op in SM_WRITES) for c in per_secret.values()]
    reads = [sum(n for op, n in c.items() if op not in SM_WRITES) for c in per_secret.values()]
    by_op: Counter[str] = Counter()
    for c in per_secret.values():
        by_op.update(c)
    total_writes = sum(writes) + sum(n for op, n in account.items() if op in SM_WRITES)
    print(
        f"  Secrets Manager per tenant: {statistics.mean(writes):.2f} writes "
        f"(min {min(writes)}, max {max(writes)}), {statistics.mean(reads):.2f} reads "
        f"(min {min(reads)}, max {max(reads)}); "
        + ", ".join(f"{op} {n / tenants:.2f}" for op, n in sorted(by_op.items()))
    )
    print(
        f"  Secrets Manager in all: {total_writes} writes, "
        f"{sum(reads) + sum(n for op, n in account.items() if op not in SM_WRITES)} reads"
        + (f" (account-wide: {dict(account)})" if account else "")
    )

    # LangSmith, from the emulator's counts.
    n429 = counts["by_status"].get("429", 0)
    admin = result["admin_calls"]
    print(
        f"  LangSmith calls: {counts['total']} ({counts['total'] / tenants:.2f} per tenant), "
        f"admin key {admin} ({admin / tenants:.2f} per tenant); by route:"
    )
    for route, n in sorted(counts["by_route"].items()):
        statuses = counts["by_route_status"].get(route, {})
        limited = f" ({statuses['429']} answered 429)" if statuses.get("429") else ""
        print(f"    {route}: {n}{limited}")
    share = n429 / counts["total"] if counts["total"] else 0.0
    print(f"  429s: {n429} ({100 * share:.2f} % of LangSmith calls)")

    # Bounds: each limit that is on gives calls / rate; the largest binds.
    bounds: dict[str, float] = {}
    if result["fanout_rate"]:
        bounds[f"LangSmith (admin key {admin} calls / {result['fanout_rate']:.1f} per s paced)"] = (
            admin / result["fanout_rate"]
        )
    if run == "limited":
        bounds[f"Secrets Manager ({total_writes} writes / {SM_WRITES_PER_SECOND:.0f} per s)"] = (
            total_writes / SM_WRITES_PER_SECOND
        )
    rss_mb = flow["maxrss_kb"] / 1024
    done = result["rotated"]
    ui = result["ui"]
    checks: list[tuple[str, bool]] = []
    for name, seconds in bounds.items():
        print(f"  bound of {name}: {seconds:.1f} s")
    if bounds:
        binding = max(bounds, key=lambda k: bounds[k])
        ratio = wall / bounds[binding]
        print(f"  binds: {binding.split(' (')[0]}; wall / binding bound: {ratio:.3f}")
        checks.append((f"wall / binding bound {ratio:.3f} <= {goal:.2f}", ratio <= goal))
        checks.append(
            (f"429s {100 * share:.2f} % < {100 * SHARE_429_GOAL:.0f} %", share < SHARE_429_GOAL)
        )
        sm_bound = total_writes / SM_WRITES_PER_SECOND
        if run == "limited" and tenants <= 1000:
            checks.append((f"Secrets Manager bound {sm_bound:.1f} s <= 40 s", sm_bound <= 40.0))
    else:
        print("  limits: none")
    print(f"  flow process peak RSS: {rss_mb:.0f} MB")
    checks.append((f"peak RSS {rss_mb:.0f} MB <= {RSS_GOAL_MB} MB", rss_mb <= RSS_GOAL_MB))
    print(
        f"  rotated: {done['current']} of {tenants} have this rotation's key in AWSCURRENT; "
        f"{done['only_new_key_live']} have no other key live at LangSmith"
    )
    checks.append(("every tenant rotated", done["current"] == tenants == done["only_new_key_live"]))
    if ui:
        print(
            f"  Prefect server, the run's page: read_flow_run {ui['read_flow_run']:.3f} s, "
            f"task runs count {ui['count_task_runs']:.3f} s ({ui['task_runs']}), "
            f"read_artifacts {ui['read_artifacts']:.3f} s ({ui['artifacts']}), "
            f"a logs page (200) {ui['logs_page']:.3f} s; all {ui['logs']} log lines in "
            f"{ui['logs_pages']} pages {ui['all_logs']:.1f} s"
        )
    listing = result["listing"]
    print(
        f"  moto's ListSecrets page (100): {listing['seconds']:.2f} s ({listing['pages']:.0f} "
        f"pages: ~{listing['pages'] * listing['seconds']:.0f} s in the listing loop; moto's cost)"
    )
    cpu = result["cpu"]
    per_tenant = sum(cpu.values()) / tenants
    print(
        f"  CPU per tenant: {1000 * per_tenant:.1f} ms ("
        + ", ".join(f"{name} {1000 * s / tenants:.1f}" for name, s in cpu.items())
        + f"; the flow process's start-up {flow['startup_cpu']:.1f} s apart): {CORES} idle "
        f"cores carry at most {CORES / per_tenant:.1f} tenants/s"
        + (f"; the binding bound needs {tenants / max(bounds.values()):.1f}" if bounds else "")
    )
    if phase := ui.get("phases"):
        called, returned = flow["started_unix"], flow["started_unix"] + wall
        print(
            f"  where the wall time went: {phase['start_unix'] - called:.1f} s before the flow "
            f"run started, {phase['to_first_batch']:.1f} s to the first batch, "
            f"{phase['batches']:.1f} s of batches, {phase['after_last_batch']:.1f} s after the "
            f"last, {returned - phase['end_unix']:.1f} s from the run's final state to the "
            "call's return (Prefect's engine stopping its heartbeat thread)"
        )
    print("  goals: " + "; ".join(f"{text} {'ok' if ok else 'MISSED'}" for text, ok in checks))


def compare_sequential(unlimited: dict[str, Any], sample: int) -> None:
    """The plain loop, one tenant after another, no Prefect, against the unlimited fan-out."""
    seconds = sequential_baseline(unlimited["tenants"][:sample])
    fanout_rate = len(unlimited["tenants"]) / unlimited["flow"]["wall"]
    loop_rate = 1 / statistics.mean(seconds)
    print(f"\nsequential loop (mint -> store -> delete, no Prefect), {len(seconds)} tenants:")
    print(
        f"  {loop_rate:.1f} tenants/s (median {statistics.median(seconds) * 1000:.0f} ms per "
        "tenant)"
    )
    print(
        f"  fan-out without limits / sequential loop: {fanout_rate / loop_rate:.1f}x "
        f"({fanout_rate:.1f} vs {loop_rate:.1f} tenants/s; goal: >= 4x)"
    )


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
