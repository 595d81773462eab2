"""The daily posture report: the Prefect shell of `tenant_keys.posture`.

Reads only. Incidents come from Prefect's incident artifacts plus the break-glass records not
yet replayed; the report becomes a table artifact (a row per tenant and one for the admin key),
a markdown summary, and a `tenant-keys.posture.violation` event per violation (none on a clean
report) for automations to page on, then `tenant-keys.posture.reported`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed

from tasks.events import emit
from tasks.incidents import prefect_incidents
from tenant_keys.models import utcnow
from tenant_keys.posture import (
    DEFAULT_WINDOW_DAYS,
    break_glass_incidents,
    build_report,
)
from tenant_keys.posture_model import IncidentRecord, PostureReport
from tenant_keys.reconcile import DEFAULT_ORPHAN_MIN_AGE_SECONDS
from tenant_keys.services import get_services

# A table artifact past this many rows is more than anyone scrolls; `tenant-keys report
# --format csv` exports them all.
ARTIFACT_MAX_ROWS = 1000


@task(name="read-incidents", cache_policy=NO_CACHE, persist_result=False)
def read_incidents(window_days: float) -> list[IncidentRecord]:
    since = utcnow() - timedelta(days=window_days)
    found = {i.incident_id: i for i in prefect_incidents(since)}
    folder = get_services().settings.incident_dir
    for record in break_glass_incidents(folder, unsynced_only=True):  # not in Prefect yet
        found.setdefault(record.incident_id, record)
    return list(found.values())


@task(name="assemble-report", cache_policy=NO_CACHE, persist_result=False)
def assemble(
    incidents: list[IncidentRecord], window_days: float, orphan_min_age_seconds: float
) -> PostureReport:
    return build_report(
        get_services(),
        incidents=incidents,
        incident_source="Prefect's incident artifacts and unsynced break-glass records",
        window_days=window_days,
        orphan_min_age_seconds=orphan_min_age_seconds,
    )


@flow(name="posture-report", log_prints=False)
def posture_report(
    window_days: float = DEFAULT_WINDOW_DAYS,
    orphan_min_age_seconds: float = DEFAULT_ORPHAN_MIN_AGE_SECONDS,
) -> State:
    """Key posture of every tenant and of the admin key, as evidence and as alarms."""
    report = assemble(read_incidents(window_days), window_days, orphan_min_age_seconds)
    report_id = str(flow_run.id or uuid.uuid4())
    rows = report.rows()
    create_table_artifact(
        key="posture",
        table=rows[:ARTIFACT_MAX_ROWS],
        description=f"Key posture, {report.generated_at:%Y-%m-%d}: ids, ages and dates only"
        + (
            f" (first {ARTIFACT_MAX_ROWS} of {len(rows)} rows)"
            if len(rows) > ARTIFACT_MAX_ROWS
            else ""
        ),
    )
    create_markdown_artifact(
        key="posture-summary", markdown=report.markdown(), description=report.summary()
    )
    emit(report.events(report_id))
    log = get_run_logger().warning if report.violations else get_run_logger().info
    log(report.summary())
    return Completed(message=report.summary(), data=report)
