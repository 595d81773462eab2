"""Offboarding, run directly: no live key, no readable secret, rerunnable, and the id comes
back only after the recovery window (or a forced delete)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from pydantic import SecretStr

from devstack.stack import LocalStack
from tenant_keys.errors import NotOwned, RevokeFailed, SecretStoreError, TenantOffboarded
from tenant_keys.keys import mint_key
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import TAG_OFFBOARDING, TAG_PROJECT
from tenant_keys.locks import NoLocks
from tenant_keys.models import project_name
from tenant_keys.offboarding import (
    OffboardingResult,
    find_secret,
    find_tenant_keys,
    mark_offboarding,
    offboard,
    revoke_keys,
)
from tenant_keys.onboarding import OnboardingResult, onboard
from tenant_keys.ownership import Ownership
from tenant_keys.reconcile import make_policy, reconcile
from tenant_keys.rotation import create_pending_key, rotate
from tenant_keys.services import get_services
from tests.invariants import current_key_works, live_tool_keys

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
    state, current = services.store.describe(tenant_id), services.store.read(tenant_id)
    create_pending_key(services, tenant_id, "r-stopped", state, current)
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
    first = sorted(keys)[0]
    services.langsmith.delete_key(first)  # one of the live keys
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
    revoke_keys(services, find_tenant_keys(services, tenant_id, state))  # died before the delete
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


def test_a_secret_copied_from_another_tenant_never_gets_that_tenants_key_deleted(
    backends: LocalStack, tenant_id: str
) -> None:
    """An attacker makes A's secret a copy of B's, then A is offboarded: B's key survives, A's
    own keys die, and the result says which key was left alone."""
    services = get_services()
    victim = f"{tenant_id}-b"
    [a, b] = onboard_tenants([tenant_id, victim])
    a_key = services.store.read(tenant_id).api_key
    copied = services.store.read(victim)
    services.store.put_version(tenant_id, copied, token=str(uuid.uuid4()), stage="AWSCURRENT")

    result = offboard_tenant(tenant_id)

    assert result.not_owned == [b.key_id]
    assert b.key_id not in result.revoked_key_ids and a.key_id in result.revoked_key_ids
    assert current_key_works(victim), "B's key is untouched"
    assert not services.langsmith.authenticates(a_key)


def test_a_project_tag_naming_another_tenants_project_deletes_nothing(
    backends: LocalStack, tenant_id: str
) -> None:
    services = get_services()
    victim = f"{tenant_id}-v"
    [_, v] = onboard_tenants([tenant_id, victim])
    services.store.set_tags(tenant_id, {TAG_PROJECT: v.project_id or ""})
    key = services.store.read(tenant_id).key_id

    with pytest.raises(NotOwned, match=f"it is 'tenant-{victim}'"):
        offboard_tenant(tenant_id, delete_project=True)

    assert services.langsmith.find_project(project_name(victim)) is not None
    assert key in live_tool_keys(backends, tenant_id), "refused before anything was done"
    assert not services.store.describe(tenant_id).leaving


def test_a_project_someone_else_made_is_never_deleted(backends: LocalStack, tenant_id: str) -> None:
    """`offboard K --delete-project` for a tenant never onboarded, with an unrelated project
    named `tenant-K` in the workspace: refused."""
    services = get_services()
    stranger = services.langsmith.create_project(project_name(tenant_id), description="not ours")

    with pytest.raises(NotOwned, match="the tool did not create it"):
        offboard_tenant(tenant_id, delete_project=True)

    assert services.langsmith.find_project(project_name(tenant_id)) is not None
    services.langsmith.delete_project(stranger.id)


def test_an_admin_key_of_another_workspace_cannot_fake_an_offboarding(
    backends: LocalStack, tenant_id: str
) -> None:
    """Every delete answered 404 (the keys are in another workspace): the tenant's key still
    works, so offboarding fails before its secret is touched."""
    services = get_services()
    onboard_tenants([tenant_id])
    key = services.store.read(tenant_id)
    org_key = SecretStr(backends.langsmith.org_admin_key)
    org = LangSmithAdmin(backends.langsmith.url, org_key, org_id=backends.langsmith.org_id)
    other = org.create_workspace(f"elsewhere-{tenant_id}")
    wrong = LangSmithAdmin(
        backends.langsmith.url, org_key, workspace_id=other.id, org_id=backends.langsmith.org_id
    )
    elsewhere = replace(services, langsmith=wrong, ownership=Ownership(wrong))

    with pytest.raises(RevokeFailed, match="still accepted"):
        offboard(elsewhere, tenant_id)

    assert services.langsmith.authenticates(key.api_key)
    assert not services.store.describe(tenant_id).scheduled_for_deletion
