"""The posture report assembled by the core (no Prefect; incidents from break-glass records),
on stacks of its own: a clean one, and one with an overdue tenant, a stuck retire whose old key
is used afterwards, an orphan and an incident."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tenant_keys.posture import break_glass_incidents, build_report
from tenant_keys.posture_model import PostureReport
from tenant_keys.services import get_services, reset_services
from tests import posture_scenario as scenario
from tests.fresh_stack import ORG_ADMIN_SECRET, fresh_backends
from tests.invariants import stored_plaintext_keys


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[LocalStack]:
    with fresh_backends(tmp_path) as stack:
        yield stack


def _report(orphan_min_age_seconds: float = 0.0) -> PostureReport:
    services = get_services()
    return build_report(
        services,
        incidents=break_glass_incidents(services.settings.incident_dir),
        incident_source="break-glass records",
        orphan_min_age_seconds=orphan_min_age_seconds,
    )


def _assert_no_key_in(stack: LocalStack, text: str) -> None:
    keys = stored_plaintext_keys(stack)
    assert keys, "no keys to look for: the check would pass vacuously"
    assert not [k[:10] for k in keys if k in text or k[-16:] in text]
    assert "lsv2_" not in text, "not even a short key"


def test_a_clean_stack_has_no_violation(fresh: LocalStack) -> None:
    tenants = scenario.clean(fresh)

    report = _report()

    assert report.violations == [] and report.clean
    assert [e.name for e in report.events("r")] == ["tenant-keys.posture.reported"]
    assert [t.tenant_id for t in report.tenants] == tenants
    rotated = next(t for t in report.tenants if t.tenant_id == "clean-b")
    assert rotated.last_rotated_at is not None and rotated.rotation_id == "r-clean"
    assert rotated.retired_key_id and rotated.retired_key_alive is False, "the old key is gone"
    fresh_one = next(t for t in report.tenants if t.tenant_id == "clean-a")
    assert fresh_one.last_rotated_at is None, "never rotated since onboarding"
    assert (fresh_one.key_age_days or 0) < 1 and not fresh_one.overdue
    assert report.admin.source == "secret" and report.admin.secret == ORG_ADMIN_SECRET
    assert report.admin.kind == "org" and report.admin.current_key_id
    assert report.audit.available and report.audit.records > 0, report.audit
    _assert_no_key_in(fresh, report.model_dump_json() + report.csv() + report.markdown())


def test_each_violation_is_flagged_with_its_event(fresh: LocalStack) -> None:
    services = get_services()
    for tenant in ("overdue", "stuck", "orphaned", "leaked", "fine"):
        assert scenario.onboard(services, tenant).outcome == "created"
    scenario.age_current_key(fresh, "overdue", days=9)
    old_key = scenario.stuck_retire_used_after(fresh, "stuck")
    orphan_key = scenario.orphan("orphaned")
    incident = scenario.break_glass_incident("leaked")

    report = _report()

    found = {(v.subject, v.kind, v.key_id) for v in report.violations}
    overdue_key = get_services().store.read("overdue").key_id
    assert ("overdue", "overdue", overdue_key) in found
    assert ("stuck", "retire-stuck", old_key) in found
    assert ("stuck", "retired-key-used", old_key) in found, report.audit
    assert ("orphaned", "orphan", orphan_key) in found
    assert ("leaked", "incident", None) in found
    assert not [v for v in report.violations if v.subject in ("fine", "(admin key)")]
    rows = {t.tenant_id: t for t in report.tenants}
    assert rows["overdue"].overdue and (rows["overdue"].key_age_days or 0) > 8.9
    assert rows["stuck"].retire_pending_key_id == old_key and rows["stuck"].retire_stuck
    assert rows["stuck"].retired_key_alive and rows["stuck"].retired_key_last_used_at
    assert rows["orphaned"].orphan_key_ids == [orphan_key]
    assert rows["leaked"].incident_ids == [incident]
    assert rows["fine"].violations == []

    events = report.events("report-1")
    violations = [e for e in events if e.name == "tenant-keys.posture.violation"]
    assert len(violations) == len(report.violations)
    assert {(e.tenant_id, e.payload()["kind"]) for e in violations} == {
        (v.tenant_id or "", v.kind) for v in report.violations
    }
    assert all(e.payload()["report_id"] == "report-1" for e in violations)
    exported = report.model_dump_json() + report.csv() + report.markdown()
    exported += json.dumps([e.payload() for e in events])
    _assert_no_key_in(fresh, exported)


def test_a_young_orphan_is_spared_and_the_admin_key_from_the_environment_is_flagged(
    fresh: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = get_services()
    assert scenario.onboard(services, "young").outcome == "created"
    scenario.orphan("young")
    assert not _report(orphan_min_age_seconds=600).violations, "onboarding may hold it"

    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", fresh.langsmith.org_admin_key)
    reset_services()
    report = _report(orphan_min_age_seconds=600)
    assert report.admin.source == "environment"
    assert [v.kind for v in report.violations] == ["admin-key-unmanaged"]
