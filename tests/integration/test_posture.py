"""`tenant-keys report` through the `posture-report` flow: a table and a markdown artifact, an
event per violation (none on a clean stack), JSON and CSV for export, no key anywhere Prefect
keeps data. Each test has a LangSmith emulator and a moto of its own (tests/fresh_stack.py);
the Prefect server is the session's."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
from typer.testing import CliRunner

from devstack.stack import LocalStack
from flows.revoke import emergency_revoke
from tasks.events import flush
from tasks.locks import tenant_locks
from tenant_keys.cli import app
from tenant_keys.services import get_services
from tests import posture_scenario as scenario
from tests.fresh_stack import fresh_backends
from tests.integration.revoke_helpers import wait_for
from tests.invariants import prefect_storage_text, stored_plaintext_keys


@pytest.fixture
def fresh(stack: LocalStack, tmp_path: Path) -> Iterator[LocalStack]:
    with fresh_backends(tmp_path) as backends:
        yield backends


def _report_events(name: str, report_id: str) -> list[dict[str, Any]]:
    """Payloads (and resource ids) of the run's events named `name`, of the last ten minutes."""
    since = datetime.now(UTC) - timedelta(minutes=10)
    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                occurred=EventOccurredFilter(since=since), event=EventNameFilter(name=[name])
            ),
            limit=50,
        )
    return [
        {"resource": e.resource.id, **e.payload}
        for e in page.events
        if e.payload.get("report_id") == report_id
    ]


def _posture_run_id(since_runs: set[str]) -> str:
    with get_client(sync_client=True) as client:
        flow = client.read_flow_by_name("posture-report")
        runs = client.read_flow_runs(limit=200)
    [run] = [r for r in runs if r.flow_id == flow.id and str(r.id) not in since_runs]
    return str(run.id)


def _posture_runs() -> set[str]:
    with get_client(sync_client=True) as client:
        try:
            flow = client.read_flow_by_name("posture-report")
        except Exception:
            return set()
        return {str(r.id) for r in client.read_flow_runs(limit=200) if r.flow_id == flow.id}


def test_the_report_flags_each_violation_and_emits_an_event_for_each(
    fresh: LocalStack, stack: LocalStack
) -> None:
    services = get_services()
    tenants = ["overdue", "stuck", "orphaned", "leaked", "glass", "fine"]
    for tenant in tenants:
        assert scenario.onboard(services, tenant).outcome == "created"
    tenant_locks().ensure(tenants)
    scenario.age_current_key(fresh, "overdue", days=9)
    old_key = scenario.stuck_retire_used_after(fresh, "stuck")
    orphan_key = scenario.orphan("orphaned")
    revoked = emergency_revoke("leaked", reason="test leak", return_state=True)
    assert revoked.is_completed(), revoked.message
    glass = scenario.break_glass_incident("glass")  # Prefect "was down": not replayed yet
    before = _posture_runs()

    result = CliRunner().invoke(
        app, ["report", "--format", "json", "--orphan-min-age-seconds", "0"]
    )

    assert result.exit_code == 1, result.output  # violations found
    report = json.loads(result.stdout)
    found = {(v["tenant_id"], v["kind"]) for v in report["violations"]}
    assert found == {
        ("overdue", "overdue"),
        ("stuck", "retire-stuck"),
        ("stuck", "retired-key-used"),
        ("orphaned", "orphan"),
        ("leaked", "incident"),
        ("glass", "incident"),
    }, report["violations"]
    rows = {t["tenant_id"]: t for t in report["tenants"]}
    assert rows["stuck"]["retire_pending_key_id"] == old_key
    assert rows["orphaned"]["orphan_key_ids"] == [orphan_key]
    assert rows["glass"]["incident_ids"] == [glass]
    assert report["audit"]["available"] is True

    run_id = _posture_run_id(before)
    flush()
    events = wait_for(
        lambda: (
            found_events
            if len(found_events := _report_events("tenant-keys.posture.violation", run_id)) >= 6
            else None
        ),
        30,
        "an event per violation",
        every=0.5,
    )
    assert len(events) == 6
    assert {(e["resource"], e["kind"]) for e in events} == {
        (f"tenant.{tenant}", kind) for tenant, kind in found
    }
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert {"posture", "posture-summary"} <= set(by_key)
    assert "retired-key-used" in str(by_key["posture-summary"].data)
    table = by_key["posture"].data
    assert isinstance(table, str) and orphan_key in table

    # No key of this stack anywhere Prefect keeps data (the artifacts and events included).
    keys = stored_plaintext_keys(fresh)
    assert keys
    text = prefect_storage_text(stack)
    assert not [k[:10] for k in keys if k in text]


def test_a_clean_report_emits_no_violation_event(fresh: LocalStack, stack: LocalStack) -> None:
    tenants = scenario.clean(fresh)
    before = _posture_runs()

    result = CliRunner().invoke(app, ["report", "--format", "csv"])

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["subject"] for r in rows] == ["(admin key)", *tenants]
    assert all(r["violations"] == "" for r in rows)
    run_id = _posture_run_id(before)
    flush()
    # The run's last event arrives; only then does "no violation event" mean something.
    [reported] = wait_for(
        lambda: _report_events("tenant-keys.posture.reported", run_id),
        30,
        "the posture.reported event",
        every=0.5,
    )
    assert reported["violations"] == 0 and reported["tenants"] == len(tenants)
    assert _report_events("tenant-keys.posture.violation", run_id) == []
