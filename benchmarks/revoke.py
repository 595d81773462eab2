"""Time to revoke: from the report of a leaked key to LangSmith's 401 for it, in four scenarios.

Starts the local stack (the LangSmith emulator and moto in processes of their own, a SQLite
Prefect server), the emulator at `--latency-ms` with LangSmith Cloud's rate limits on, seeds
one tenant per event (not measured), serves the `emergency-revoke` deployment as production
runs it without a work pool (`python -m flows.revoke serve --poll S`: the runner and its
kill-on-report listener), then per scenario, one
event at a time, emits `security.key.compromised` as `tenant-keys report-compromise` does and
polls the reported key until LangSmith rejects it:

- `quiet`: nothing else running;
- `crashed-lock`: before each event a process takes the tenant's lock and dies holding it
  (`os._exit`): the kill must not wait for the lock's lease (60 s + up to 15 s); the
  replacement does;
- `rotation-at-limit`: a `rotate-keys` run over `--rotation-tenants` other tenants in a
  process of its own (its own pacing: the admin key at the fan-out's share of LangSmith's
  limit; Secrets Manager writes unpaced unless `--rotation-secret-writes`, so LangSmith's
  limit binds), events fired while it runs;
- `prefect-down`: break-glass: `tenant-keys revoke T --reason R` with PREFECT_API_URL pointing
  at nothing, timed from the command's start.

Per event it prints the seconds since the report of each step: the flow run created (the
trigger), Pending (the runner took it), Running (its process started), then the incident's
timeline (revoke started, keys deleted, keys rejected (401), tenant lock acquired,
replacement stored, replacement verified) and the 401 seen here; per scenario min / median /
max of report -> 401 against the goals (median <= 3 s quiet, max <= 5 s everywhere).

    .venv/bin/python benchmarks/revoke.py --events 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    SM_WRITES_PER_SECOND,
    FlowProcess,
    admin_key_id,
    apply_env,
    fanout_rate,
    pacing_env,
    start_rotation,
)
from benchmarks.seeding import seed  # noqa: E402
from devstack.stack import LocalStack, child_process, free_port  # noqa: E402

if TYPE_CHECKING:
    from tenant_keys.layout import TenantKeyRecord
    from tenant_keys.services import Services

SCENARIOS = ("quiet", "crashed-lock", "rotation-at-limit", "prefect-down")
SHORT = {"quiet": "q", "crashed-lock": "cl", "rotation-at-limit": "ral", "prefect-down": "pd"}
MEDIAN_GOAL = {"quiet": 3.0}
MAX_GOAL = 5.0
ROTATION_PREFIX = "langsmith-rotation/tenant"
LANGSMITH_LIMIT = (1000, 10.0)
# Steps of a row, in order: seconds since the report.
STEPS = [
    ("event received", "received"),
    ("run created", "run_created"),
    ("Pending", "pending"),
    ("Running", "running"),
    ("revoke started", "revoke started"),
    ("task started", "task started"),
    ("keys deleted", "keys deleted"),
    ("keys rejected", "keys rejected (401)"),
    ("401 seen here", "seen"),
    ("lock", "tenant lock acquired"),
    ("replaced", "replacement stored"),
    ("verified", "replacement verified"),
]
DIE_HOLDING_THE_LOCK = """
import os, sys
from tasks.locks import tenant_locks
held = tenant_locks().hold([sys.argv[1]])  # kept referenced: collected, it would release
held.__enter__()
os._exit(17)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5, help="events per scenario")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--poll", type=float, default=0.5, help="runner poll interval (s)")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between events")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rotation-tenants", type=int, default=2000)
    parser.add_argument(
        "--rotation-secret-writes",
        type=float,
        default=None,
        help="pace the rotation's Secrets Manager writes (per s; default: unpaced)",
    )
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Path(tmp), separate_processes=True) as stack,
    ):
        os.environ.update(stack.env())
        os.environ["TENANT_KEYS_INCIDENT_DIR"] = str(Path(tmp) / "incidents")
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
        bench = Bench(stack, Path(tmp), args)
        print(
            f"revoke benchmark: {args.events} events per scenario, runner poll {args.poll} s, "
            f"emulator latency {args.latency_ms:g} ms with LangSmith Cloud's rate limits",
            flush=True,
        )
        bench.seed({s: args.events for s in scenarios})
        results: dict[str, list[dict[str, Any]]] = {}
        served = None
        log = Path(tmp) / "serve.log"
        if set(scenarios) - {"prefect-down"}:
            served = child_process(
                [sys.executable, "-m", "flows.revoke", "serve", "--poll", str(args.poll)],
                log_path=log,
                cwd=REPO,
            )
            served.__enter__()
            wait_until_served()
        try:
            for scenario in scenarios:
                results[scenario] = bench.scenario(scenario)
                report(scenario, results[scenario])
        except SystemExit:
            if log.exists():  # the served deployment's side of a failed scenario
                print("the served deployment's last log lines:", file=sys.stderr)
                print(*log.read_text().splitlines()[-40:], sep="\n", file=sys.stderr)
            raise
        finally:
            if served is not None:
                served.__exit__(None, None, None)
        summary(results)


