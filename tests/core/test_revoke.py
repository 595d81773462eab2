"""The emergency revoke, run directly: kill first, prove it by 401, then replace; every key the
tenant has can be named; a leaked key is found from itself; a secret edited to name another
tenant's key never gets that key deleted."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest
from pydantic import SecretStr

from devstack.stack import LocalStack
from tenant_keys.errors import BadInput
from tenant_keys.incident import Incident, IncidentDetails
from tenant_keys.keys import record_for
from tenant_keys.layout import PENDING, PREVIOUS, STATUS_NO_KEY, TAG_STATUS
from tenant_keys.locks import NoLocks
from tenant_keys.models import key_description, key_fingerprint, utcnow, version_token
from tenant_keys.revocation import RevokeOutcome, find_leaked_key, kill, request_from, revoke
from tenant_keys.rotation import RotationResult, rotate
from tenant_keys.services import Services
from tests.core.conftest import ThreadLocks
from tests.invariants import assert_finished, assert_no_orphans, current_key_works, live_tool_keys

Onboard = Callable[[str], str]
DELETE = "/api/v1/api-key/{api_key_id}"


def _revoke(
    services: Services,
    tenant_id: str | None,
    *,
    scope: str = "current",
    key_id: str | None = None,
    incident_id: str | None = None,
    locks: object = None,
) -> RevokeOutcome:
    request = request_from(
        services,
        tenant=tenant_id,
        scope=scope,
        key_id=key_id,
        fingerprint=None,
        incident_id=incident_id or str(uuid.uuid4()),
    )
    return revoke(services.urgent(), request, locks or NoLocks())  # type: ignore[arg-type]


def _works(services: Services, api_key: SecretStr) -> bool:
    return services.langsmith.authenticates(api_key)


def _labels(services: Services, tenant_id: str) -> set[str]:
    state = services.store.describe(tenant_id)
    return {label for labels in state.versions.values() for label in labels}


def _stuck_retire(backends: LocalStack, services: Services, tenant_id: str) -> None:
    """A rotation whose retire failed: the old key lives on (AWSPREVIOUS, still listed)."""
    backends.langsmith.control.inject_fault(method="DELETE", route=DELETE, status=500, count=50)
    assert rotate(services, tenant_id, "r-stuck", retire_now=True).outcome == "retire-failed"
    backends.langsmith.control.clear_faults()


def _pending(services: Services, tenant_id: str, rotation_id: str) -> SecretStr:
    """An unfinished rotation's AWSPENDING key; returns it."""
    base = services.store.read(tenant_id)
    created = services.langsmith.create_key(
        key_description(tenant_id, rotation_id), expires_at=None
    )
    record = record_for(
        created,
        project_id=base.project_id,
        project_name=base.project_name,
        workspace_id=base.workspace_id,
        rotation_id=rotation_id,
    )
    services.store.put_pending(tenant_id, record, token=version_token(tenant_id, rotation_id))
    return created.key


