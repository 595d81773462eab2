"""Screenshots of the Prefect UI for the README, taken from a real run of the local stack.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts what `tenant-keys up` starts (local stack, `prefect deploy --all`, a process worker,
the automations), onboards and rotates the demo tenants, reports acme's key as compromised
with the `security.key.compromised` event, waits for the emergency-revoke deployment's run,
then photographs the UI pages with headless Chromium (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.stack import LocalStack  # noqa: E402
from tenant_keys.cli.devstack import DEMO_TENANTS  # noqa: E402

TENANT = DEMO_TENANTS[0]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=8000",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium found: apt-get update && apt-get install -y chromium")


def screenshot(browser: str, url: str, path: Path, size: str = "1400,900") -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                f"--screenshot={path}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"{path} <- {url}")


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    browser = chromium()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as state, LocalStack(state_dir=Path(state)) as stack:
        env = stack.env()
        os.environ.update(env)  # before Prefect is imported: it reads PREFECT_API_URL once
        pages = run_scenario(stack, env, Path(state))
        assert stack.prefect is not None
        ui = stack.prefect.ui_url
        for name, (path, size) in pages.items():
            screenshot(browser, ui + path, args.out / f"{name}.png", size)


def run_scenario(stack: LocalStack, env: dict[str, str], state: Path) -> dict[str, tuple[str, str]]:
    """Everything the pictures show; returns {file name: (UI path, window size)}."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        DeploymentFilter,
        DeploymentFilterName,
    )
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from typer.testing import CliRunner

    from devstack.deployments import deploy_all, ensure_work_pool, process_worker
    from devstack.notify_receiver import NotificationReceiver
    from flows.onboarding import onboard_tenants
    from flows.posture import posture_report
    from flows.rotation import rotate_keys
    from tasks.automations import apply_automations
    from tasks.events import flush
    from tenant_keys.cli import app
    from tenant_keys.cli.up import _wait_for_worker
    from tenant_keys.services import reset_services

    reset_services()
    ensure_work_pool(env)
    deploy_all(env)
    with NotificationReceiver() as receiver, process_worker(env, state / "worker.log") as worker:
        apply_automations(receiver.url)
        onboard_tenants(DEMO_TENANTS)
        rotate_keys(DEMO_TENANTS)
        _wait_for_worker(worker, state / "worker.log")

        reported = CliRunner().invoke(
            app, ["report-compromise", TENANT, "--reason", "secret scanning alert #42"]
        )
        assert reported.exit_code == 0, reported.output

        def revoke_run() -> Any:
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(
                        name=DeploymentFilterName(any_=["emergency-revoke"])
                    )
                )
            return next((r for r in runs if r.state and r.state.is_final()), None)

        run = wait_for(revoke_run, 120, "the emergency-revoke run")
        wait_for(receiver.received, 60, "the key-revoked notification")
        flush()
        with get_client(sync_client=True) as client:
            [artifact] = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"revoke-{TENANT}"]))
            )

        def revoked_event() -> Any:
            with get_client(sync_client=True) as client:
                page = client.read_events(
                    EventFilter(
                        event=EventNameFilter(name=["tenant-keys.key.revoked"]),
                        resource=EventResourceFilter(id=[f"tenant.{TENANT}"]),
                    ),
                    limit=50,
                )
            return page.events[0] if page.events else None

        event = wait_for(revoked_event, 60, "the server to store the key-revoked event")
        posture_report()
        flush()
        with get_client(sync_client=True) as client:
            [posture] = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["posture-summary"]))
            )
    print(f"revoke run {run.name}: {run.state.message}")
    return {
        "01-runs": ("/runs", "1400,1300"),
        "02-revoke-run": (f"/runs/flow-run/{run.id}", "1400,900"),
        "03-incident-artifact": (f"/artifacts/artifact/{artifact.id}", "1400,1250"),
        "04-revoked-event": (f"/events/event/{event.occurred.date()}/{event.id}", "1400,700"),
        "05-deployments": ("/deployments", "1400,900"),
        "06-posture-report": (f"/artifacts/artifact/{posture.id}", "1400,1100"),
    }


if __name__ == "__main__":
    main()
