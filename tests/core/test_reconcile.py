"""Reconcile, run directly: each broken state is manufactured for real (a rotation stopped
after a step, a key deleted behind the tool's back, an orphan minted, a key about to expire),
then reconcile repairs it and a second reconcile finds nothing to do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devstack.stack import LocalStack
from tenant_keys.keys import KeyHome, mint_key, record_for
from tenant_keys.layout import CURRENT, PENDING, RETIRE_PENDING, TenantKeyRecord
from tenant_keys.locks import NoLocks
from tenant_keys.models import key_description, new_rotation_id, utcnow, version_token
from tenant_keys.onboarding import onboard
from tenant_keys.reconcile import ReconcileReport, make_policy, reconcile
from tenant_keys.rotation import (
    PendingKey,
    create_pending_key,
    promote_pending_key,
    retire_previous_key,
)
from tenant_keys.rotation import (
    test_pending_key as check_pending_key,  # renamed: pytest would collect a test_* name
)
from tenant_keys.services import get_services
from tests.invariants import (
    assert_finished,
    assert_no_orphans,
    current_key_works,
    live_tool_keys,
)

pytestmark = pytest.mark.usefixtures("backends")


def _onboarded(tenant_id: str) -> str:
    result = onboard(get_services(), tenant_id)
    assert result.key_id
    return result.key_id


def _reconcile(
    tenants: list[str] | str, *, apply: bool, orphan_min_age_seconds: float = 0.0
) -> ReconcileReport:
    services = get_services()
    return reconcile(
        services,
        None if tenants == "all" else list(tenants),
        apply=apply,
        policy=make_policy(services.settings, 7.0, orphan_min_age_seconds),
        rotation_id=f"reconcile-{new_rotation_id()}",
        locks=NoLocks(),
    )


def _repairs(report: ReconcileReport, tenant_id: str) -> list[tuple[str, str]]:
    return [(r.kind, r.outcome) for r in report.rows if r.tenant_id == tenant_id]


def _assert_nothing_to_do(tenant_id: str) -> None:
    report = _reconcile([tenant_id], apply=False)
    assert report.rows == [], f"a second reconcile still plans: {report.rows}"


def _labels(tenant_id: str) -> set[str]:
    state = get_services().store.describe(tenant_id)
    return {label for labels in state.versions.values() for label in labels}


def _key_states(backends: LocalStack) -> dict[str, object]:
    """Every key's id and deletion date (last_used_at moves with every call, so it is left out)."""
    return {key["id"]: key["deleted_at"] for key in backends.langsmith.control.keys()}  # noqa: SIM118


def _stop_after_create(tenant_id: str, rotation_id: str) -> str:
    """A rotation whose process died right after step 1: a key stored as AWSPENDING."""
    services = get_services()
    state, current = services.store.describe(tenant_id), services.store.read(tenant_id)
    pending = create_pending_key(services, tenant_id, rotation_id, state, current)
    assert pending is not None
    return pending.key_id


def _stop_after_promote(tenant_id: str, rotation_id: str) -> str:
    """A rotation that promoted its key and died before the retire: the old key lives on."""
    services = get_services()
    state, current = services.store.describe(tenant_id), services.store.read(tenant_id)
    pending = create_pending_key(services, tenant_id, rotation_id, state, current)
    assert pending is not None
    check_pending_key(services, tenant_id, pending)
    promote_pending_key(services, tenant_id, pending, state)
    return pending.key_id