def test_the_current_key_dies_and_is_replaced(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_id = onboarded(tenant_id)
    old_key = services.store.read(tenant_id).api_key

    outcome = _revoke(services, tenant_id)

    assert outcome.status == "revoked", outcome.error
    assert [k.key_id for k in outcome.revoked] == [old_id] and outcome.revoked[0].deleted
    assert not _works(services, old_key)
    record = services.store.read(tenant_id)
    assert record.key_id == outcome.replacement_key_id and record.rotation_id.startswith("revoke-")
    assert current_key_works(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert outcome.killed_at and outcome.rejected_at and outcome.verified_at
    assert outcome.killed_at <= outcome.rejected_at <= outcome.verified_at


def test_scope_all_revokes_every_key_minted_for_the_tenant(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    first_id = onboarded(tenant_id)
    first_key = services.store.read(tenant_id).api_key
    _stuck_retire(backends, services, tenant_id)
    second = services.store.read(tenant_id)
    pending_key = _pending(services, tenant_id, "r-crashed")
    orphan = services.langsmith.create_key(key_description(tenant_id, "r-lost"), expires_at=None)
    assert len(live_tool_keys(backends, tenant_id)) == 4

    outcome = _revoke(services, tenant_id, scope="all")

    assert outcome.status == "revoked", outcome.error
    for key in (first_key, second.api_key, pending_key, orphan.key):
        assert not _works(services, key)
    record = services.store.read(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert current_key_works(tenant_id)
    assert_finished(tenant_id)
    held = {k.key_id: k.labels for k in outcome.revoked}
    assert held[orphan.id] == [], "found by LangSmith's listing, not in the secret"
    assert held[first_id] == [PREVIOUS], "the key a failed retire left alive"
    assert_no_orphans(backends, tenant_id)


def test_default_scope_leaves_another_tenants_keys_and_an_unrelated_pending_key(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    neighbour = f"{tenant_id}-n"
    onboarded(tenant_id)
    neighbour_key = onboarded(neighbour)
    base = services.store.read(tenant_id)
    pending_key = _pending(services, tenant_id, "r-next")

    outcome = _revoke(services, tenant_id)

    assert outcome.status == "revoked", outcome.error
    assert not _works(services, base.api_key)
    assert _works(services, pending_key), "scope current leaves an in-flight AWSPENDING alone"
    assert neighbour_key in live_tool_keys(backends, neighbour) and current_key_works(neighbour)
    # The next rotation resumes that pending key and retires the replacement: no orphans.
    assert rotate(services, tenant_id, "r-next", retire_now=True).outcome == "rotated"
    assert_no_orphans(backends, tenant_id)


def test_a_failed_replacement_leaves_the_tenant_without_a_key_marked_and_loud(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_id = onboarded(tenant_id)
    old_key = services.store.read(tenant_id).api_key
    # Every mint fails; the suspect key's delete is unaffected.
    backends.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", status=503, count=None
    )
    try:
        outcome = _revoke(services, tenant_id)
    finally:
        backends.langsmith.control.clear_faults()

    assert outcome.status == "revoked-no-key" and "ReplacementFailed" in (outcome.error or "")
    assert not _works(services, old_key), "security first: the suspect key is dead anyway"
    assert services.store.read(tenant_id).key_id == old_id, "AWSCURRENT keeps the dead key"
    state = services.store.describe(tenant_id)
    assert state.tags[TAG_STATUS] == STATUS_NO_KEY and state.has_no_key(old_id)
    assert live_tool_keys(backends, tenant_id) == set(), "no half-made replacement left alive"
    incident = Incident(outcome=outcome, details=_details())
    assert [e.name for e in incident.events()] == [
        "tenant-keys.key.revoked",
        "tenant-keys.tenant.no-key",
    ]
    assert "NO WORKING KEY" in incident.markdown()

    # Once LangSmith mints again, a second revoke gives the tenant a key and clears the mark.
    assert _revoke(services, tenant_id).status == "revoked"
    assert current_key_works(tenant_id)
    state = services.store.describe(tenant_id)
    assert not state.has_no_key(services.store.read(tenant_id).key_id)
    assert state.tags[TAG_STATUS] == "active"
    assert_no_orphans(backends, tenant_id)


def test_a_delete_that_keeps_failing_changes_nothing_else_and_fails_loudly(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_id = onboarded(tenant_id)
    old_key = services.store.read(tenant_id).api_key
    quick = replace(
        services,
        settings=services.settings.model_copy(update={"revoke_delete_deadline_seconds": 1.0}),
    )
    backends.langsmith.control.inject_fault(method="DELETE", route=DELETE, status=503, count=None)
    try:
        outcome = _revoke(quick, tenant_id)
    finally:
        backends.langsmith.control.clear_faults()

    assert outcome.status == "not-revoked" and "RevokeFailed" in (outcome.error or "")
    assert services.store.read(tenant_id).key_id == old_id
    assert _works(services, old_key)  # honest: it is still alive, and the outcome says so
    incident = Incident(outcome=outcome, details=_details())
    assert [e.name for e in incident.events()] == ["tenant-keys.revoke.failed"]


def test_a_revoke_racing_a_rotation_ends_with_the_suspect_dead_and_one_live_key(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    """Kill first, lock later: the suspect dies while a rotation holds the tenant's lock;
    the replacement waits for the lock and finds the rotation's fresh key current."""
    first_id = onboarded(tenant_id)
    first_key = services.store.read(tenant_id).api_key
    locks = ThreadLocks()
    control = backends.langsmith.control
    # The rotation holds the lock for ~3 s: a slow mint, then a slow key test.
    mint = control.inject_fault(
        method="POST", route="/api/v1/api-key", action="hang", hang_seconds=1.5, count=1
    )
    control.inject_fault(
        method="GET", route="/api/v1/sessions", action="hang", hang_seconds=1.5, count=1
    )
    rotation: dict[str, RotationResult] = {}

    def rotate_under_lock() -> None:
        with locks.hold([tenant_id]):
            rotation["result"] = rotate(services, tenant_id, "r-racing", retire_now=True)

    thread = threading.Thread(target=rotate_under_lock)
    thread.start()
    try:
        _wait(lambda: any(f["id"] == mint["id"] and f["seen"] for f in control.faults()))
        outcome = _revoke(services, tenant_id, locks=locks)
        thread.join(30)
    finally:
        control.clear_faults()

    assert outcome.status == "revoked", outcome.error
    assert outcome.rejected_at and outcome.lock_acquired_at
    assert outcome.rejected_at < outcome.lock_acquired_at, "the key died before the lock was free"
    assert not _works(services, first_key), "the suspect is dead"
    assert rotation["result"].outcome == "rotated", rotation["result"].error
    record = services.store.read(tenant_id)
    assert record.key_id != first_id, "the compromised key never stays current"
    assert live_tool_keys(backends, tenant_id) == {record.key_id}, "exactly one live key"
    assert current_key_works(tenant_id)
    assert_finished(tenant_id)


def test_a_rerun_of_the_same_incident_does_not_revoke_its_own_replacement(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(tenant_id)
    incident = "11111111-2222-3333-4444-555555555555"
    assert _revoke(services, tenant_id, incident_id=incident).status == "revoked"
    replacement = services.store.read(tenant_id).key_id

    # The same event delivered twice: the second run finds the replacement current and keeps it.
    again = _revoke(services, tenant_id, incident_id=incident)

    assert again.status == "revoked" and again.revoked == []
    assert services.store.read(tenant_id).key_id == replacement
    assert live_tool_keys(backends, tenant_id) == {replacement}


def test_a_kill_on_report_then_the_incidents_run_end_with_one_live_replacement(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_id = onboarded(tenant_id)
    old_key = services.store.read(tenant_id).api_key
    incident = str(uuid.uuid4())
    request = request_from(
        services, tenant=tenant_id, scope=None, key_id=None, fingerprint=None, incident_id=incident
    )

    # The listener's step: dead at once, nothing replaced, the tenant marked without a key.
    killed = kill(services.urgent(), request)

    assert killed.status == "revoked-no-key" and killed.rejected_at, killed.error
    assert [k.key_id for k in killed.revoked] == [old_id] and killed.revoked[0].deleted
    assert not _works(services, old_key)
    assert services.store.read(tenant_id).key_id == old_id
    assert live_tool_keys(backends, tenant_id) == set()

    # The flow run the same event triggered finds the key dead and replaces it.
    outcome = _revoke(services, tenant_id, incident_id=incident)

    assert outcome.status == "revoked", outcome.error
    assert [k.key_id for k in outcome.revoked] == [old_id] and not outcome.revoked[0].deleted
    record = services.store.read(tenant_id)
    assert record.key_id == outcome.replacement_key_id and current_key_works(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert services.store.describe(tenant_id).tags.get(TAG_STATUS) != STATUS_NO_KEY


@pytest.mark.parametrize("label", ["current", "previous", "pending", "retire-pending", "listed"])
def test_key_id_names_any_key_of_the_tenant(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str, label: str
) -> None:
    first_id = onboarded(tenant_id)
    first = services.store.read(tenant_id)
    if label in ("previous", "retire-pending"):
        if label == "retire-pending":
            _stuck_retire(backends, services, tenant_id)
        else:
            assert rotate(services, tenant_id, "r-prev", retire_now=False).outcome == "rotated"
        key_id, api_key = first_id, first.api_key
    elif label == "pending":
        api_key = _pending(services, tenant_id, "r-pend")
        key_id = services.store.read(tenant_id, stage=PENDING).key_id
    elif label == "listed":
        created = services.langsmith.create_key(
            key_description(tenant_id, "r-only-langsmith"), expires_at=None
        )
        key_id, api_key = created.id, created.key
    else:
        key_id, api_key = first_id, first.api_key
    current_before = services.store.read(tenant_id).key_id

    outcome = _revoke(services, tenant_id, key_id=key_id)

    assert outcome.status == "revoked", outcome.error
    assert [k.key_id for k in outcome.revoked] == [key_id]
    assert not _works(services, api_key)
    assert current_key_works(tenant_id)
    if key_id != current_before:
        assert services.store.read(tenant_id).key_id == current_before, "the current key stays"


def test_key_id_must_be_an_id_of_this_tenant(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(tenant_id)
    other = onboarded(f"{tenant_id}-o")
    with pytest.raises(BadInput, match="is not a key of tenant"):
        _revoke(services, tenant_id, key_id=other)
    with pytest.raises(BadInput, match="must be a key id"):
        _revoke(services, tenant_id, key_id="lsv2_sk_" + "a" * 32)
    assert current_key_works(f"{tenant_id}-o")


def test_a_leaked_key_is_found_in_the_store_and_revoked(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(f"{tenant_id}-a")
    key_id = onboarded(tenant_id)
    leaked = services.store.read(tenant_id).api_key

    match = find_leaked_key(services, key_fingerprint(leaked), leaked=leaked)

    assert (match.tenant_id, match.key_id, match.held) == (tenant_id, key_id, True)
    outcome = _revoke(services, match.tenant_id, key_id=match.key_id)
    assert outcome.status == "revoked" and not _works(services, leaked)
    assert current_key_works(tenant_id) and current_key_works(f"{tenant_id}-a")


def test_a_leaked_key_only_langsmith_knows_is_found_by_its_short_form(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(tenant_id)
    created = services.langsmith.create_key(key_description(tenant_id, "r-gone"), expires_at=None)

    match = find_leaked_key(services, key_fingerprint(created.key), leaked=created.key)

    assert (match.tenant_id, match.key_id, match.held) == (tenant_id, created.id, False)
    outcome = _revoke(services, tenant_id, key_id=match.key_id)
    assert outcome.status == "revoked" and not _works(services, created.key)


def test_a_leaked_string_that_matches_no_key_revokes_nothing(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(tenant_id)
    stranger = SecretStr("lsv2_sk_" + "0" * 32 + "_0123456789")
    with pytest.raises(BadInput, match="matches no key of any tenant"):
        find_leaked_key(services, key_fingerprint(stranger), leaked=stranger)
    with pytest.raises(BadInput, match="matches no key of tenant"):
        find_leaked_key(services, key_fingerprint(stranger), tenant_id=tenant_id)
    assert current_key_works(tenant_id)


def test_a_secret_naming_another_tenants_key_never_gets_that_key_deleted(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    """An attacker with write access to A's secret sets its key id to B's key: the revoke of A
    leaves B's key alone, kills every key minted for A instead, and says so."""
    victim = f"{tenant_id}-b"
    onboarded(tenant_id)
    b_key_id = onboarded(victim)
    a = services.store.read(tenant_id)
    tampered = a.model_copy(update={"key_id": b_key_id})
    services.store.put_version(tenant_id, tampered, token=str(uuid.uuid4()), stage="AWSCURRENT")

    outcome = _revoke(services, tenant_id)

    assert outcome.not_owned == [b_key_id]
    assert current_key_works(victim), "B's key is untouched"
    assert not _works(services, a.api_key), "A's real key is dead"
    assert b_key_id not in [k.key_id for k in outcome.revoked]


def _details() -> IncidentDetails:
    now = utcnow()
    return IncidentDetails(
        reason="test", reported_by="test", trigger="test", reported_at=now, started_at=now
    )


def _wait(check: Callable[[], bool], timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
