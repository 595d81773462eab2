"""Offboarding, run directly: no live key, no readable secret, rerunnable, and the id comes
back only after the recovery window (or a forced delete)."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from tenant_keys.errors import SecretStoreError, TenantOffboarded
from tenant_keys.keys import mint_key
from tenant_keys.layout import TAG_OFFBOARDING
from tenant_keys.locks import NoLocks
from tenant_keys.models import project_name
from tenant_keys.offboarding import (
    OffboardingResult,
    find_secret,
    mark_offboarding,
    offboard,
    revoke_keys,
    tenant_key_ids,
)
from tenant_keys.onboarding import OnboardingResult, onboard
from tenant_keys.reconcile import make_policy, reconcile
from tenant_keys.rotation import create_pending_key, rotate
from tenant_keys.services import get_services
from tests.invariants import live_tool_keys

pytestmark = pytest.mark.usefixtures("backends")


def onboard_tenants(tenant_ids: list[str]) -> list[OnboardingResult]:
    return [onboard(get_services(), t) for t in tenant_ids]


def offboard_tenant(
    tenant_id: str, delete_project: bool = False, force: bool = False
) -> OffboardingResult:
    return offboard(get_services(), tenant_id, delete_project=delete_project, force=force)


def _onboarded_with_extra_keys(backends: LocalStack, tenant_id: str) -> set[str]:
    """A tenant with its current key, a rotation stopped after create, and an orphan."""
    onboard_tenants([tenant_id])
    services = get_services()
    rotate(services, tenant_id, "r-before-leaving", retire_now=True)
    create_pending_key(services, tenant_id, "r-stopped", services.store.describe(tenant_id))
    mint_key(services, tenant_id, "r-orphan")
    keys = live_tool_keys(backends, tenant_id)
    assert len(keys) == 3
    return keys


def _secret_is_unreadable(tenant_id: str) -> bool:
    try:
        get_services().store.read(tenant_id)
    except SecretStoreError as exc:  # AWS and moto refuse GetSecretValue while scheduled
        return exc.code == "InvalidRequestException"
    except TenantOffboarded:
        return True
    return False


def test_offboarding_revokes_every_key_and_schedules_the_secret(
    backends: LocalStack, tenant_id: str
) -> None:
    keys = _onboarded_with_extra_keys(backends, tenant_id)
    project = get_services().langsmith.find_project(project_name(tenant_id))
    assert project is not None

    result = offboard_tenant(tenant_id)

    assert result.outcome == "offboarded"
    assert set(result.revoked_key_ids) == keys
    assert (result.secret, result.recovery_days) == ("scheduled", 7)
    assert (result.project, result.project_id) == ("kept", project.id)
    assert live_tool_keys(backends, tenant_id) == set()
    state = get_services().store.describe(tenant_id)
    assert state.scheduled_for_deletion
    assert _secret_is_unreadable(tenant_id)
    assert get_services().langsmith.find_project(project_name(tenant_id)) is not None

    again = offboard_tenant(tenant_id)

    assert (again.outcome, again.revoked_key_ids, again.secret) == (
        "already-offboarded",
        [],
        "already-scheduled",
    )


def test_an_offboarded_id_is_refused_until_forced_then_onboards_again(
    backends: LocalStack, tenant_id: str
) -> None:
    onboard_tenants([tenant_id])
    offboard_tenant(tenant_id)

    with pytest.raises(TenantOffboarded) as refused:
        onboard_tenants([tenant_id])
    message = str(refused.value)
    assert "\n" not in message and "--force" in message and "recovery window" in message

    forced = offboard_tenant(tenant_id, force=True)  # restores, then deletes without recovery
    assert (forced.outcome, forced.secret) == ("offboarded", "deleted")
    assert find_secret(get_services(), tenant_id) is None

    [back] = onboard_tenants([tenant_id])
    assert back.outcome == "created"
    assert get_services().store.read(tenant_id).key_id == back.key_id
    assert live_tool_keys(backends, tenant_id) == {back.key_id}


def test_a_half_done_offboarding_is_finished_by_a_rerun(
    backends: LocalStack, tenant_id: str
) -> None:
    keys = _onboarded_with_extra_keys(backends, tenant_id)
    services = get_services()
    # The first run died after tagging the secret and revoking some of the keys.
    state = find_secret(services, tenant_id)
    assert mark_offboarding(services, tenant_id, state)
    revoke_keys(services, set(sorted(keys)[:1]))  # one of the live keys
    with pytest.raises(TenantOffboarded):
        onboard_tenants([tenant_id])

    result = offboard_tenant(tenant_id, delete_project=True)

    assert result.outcome == "offboarded" and result.secret == "scheduled"
    assert len(result.revoked_key_ids) == 2 and set(result.revoked_key_ids) < keys
    assert result.project == "deleted"
    assert services.langsmith.find_project(project_name(tenant_id)) is None
    assert live_tool_keys(backends, tenant_id) == set()
    assert _secret_is_unreadable(tenant_id)


def test_reconcile_finishes_a_half_done_offboarding_instead_of_replacing_its_keys(
    backends: LocalStack, tenant_id: str
) -> None:
    _onboarded_with_extra_keys(backends, tenant_id)
    services = get_services()
    state = find_secret(services, tenant_id)
    mark_offboarding(services, tenant_id, state)
    revoke_keys(services, tenant_key_ids(services, tenant_id, state))  # died before the delete
    assert TAG_OFFBOARDING in services.store.describe(tenant_id).tags

    policy = make_policy(services.settings, 7.0, 0.0)

    report = reconcile(
        services, [tenant_id], apply=True, policy=policy, rotation_id="r-rec", locks=NoLocks()
    )

    assert [(r.kind, r.outcome) for r in report.rows] == [("finish-offboarding", "done")]
    assert services.store.describe(tenant_id).scheduled_for_deletion
    assert live_tool_keys(backends, tenant_id) == set(), "reconcile must not mint a replacement"
    follow_up = reconcile(
        services, [tenant_id], apply=False, policy=policy, rotation_id="r-rec", locks=NoLocks()
    )
    assert follow_up.rows == []


def test_offboarding_an_unknown_tenant_changes_nothing(
    backends: LocalStack, tenant_id: str
) -> None:
    result = offboard_tenant(tenant_id)
    assert (result.outcome, result.secret, result.project) == ("nothing-found", "absent", "absent")