class Bench:
    def __init__(self, stack: LocalStack, tmp: Path, args: argparse.Namespace) -> None:
        self.stack, self.tmp, self.args = stack, tmp, args
        self.control = stack.langsmith.control
        self.admin_key_id = admin_key_id(self.control)
        self.tenants: dict[str, list[str]] = {}

    def seed(self, events: dict[str, int]) -> None:
        """One tenant per event (not measured; the limits off meanwhile)."""
        started = time.monotonic()
        self.control.configure(latency_ms=0, rate_limits=False)
        apply_env(pacing_env(None, None))
        home = self.stack.prefect.home if self.stack.prefect else None
        for scenario, count in events.items():
            self.tenants[scenario] = seed(count, prefix=SHORT[scenario], prefect_home=home)
        self.limits_on()
        print(f"seeded {sum(events.values())} tenants in {time.monotonic() - started:.1f} s")

    def limits_on(self) -> None:
        self.control.configure(latency_ms=self.args.latency_ms, rate_limits=True)
        apply_env(pacing_env(LANGSMITH_LIMIT, SM_WRITES_PER_SECOND))

    def scenario(self, scenario: str) -> list[dict[str, Any]]:
        tenants = self.tenants[scenario]
        rotation = None
        print(f"\n== {scenario} == (load average {load()})", flush=True)
        if scenario == "rotation-at-limit":
            self.seed_rotation()
        if scenario != "prefect-down":
            print(f"  {lock_ensure_cost(tenants[0])}", flush=True)
        print(f"  {import_cost(scenario)}", flush=True)
        if scenario == "rotation-at-limit":
            rotation = self.start_rotation()
        rows: list[dict[str, Any]] = []
        before_events = (time.monotonic(), self.admin_calls())
        for tenant in tenants:
            time.sleep(self.args.gap)  # the previous run's process winds down meanwhile
            if scenario == "crashed-lock":
                die_holding_the_lock(tenant)
            during = rotation.running() if rotation is not None else None
            if scenario == "prefect-down":
                rows.append(break_glass(tenant, self.tmp))
            else:
                rows.append(self.emit_and_poll(tenant))
            if during is not None:
                rows[-1]["during_rotation"] = during
        after_events = (time.monotonic(), self.admin_calls())
        if scenario != "prefect-down":
            # The incident's timeline is in the revoked event, emitted when the run ends (a
            # crashed lock: once its lease lapsed, ~60-75 s).
            wait = 180.0 if scenario == "crashed-lock" else 60.0
            for row in rows:
                row.update(breakdown(row.pop("event_id"), wait))
        for row in rows:
            print_row(row)
        print(f"  load average after the events: {load()}")
        if rotation is not None:
            seconds = after_events[0] - before_events[0]
            rate = (after_events[1] - before_events[1]) / seconds
            figures = rotation.result(timeout=1800)
            counts = self.control.request_counts()
            paced = fanout_rate(rotation_env(self.args))
            print(
                f"  the rotation: {figures['message']}; wall {figures['wall']:.1f} s; the admin key "
                f"made {rate:.1f} calls/s while the events ran ({seconds:.0f} s; the fan-out's "
                f"pace: {paced:.1f}/s); {counts['by_status'].get('429', 0)} answers 429 of "
                f"{counts['total']} calls"
            )
            if not all(r.get("during_rotation") for r in rows):
                print(
                    "  WARNING: the rotation ended before the last event: raise --rotation-tenants"
                )
        return rows

    def admin_calls(self) -> int:
        return self.control.request_counts()["by_key"].get(self.admin_key_id, 0)

    def seed_rotation(self) -> None:
        """The rotation's own tenants, under a secret prefix of their own (limits off)."""
        count = self.args.rotation_tenants
        started = time.monotonic()
        self.control.configure(latency_ms=0, rate_limits=False)
        apply_env({"TENANT_KEYS_SECRET_PREFIX": ROTATION_PREFIX, **pacing_env(None, None)})
        home = self.stack.prefect.home if self.stack.prefect else None
        seed(count, prefix="rot", prefect_home=home)
        os.environ.pop("TENANT_KEYS_SECRET_PREFIX")
        self.limits_on()
        print(f"  seeded {count} tenants to rotate in {time.monotonic() - started:.1f} s")

    def start_rotation(self) -> FlowProcess:
        """rotate-keys over the rotation's tenants in a process of its own; returns once its
        fan-out is under way."""
        count = self.args.rotation_tenants
        env = rotation_env(self.args)
        self.control.reset_request_counts()
        rotation = start_rotation("bench-at-limit", env, self.tmp / "rotation.json")
        deadline = time.monotonic() + 120
        while self.admin_calls() < 300:  # ramped up: ~4 s at the fan-out's pace
            if not rotation.running() or time.monotonic() > deadline:
                raise SystemExit(f"the rotation did not get going: see {rotation.out}.log")
            time.sleep(0.2)
        print(f"  rotating {count} tenants in another process; events start now", flush=True)
        return rotation

    def emit_and_poll(self, tenant_id: str) -> dict[str, Any]:
        from tenant_keys.cli.revoke import emit_compromise
        from tenant_keys.events import KeyCompromisedEvent
        from tenant_keys.services import get_services

        services = get_services()
        record = services.store.read(tenant_id)
        reported = time.time()
        emitted = time.monotonic()
        event_id = emit_compromise(
            KeyCompromisedEvent(
                tenant_id=tenant_id, reason="benchmark", scope="current", reported_by="bench"
            )
        )
        seconds = poll_until_rejected(services, record, emitted)
        return {
            "tenant": tenant_id,
            "event_to_401": seconds,
            "event_id": event_id,
            "seen": time.time() - reported,
        }


