"""Offboarding on the local stack: no live key, no readable secret, rerunnable, and the id comes
back only after the recovery window (or a forced delete)."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from flows.offboarding import offboard_tenant
from flows.onboarding import onboard_tenants
from flows.reconcile import ReconcileReport, reconcile
from tenant_keys.errors import SecretStoreError, TenantOffboarded
from tenant_keys.keys import mint_key
from tenant_keys.layout import TAG_OFFBOARDING
from tenant_keys.models import project_name
from tenant_keys.offboarding import find_secret, mark_offboarding, revoke_keys, tenant_key_ids
from tenant_keys.services import get_services
from tests.invariants import live_tool_keys

pytestmark = pytest.mark.usefixtures("stack")


def _onboarded_with_extra_keys(stack: LocalStack, tenant_id: str) -> set[str]:
    """A tenant with its current key, a rotation stopped after create, and an orphan."""
    from flows.rotation import rotate_keys
    from tenant_keys.rotation import create_pending_key

    onboard_tenants([tenant_id])
    rotate_keys([tenant_id], rotation_id="r-before-leaving")
    services = get_services()
    create_pending_key(services, tenant_id, "r-stopped", services.store.describe(tenant_id))
    mint_key(services, tenant_id, "r-orphan")
    keys = live_tool_keys(stack, tenant_id)
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
    stack: LocalStack, tenant_id: str
) -> None:
    keys = _onboarded_with_extra_keys(stack, tenant_id)
    project = get_services().langsmith.find_project(project_name(tenant_id))
    assert project is not None

    result = offboard_tenant(tenant_id)

    assert result.outcome == "offboarded"
    assert set(result.revoked_key_ids) == keys
    assert (result.secret, result.recovery_days) == ("scheduled", 7)
    assert (result.project, result.project_id) == ("kept", project.id)
    assert live_tool_keys(stack, tenant_id) == set()
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
    stack: LocalStack, tenant_id: str
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
    assert live_tool_keys(stack, tenant_id) == {back.key_id}


def test_a_half_done_offboarding_is_finished_by_a_rerun(stack: LocalStack, tenant_id: str) -> None:
    keys = _onboarded_with_extra_keys(stack, tenant_id)
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
    assert live_tool_keys(stack, tenant_id) == set()
    assert _secret_is_unreadable(tenant_id)


def test_reconcile_finishes_a_half_done_offboarding_instead_of_replacing_its_keys(
    stack: LocalStack, tenant_id: str
) -> None:
    _onboarded_with_extra_keys(stack, tenant_id)
    services = get_services()
    state = find_secret(services, tenant_id)
    mark_offboarding(services, tenant_id, state)
    revoke_keys(services, tenant_key_ids(services, tenant_id, state))  # died before the delete
    assert TAG_OFFBOARDING in services.store.describe(tenant_id).tags

    state = reconcile([tenant_id], apply=True, orphan_min_age_seconds=0.0, return_state=True)

    report = state.result(raise_on_failure=False)
    assert isinstance(report, ReconcileReport) and state.is_completed(), state.message
    assert [(r.kind, r.outcome) for r in report.rows] == [("finish-offboarding", "done")]
    assert services.store.describe(tenant_id).scheduled_for_deletion
    assert live_tool_keys(stack, tenant_id) == set(), "reconcile must not mint a replacement"
    follow_up = reconcile([tenant_id], orphan_min_age_seconds=0.0, return_state=True)
    assert follow_up.result().rows == []


def test_offboarding_an_unknown_tenant_changes_nothing(stack: LocalStack, tenant_id: str) -> None:
    result = offboard_tenant(tenant_id)
    assert (result.outcome, result.secret, result.project) == ("nothing-found", "absent", "absent")


def test_the_cli_offboards_plans_and_refuses_in_one_line(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tenant_keys.cli import app
    from tenant_keys.cli.app import console, err

    for output in (console, err):  # wide enough that no table cell or error line wraps
        monkeypatch.setattr(output, "width", 400)
    runner = CliRunner()
    onboard_tenants([tenant_id])
    mint_key(get_services(), tenant_id, "r-cli-orphan")

    plan = runner.invoke(app, ["reconcile", tenant_id, "--orphan-min-age-seconds", "0"])
    assert plan.exit_code == 0, plan.output
    assert "delete-orphan" in plan.output and "planned" in plan.output
    assert "nothing changed" in plan.output

    first = runner.invoke(app, ["offboard", tenant_id])
    assert first.exit_code == 0, first.output
    assert "offboarded" in first.output and "scheduled (7 days)" in first.output
    again = runner.invoke(app, ["offboard", tenant_id])
    assert again.exit_code == 0 and "already-offboarded" in again.output

    refused = runner.invoke(app, ["onboard", tenant_id])
    assert refused.exit_code == 2
    assert f"tenant '{tenant_id}' was offboarded" in refused.output
    assert live_tool_keys(stack, tenant_id) == set()
