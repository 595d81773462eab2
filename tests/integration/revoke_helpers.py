"""Helpers of the revoke tests: the served deployment, incident artifacts and events, waiting."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

from devstack.stack import child_process

REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def incident_artifacts(tenant_id: str) -> list[str]:
    """The markdown of every incident artifact of the tenant, oldest first."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"revoke-{tenant_id}"]))
        )
    return [str(a.data) for a in sorted(found, key=lambda a: a.created or 0)]


def tenant_events(event: str, tenant_id: str) -> list[dict[str, Any]]:
    """Payloads of the events named `event` about the tenant that the server stored."""
    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(name=[event]),
                resource=EventResourceFilter(id=[f"tenant.{tenant_id}"]),
            ),
            limit=50,
        )
    return [dict(e.payload) for e in page.events]


def served_revoke_deployment(
    log_path: Path,
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`python -m flows.revoke serve` as a child process, stopped (its group) on exit."""
    return child_process(
        [sys.executable, "-m", "flows.revoke", "serve"], log_path=log_path, cwd=REPO
    )


def deployment_ready(name: str = "emergency-revoke/emergency-revoke") -> bool:
    """The served deployment and its trigger's automation exist on the server."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except Exception:
            return False
        automations = client.read_automations_by_name("key-compromised")
        return bool(deployment and automations)


def revoke_runs_finished(tenant_id: str) -> bool:
    """Every emergency-revoke run for the tenant reached a final state."""
    from prefect.client.schemas.filters import FlowRunFilter

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(), limit=200)
    mine = [r for r in runs if str(r.parameters.get("tenant", "")).endswith(tenant_id)]
    return bool(mine) and all(r.state is not None and r.state.is_final() for r in mine)