def rotation_env(args: argparse.Namespace) -> dict[str, str]:
    """The rotation process's settings: its own secret prefix and pacing."""
    return {
        "TENANT_KEYS_SECRET_PREFIX": ROTATION_PREFIX,
        **pacing_env(LANGSMITH_LIMIT, args.rotation_secret_writes),
    }


def load() -> str:
    """The machine's 1, 5 and 15 minute load averages (2 cores: above 2, work waits)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def poll_until_rejected(services: Services, record: TenantKeyRecord, since: float) -> float:
    """Seconds from `since` until LangSmith answers 401 for the record's key."""
    while services.langsmith.authenticates(record.api_key, workspace_id=record.workspace_id):
        if time.monotonic() - since > 120:
            raise SystemExit("the key is still accepted after 120 s")
        time.sleep(0.01)
    return time.monotonic() - since


def wait_until_served() -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            try:
                client.read_deployment_by_name("emergency-revoke/emergency-revoke")
                if client.read_automations_by_name("key-compromised"):
                    return
            except Exception:  # not registered yet
                pass
        time.sleep(0.5)
    raise SystemExit("the deployment was not served within 120 s")


ENSURE_COST = """
import sys, time
started = time.monotonic()
from tasks.locks import _shared_client, tenant_locks
imported = time.monotonic()
tenant_locks().ensure([sys.argv[1]])
cold = time.monotonic()
tenant_locks().ensure([sys.argv[1]])
warm = time.monotonic()
client, locks = _shared_client(), 0
while page := client.read_global_concurrency_limits(limit=200, offset=locks):
    locks += len(page)
    if len(page) < 200:
        break
print(locks, cold - imported, warm - cold)
"""


