"""Time to revoke: from the emission of `security.key.compromised` to LangSmith's 401.

Starts the local stack (LangSmith emulator and moto in processes of their own, a Prefect
server), onboards one tenant per event, serves the `emergency-revoke` deployment the way
production would run it without a work pool (`python -m flows.revoke serve --poll S`),
then, one event at a time: emits the event as `tenant-keys report-compromise` does, polls
the tenant's key every 20 ms until LangSmith rejects it, and reads the flow run and the
`tenant-keys.key.revoked` event to show where the time went.

    .venv/bin/python benchmarks/revoke.py --events 10 --poll 0.5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.stack import LocalStack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--poll", type=float, default=0.5, help="runner poll interval (s)")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between events")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Path(tmp), separate_processes=True) as stack,
    ):
        os.environ.update(stack.env())
        from flows.onboarding import onboard_tenants

        tenants = [f"bench-revoke-{n}" for n in range(args.events)]
        onboard_tenants(tenants)
        print(f"{len(tenants)} tenants onboarded; serving emergency-revoke (poll {args.poll} s)")
        log = Path(tmp) / "serve.log"
        with log.open("ab") as out:
            served = subprocess.Popen(
                [sys.executable, "-m", "flows.revoke", "serve", "--poll", str(args.poll)],
                cwd=REPO,
                env=dict(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_served()
            rows = []
            for tenant in tenants:
                time.sleep(args.gap)  # the previous run's process winds down meanwhile
                rows.append(measure(tenant))
        finally:
            served.terminate()
            served.wait(timeout=30)
        report(rows, args.poll)


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


def measure(tenant_id: str) -> dict[str, float]:
    from tenant_keys.cli.revoke import emit_compromise
    from tenant_keys.events import KeyCompromisedEvent
    from tenant_keys.services import get_services

    services = get_services()
    record = services.store.read(tenant_id)
    emitted = time.monotonic()
    event_id = emit_compromise(
        KeyCompromisedEvent(
            tenant_id=tenant_id, reason="benchmark", scope="current", reported_by="bench"
        )
    )
    while services.langsmith.authenticates(record.api_key, workspace_id=record.workspace_id):
        if time.monotonic() - emitted > 120:
            raise SystemExit(f"{tenant_id}: key still accepted after 120 s")
        time.sleep(0.02)
    seconds = time.monotonic() - emitted
    row = {"event_to_401": seconds, **breakdown(tenant_id, event_id)}
    print(
        f"  {tenant_id}: {seconds:.2f} s  ("
        + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k != "event_to_401")
        + ")",
        flush=True,
    )
    return row


def breakdown(tenant_id: str, event_id: str) -> dict[str, float]:
    """Seconds since the event: flow run created (trigger + action), revoke started (runner
    poll + process start), key rejected, then the tenant's lock acquired (the revoke kills
    first) — from the run and the revoked event."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        payload: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while not payload and time.monotonic() < deadline:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=["tenant-keys.key.revoked"]),
                    resource=EventResourceFilter(id=[f"tenant.{tenant_id}"]),
                ),
                limit=5,
            )
            payload = next(
                (dict(e.payload) for e in page.events if e.payload["incident_id"] == event_id),
                {},
            )
            time.sleep(0.2)
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(), limit=200)
        run = next((r for r in runs if r.parameters.get("incident_id") == event_id), None)
    timeline = payload.get("timeline", {})
    out: dict[str, float] = {}
    reported = timeline.get("reported", 0.0)
    if run is not None and run.created and run.start_time and "revoke started" in timeline:
        # The run's creation time, relative to the event, from the two clocks of one machine.
        started_at = timeline["revoke started"]
        out["run_created"] = started_at - (run.start_time - run.created).total_seconds()
    for key, step in [
        ("flow_started", "revoke started"),
        ("rejected", "keys rejected (401)"),
        ("lock", "tenant lock acquired"),
    ]:
        if step in timeline:
            out[key] = timeline[step] - reported
    return out


def report(rows: list[dict[str, float]], poll: float) -> None:
    print(f"\ntime to revoke, event emitted -> key gets 401 ({len(rows)} events, poll {poll} s):")
    for key in ["event_to_401", "run_created", "flow_started", "rejected", "lock"]:
        values = [r[key] for r in rows if key in r]
        if values:
            print(
                f"  {key:<13} min {min(values):6.2f}  median {statistics.median(values):6.2f}"
                f"  max {max(values):6.2f} s"
            )


if __name__ == "__main__":
    main()