def test_a_rotation_stopped_after_create_is_resumed_with_its_own_key(
    backends: LocalStack, tenant_id: str
) -> None:
    old_key = _onboarded(tenant_id)
    new_key = _stop_after_create(tenant_id, "r-crashed")

    report = _reconcile([tenant_id], apply=True)

    assert _repairs(report, tenant_id) == [("resume-rotation", "done")]
    record = get_services().store.read(tenant_id)
    assert (record.key_id, record.rotation_id) == (new_key, "r-crashed"), "no second key minted"
    assert current_key_works(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {new_key}
    assert old_key not in live_tool_keys(backends, tenant_id)
    assert_finished(tenant_id)
    _assert_nothing_to_do(tenant_id)


def test_a_rotation_stopped_after_its_promotion_has_its_old_key_retired(
    backends: LocalStack, tenant_id: str
) -> None:
    old_key = _onboarded(tenant_id)
    new_key = _stop_after_promote(tenant_id, "r-promoted")
    assert old_key in live_tool_keys(backends, tenant_id)

    report = _reconcile([tenant_id], apply=True)

    assert _repairs(report, tenant_id) == [("retire", "done")]
    assert get_services().store.read(tenant_id).key_id == new_key
    assert live_tool_keys(backends, tenant_id) == {new_key}, f"old key {old_key} must be retired"
    assert_finished(tenant_id)
    _assert_nothing_to_do(tenant_id)


def test_a_pending_key_deleted_behind_the_tool_is_discarded(
    backends: LocalStack, tenant_id: str
) -> None:
    old_key = _onboarded(tenant_id)
    pending_key = _stop_after_create(tenant_id, "r-lost-pending")
    assert get_services().langsmith.delete_key(pending_key)

    report = _reconcile([tenant_id], apply=True)

    assert _repairs(report, tenant_id) == [("discard-pending", "done")]
    assert get_services().store.read(tenant_id).key_id == old_key
    assert current_key_works(tenant_id)
    assert PENDING not in _labels(tenant_id)
    _assert_nothing_to_do(tenant_id)


def test_a_retire_pending_label_of_the_tools_earlier_versions_is_retired(
    backends: LocalStack, tenant_id: str
) -> None:
    """Earlier versions marked the old key's version RETIRE_PENDING, dropped AWSPENDING, and
    wrote records that do not name the key they replaced."""
    old_key = _onboarded(tenant_id)
    services = get_services()
    state, base = services.store.describe(tenant_id), services.store.read(tenant_id)
    created = services.langsmith.create_key(key_description(tenant_id, "r-old"), expires_at=None)
    record = record_for(
        created,
        project_id=base.project_id,
        project_name=base.project_name,
        workspace_id=base.workspace_id,
        rotation_id="r-old",
    )
    token = version_token(tenant_id, "r-old")
    services.store.put_pending(tenant_id, record, token=token)
    old_version = state.version_with(CURRENT)
    services.store.move_label(tenant_id, CURRENT, to_version=token, from_version=old_version)
    assert old_version is not None
    services.store.move_label(tenant_id, RETIRE_PENDING, to_version=old_version, from_version=None)
    services.store.remove_label(tenant_id, PENDING, from_version=token)

    report = _reconcile([tenant_id], apply=True)

    assert _repairs(report, tenant_id) == [("retire", "done")]
    assert live_tool_keys(backends, tenant_id) == {created.id}
    assert old_key not in live_tool_keys(backends, tenant_id)
    assert_finished(tenant_id)
    assert current_key_works(tenant_id)
    _assert_nothing_to_do(tenant_id)


def test_a_current_key_deleted_behind_the_tool_is_replaced_loudly(
    backends: LocalStack, tenant_id: str
) -> None:
    dead_key = _onboarded(tenant_id)
    assert get_services().langsmith.delete_key(dead_key)
    assert not current_key_works(tenant_id)

    report = _reconcile([tenant_id], apply=True)

    [row] = [r for r in report.rows if r.tenant_id == tenant_id]
    assert (row.kind, row.outcome, row.key_id) == ("replace-dead-key", "done", dead_key)
    assert row.reason.startswith("DRIFT") and row.new_key_id
    record = get_services().store.read(tenant_id)
    assert record.key_id == row.new_key_id and record.rotation_id == report.rotation_id
    assert current_key_works(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert_finished(tenant_id)
    _assert_nothing_to_do(tenant_id)


def test_a_key_close_to_expiry_is_rotated_early(backends: LocalStack, tenant_id: str) -> None:
    _onboarded(tenant_id)
    services = get_services()
    # Give the tenant a current key that expires in two days (as a short-lived mint would).
    base = services.store.read(tenant_id)
    created = services.langsmith.create_key(
        key_description(tenant_id, "r-short"), expires_at=utcnow() + timedelta(days=2)
    )
    record = record_for(
        created,
        project_id=base.project_id,
        project_name=base.project_name,
        workspace_id=base.workspace_id,
        rotation_id="r-short",
        previous_key_id=base.key_id,
    )
    state = services.store.describe(tenant_id)
    token = version_token(tenant_id, "r-short")
    services.store.put_pending(tenant_id, record, token=token)
    pending = PendingKey[TenantKeyRecord](
        token=token, key_id=created.id, resumed=False, record=record
    )
    promote_pending_key(services, tenant_id, pending, state)
    retire_previous_key(services, tenant_id, record, KeyHome.of(state.tags), grace_seconds=0)
    assert services.store.read(tenant_id).key_id == created.id

    report = _reconcile([tenant_id], apply=True)

    assert _repairs(report, tenant_id) == [("rotate-expiring", "done")]
    record = services.store.read(tenant_id)
    assert record.key_id != created.id and record.expires_at is not None
    assert record.expires_at - utcnow() > timedelta(days=7)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    _assert_nothing_to_do(tenant_id)


def test_orphans_are_deleted_and_foreign_keys_never_touched(
    backends: LocalStack, tenant_id: str
) -> None:
    current = _onboarded(tenant_id)
    services = get_services()
    # A crash between mint and store: a key with the tool's description that no secret holds.
    orphan = mint_key(services, tenant_id, "r-died-before-store").id
    # Keys someone else made in the same workspace, one of them naming the tenant.
    foreign = [
        services.langsmith.create_key(description, expires_at=None).id
        for description in (f"tenant-keys tenant={tenant_id}", f"ci key for {tenant_id}")
    ]
    # An onboarding that died before storing its secret: a tenant with keys and no secret.
    ghost = f"{tenant_id}-ghost"
    ghost_key = mint_key(services, ghost, "onboard").id

    young = _reconcile([tenant_id, ghost], apply=False, orphan_min_age_seconds=600)
    assert young.rows == [], "keys younger than the orphan age are spared (may be in flight)"

    report = _reconcile("all", apply=True)

    assert ("delete-orphan", "done") in _repairs(report, tenant_id)
    assert _repairs(report, ghost) == [("delete-orphan", "done")]
    assert live_tool_keys(backends, tenant_id) == {current}
    assert live_tool_keys(backends, ghost) == set()
    listed = {key.id for key in services.langsmith.list_keys()}
    assert set(foreign) <= listed, "keys the tool did not mint must survive"
    assert orphan not in listed and ghost_key not in listed
    assert current_key_works(tenant_id)
    assert_no_orphans(backends, tenant_id)
    _assert_nothing_to_do(tenant_id)
    for key_id in foreign:
        services.langsmith.delete_key(key_id)


def test_dry_run_plans_every_repair_and_changes_nothing(
    backends: LocalStack, tenant_id: str
) -> None:
    _onboarded(tenant_id)
    services = get_services()
    _stop_after_promote(tenant_id, "r-dry")  # the old key left alive
    orphan = mint_key(services, tenant_id, "r-dry-orphan").id
    secret_before = services.store.describe(tenant_id)
    keys_before = _key_states(backends)
    counts_before = backends.langsmith.control.request_counts()["by_route"]

    report = _reconcile([tenant_id], apply=False)

    assert not report.applied
    assert sorted(_repairs(report, tenant_id)) == [
        ("delete-orphan", "planned"),
        ("retire", "planned"),
    ]
    assert services.store.describe(tenant_id) == secret_before
    assert _key_states(backends) == keys_before
    writes = {
        route: n - counts_before.get(route, 0)
        for route, n in backends.langsmith.control.request_counts()["by_route"].items()
        if not route.startswith("GET") and n != counts_before.get(route, 0)
    }
    assert writes == {}, f"a dry run made LangSmith calls that change things: {writes}"

    applied = _reconcile([tenant_id], apply=True)
    assert sorted(_repairs(applied, tenant_id)) == [("delete-orphan", "done"), ("retire", "done")]
    assert orphan not in live_tool_keys(backends, tenant_id)
    _assert_nothing_to_do(tenant_id)