def lock_ensure_cost(tenant_id: str) -> str:
    """What the flow's `tenant_locks().ensure([tenant])`, called before the kill, costs in a
    new process as the flow run's (a read by name of its lock and the admin key's two)."""
    probe = subprocess.run(
        [sys.executable, "-c", ENSURE_COST, tenant_id],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    locks, cold, warm = probe.stdout.split()[-3:]
    return (
        f"{locks} locks on the Prefect server: the flow's lock ensure takes {float(cold):.2f} s "
        f"in a new process ({float(warm):.2f} s once its client is up)"
    )


# What a revoke's process imports before it can act: the served runner spawns a process per
# flow run that unpickles the flow (Prefect's engine) and imports `flows.revoke` (and with it
# the whole `tenant_keys` package); break-glass runs the CLI's revoke path.
FLOW_RUN_IMPORTS = "prefect.flow_engine, flows.revoke"
CLI_IMPORTS = "tenant_keys.cli, tasks.server, tenant_keys.revocation, tenant_keys.incident"


def import_cost(scenario: str) -> str:
    """Wall and CPU seconds of a new Python process that only imports what the scenario's
    revoke process imports: the floor of its start-up, on this machine now."""
    modules = CLI_IMPORTS if scenario == "prefect-down" else FLOW_RUN_IMPORTS
    before = os.times()
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {modules}"], cwd=REPO, check=True)
    wall = time.monotonic() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    what = "the CLI's revoke path" if scenario == "prefect-down" else "a flow run's process"
    return f"a new process importing {what} ({modules}): {wall:.2f} s wall, {cpu:.2f} s CPU"


def die_holding_the_lock(tenant_id: str) -> None:
    holder = subprocess.run(
        [sys.executable, "-c", DIE_HOLDING_THE_LOCK, tenant_id],
        cwd=REPO,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    if holder.returncode != 17:
        raise SystemExit(f"the lock holder exited with {holder.returncode}")


def break_glass(tenant_id: str, tmp: Path) -> dict[str, Any]:
    """`tenant-keys revoke` with the Prefect server unreachable, from the command's start."""
    from tenant_keys.incident import IncidentLog
    from tenant_keys.services import get_services

    services = get_services()
    record = services.store.read(tenant_id)
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    log = tmp / f"break-glass-{tenant_id}.log"
    command = [sys.executable, "-m", "tenant_keys.cli", "revoke", tenant_id, "--reason", "bench"]
    started_wall = time.time()
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = poll_until_rejected(services, record, started)
    seen = time.time() - started_wall
    code = process.wait(timeout=120)
    if code != 0:
        raise SystemExit(f"break-glass revoke of {tenant_id} exited {code}: see {log}")
    folder = Path(os.environ["TENANT_KEYS_INCIDENT_DIR"])
    incident = next(i for _, i in IncidentLog(folder).pending() if i.outcome.tenant_id == tenant_id)
    row: dict[str, Any] = {"tenant": tenant_id, "event_to_401": seconds, "seen": seen}
    # Seconds since the command started: the process start and imports come first.
    row["revoke started"] = incident.details.started_at.timestamp() - started_wall
    for step, at, _ in incident.timeline():
        if step != "reported":
            row[step] = at.timestamp() - started_wall
    return row


def breakdown(event_id: str, wait: float) -> dict[str, float]:
    """Seconds since the report of each step: the flow run's creation and states, then the
    incident's timeline from the `tenant-keys.key.revoked` event (emitted when the run ends)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.events.filters import (
        EventFilter,
        EventIDFilter,
        EventNameFilter,
        EventOccurredFilter,
    )

    out: dict[str, float] = {}
    payload: dict[str, Any] = {}
    since = datetime.now(UTC) - timedelta(hours=1)
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            page = client.read_events(
                EventFilter(event=EventNameFilter(name=["tenant-keys.key.revoked"])), limit=50
            )
            found = [e for e in page.events if e.payload.get("incident_id") == event_id]
            if found:
                payload = dict(found[0].payload)
                break
            time.sleep(0.5)
        reported_event = client.read_events(
            EventFilter(
                id=EventIDFilter(id=[UUID(event_id)]), occurred=EventOccurredFilter(since=since)
            ),
            limit=1,
        )
        for event in reported_event.events:  # when the server got it: the emitter's part
            out["received"] = (event.received - event.occurred).total_seconds()
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["emergency-revoke"])), limit=200
        )
        run = next((r for r in runs if r.parameters.get("incident_id") == event_id), None)
        if run is not None:
            # The report's time as the event carries it (the timeline counts from it too).
            reported = datetime.fromisoformat(run.parameters["reported_at"]).timestamp()
            if run.created:
                out["run_created"] = run.created.timestamp() - reported
            for state in client.read_flow_run_states(run.id):
                if state.type.value in ("PENDING", "RUNNING") and state.timestamp:
                    out[state.type.value.lower()] = state.timestamp.timestamp() - reported
            # The revoke task's start: after the request is resolved and the lock ensured.
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
            )
            started = [t.start_time for t in tasks if t.start_time]
            if started:
                out["task started"] = min(started).timestamp() - reported
    for step, since in payload.get("timeline", {}).items():
        if step != "reported":
            out[step] = float(since)
    if not payload:
        out["no_incident"] = 1.0
    return out


def print_row(row: dict[str, Any]) -> None:
    steps = ", ".join(
        f"{label} {row[key]:.2f}" for label, key in STEPS if isinstance(row.get(key), float)
    )
    during = (
        ""
        if "during_rotation" not in row
        else (
            " [reported during the rotation]" if row["during_rotation"] else " [after the rotation]"
        )
    )
    missing = " (no incident record: the run did not finish)" if row.get("no_incident") else ""
    print(
        f"  {row['tenant']}: report -> 401 {row['event_to_401']:.2f} s{during}  ({steps}){missing}"
    )


def report(scenario: str, rows: list[dict[str, Any]]) -> None:
    values = [r["event_to_401"] for r in rows]
    print(
        f"  report -> 401: min {min(values):.2f}  median {statistics.median(values):.2f}  "
        f"max {max(values):.2f} s ({len(values)} events)"
    )
    medians = []
    for label, key in STEPS:
        found = [r[key] for r in rows if isinstance(r.get(key), float) and r[key] == r[key]]
        if found:
            medians.append(f"{label} {statistics.median(found):.2f}")
    origin = "the command's start" if scenario == "prefect-down" else "the report"
    print(f"  median seconds since {origin}: " + ", ".join(medians))


def summary(results: dict[str, list[dict[str, Any]]]) -> None:
    print("\nscenario           events   report -> 401 min / median / max   goals")
    for scenario, rows in results.items():
        values = [r["event_to_401"] for r in rows]
        median, worst = statistics.median(values), max(values)
        goals = []
        if scenario in MEDIAN_GOAL:
            ok = median <= MEDIAN_GOAL[scenario]
            goals.append(f"median <= {MEDIAN_GOAL[scenario]:g} s {'ok' if ok else 'MISSED'}")
        goals.append(f"max <= {MAX_GOAL:g} s {'ok' if worst <= MAX_GOAL else 'MISSED'}")
        print(
            f"{scenario:<18} {len(values):>6}   {min(values):5.2f} / {median:5.2f} / {worst:5.2f} s"
            f"       {'; '.join(goals)}"
        )


if __name__ == "__main__":
    main()
