"""Workspace isolation (issue 9) and tagged isolation (issue 17) on the local stack: the same
flows in all three modes, the isolation check refusing the cross read, and the documented move
of a tenant from project to workspace.

The admin credential is the emulator's org-wide Organization Admin service key, as workspace
mode requires; project-mode tenants then live in the shared workspace it names with
TENANT_KEYS_LANGSMITH_WORKSPACE_ID. Each test gets its own secret prefix, so fan-outs over
"all" tenants see only its tenants.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import langsmith
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from devstack.stack import LocalStack
from flows.isolation import check_isolation
from flows.migrate import migrate_tenant
from flows.offboarding import offboard_tenant
from flows.onboarding import onboard_tenants
from flows.quota import QuotaReport, check_quotas
from flows.reconcile import reconcile
from flows.revoke import emergency_revoke
from flows.rotation import rotate_keys
from tenant_keys import migration as migrate_steps
from tenant_keys import tagged
from tenant_keys.cli import app
from tenant_keys.errors import BadInput, Forbidden, OrgKeyNeedsWorkspace
from tenant_keys.keys import KeyHome, mint_key
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import MIGRATING, TAG_BUDGET, TAG_ISOLATION, TAG_ROLE, TAG_WORKSPACE
from tenant_keys.onboarding import OnboardingResult
from tenant_keys.reconcile import ReconcileReport
from tenant_keys.runtime import TenantTracing
from tenant_keys.services import get_services, reset_services
from tests.invariants import assert_no_orphans, current_key_works, live_tool_keys, minted_keys


@pytest.fixture
def org_admin(stack: LocalStack) -> Iterator[None]:
    """Services built with the org admin key and a secret prefix of this test's own."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", stack.langsmith.org_admin_key)
        env.setenv("TENANT_KEYS_SECRET_PREFIX", f"ws-{uuid.uuid4().hex[:8]}/tenant")
        reset_services()
        yield
    reset_services()


@pytest.fixture(params=["project", "workspace", "tagged"])
def mode(request: pytest.FixtureRequest, org_admin: None) -> str:
    return str(request.param)


def _onboard(tenant_id: str, isolation: str, budget: int | None = None) -> OnboardingResult:
    [result] = onboard_tenants([tenant_id], budget, isolation)
    assert result.outcome == "created" and result.isolation == isolation
    return result


def _emulator_key(stack: LocalStack, key_id: str) -> dict:
    return next(k for k in stack.langsmith.control.keys() if k["id"] == key_id)  # noqa: SIM118


def _old_key(tenant_id: str) -> SecretStr:
    return get_services().store.read(tenant_id).api_key


def _dead(api_key: SecretStr, workspace_id: str | None) -> bool:
    return not get_services().langsmith.authenticates(api_key, workspace_id=workspace_id)


def _reconcile_report(tenant_id: str) -> ReconcileReport:
    state = reconcile([tenant_id], apply=True, orphan_min_age_seconds=0.0, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, ReconcileReport)
    return report


def test_the_key_lifecycle_works_in_both_modes(
    stack: LocalStack, tenant_id: str, mode: str
) -> None:
    """Every isolation mode: project, workspace and tagged."""
    onboarded = _onboard(tenant_id, mode)
    services = get_services()
    record = services.store.read(tenant_id)
    tags = services.store.describe(tenant_id).tags
    assert current_key_works(tenant_id)
    key = _emulator_key(stack, record.key_id)
    if mode == "workspace":
        # Its own workspace, and an org service key that reaches exactly that workspace.
        assert onboarded.workspace_id and onboarded.workspace_id != stack.langsmith.workspace_id
        assert record.workspace_id == onboarded.workspace_id
        assert (key["kind"], key["workspaces"]) == ("org", [onboarded.workspace_id])
        assert tags[TAG_ISOLATION] == "workspace" and tags[TAG_WORKSPACE] == record.workspace_id
        with pytest.raises(Forbidden):
            services.langsmith.authenticates(
                record.api_key, workspace_id=stack.langsmith.workspace_id
            )
    elif mode == "tagged":
        # A key of the shared workspace with the tenant's role, refused the canary project.
        assert record.workspace_id == stack.langsmith.workspace_id
        assert (key["kind"], key["role"]) == ("workspace", tags[TAG_ROLE])
        assert tags[TAG_ISOLATION] == "tagged"
        canary = tagged.ensure_canary(services.langsmith)
        assert (
            services.langsmith.reads_project_as(
                record.api_key, canary.id, workspace_id=record.workspace_id
            )
            == "refused"
        )
    else:
        assert record.workspace_id == stack.langsmith.workspace_id
        assert key["kind"] == "workspace" and tags[TAG_ISOLATION] == "project"

    # Rotation: a new key of the same kind, the old one dead.
    old = record.api_key
    state = rotate_keys([tenant_id], rotation_id="r-mode", return_state=True)
    assert state.is_completed(), state.message
    rotated = services.store.read(tenant_id)
    assert rotated.key_id != record.key_id and current_key_works(tenant_id)
    assert _emulator_key(stack, rotated.key_id)["kind"] == key["kind"]
    assert _emulator_key(stack, rotated.key_id)["role"] == key["role"]
    assert _dead(old, record.workspace_id)
    assert live_tool_keys(stack, tenant_id) == {rotated.key_id}

    # Emergency revoke: the current key dead at once, a working replacement stored.
    state = emergency_revoke(tenant_id, reason="mode test", scope="all", return_state=True)
    assert state.is_completed(), state.message
    replaced = services.store.read(tenant_id)
    assert replaced.key_id != rotated.key_id and current_key_works(tenant_id)
    assert _dead(rotated.api_key, record.workspace_id)
    assert_no_orphans(stack, tenant_id)

    # Reconcile finds nothing to repair, then an orphan of this mode's kind, and deletes it.
    assert _reconcile_report(tenant_id).rows == []
    orphan = mint_key(services, tenant_id, "r-orphan", KeyHome.of(tags))
    rows = _reconcile_report(tenant_id).rows
    assert [(r.kind, r.key_id, r.outcome) for r in rows] == [("delete-orphan", orphan.id, "done")]
    assert_no_orphans(stack, tenant_id)

    # Offboarding: every key of the tenant revoked, whichever kind; the project deleted where
    # it lives (the shared workspace, or the tenant's own).
    result = offboard_tenant(tenant_id, delete_project=True)
    assert result.outcome == "offboarded" and replaced.key_id in result.revoked_key_ids
    assert (result.project, result.project_id) == ("deleted", record.project_id)
    assert live_tool_keys(stack, tenant_id) == set()
    assert _dead(replaced.api_key, record.workspace_id)
    assert _runs_by_workspace(stack, tenant_id) == {}
    assert bool(result.removed_access) is (mode == "tagged")
    assert tenant_id not in tagged.list_tool_access(services.langsmith).tenants


def test_workspace_tenants_cannot_read_each_other(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    a, b = f"{tenant_id}-a", f"{tenant_id}-b"
    results = onboard_tenants([a, b], None, "workspace")
    assert all(r.workspace_id for r in results)
    assert results[0].workspace_id != results[1].workspace_id

    report = check_isolation(a, b)

    assert report.own_reads_ok
    assert report.isolated, report.markdown()
    assert all(c.outcome == "refused" and c.runs_seen == 0 for c in report.cross_reads)


def test_quota_enforcement_limits_a_workspace_tenant(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    onboarded = _onboard(tenant_id, "workspace", budget=1)
    _trace(tenant_id, "over-budget", count=2)

    state = check_quotas(enforce=True, return_state=True)

    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, QuotaReport)
    [transition] = [t for t in report.transitions if t.tenant_id == tenant_id]
    assert (transition.status, transition.usage_limit) == ("exceeded", 1)
    assert onboarded.workspace_id
    [limit] = get_services().langsmith.list_usage_limits(workspace_id=onboarded.workspace_id)
    assert (limit.limit_type, limit.limit_value) == ("monthly_traces", 1)
    assert get_services().store.describe(tenant_id).tags[TAG_BUDGET] == "1"


# -- migration project → workspace ---------------------------------------------------------


def _trace(tenant_id: str, name: str, count: int = 1) -> None:
    """Trace as an app does: the runtime helper reads the current key (and place) from the store."""
    tracing = TenantTracing.from_settings(ttl_seconds=0.0)
    try:
        for _ in range(count):
            with tracing.context(tenant_id) as handle:
                assert handle is not None
                langsmith.traceable(name=name)(lambda: None)()
            handle.client.flush()
    finally:
        tracing.close()


def _runs_by_workspace(stack: LocalStack, tenant_id: str) -> dict[str, int]:
    projects = stack.langsmith.control.state()["projects"]
    return {
        p["workspace_id"]: p["run_count"] for p in projects if p["name"] == f"tenant-{tenant_id}"
    }


def test_migration_moves_a_project_tenant_into_its_own_workspace(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    shared = stack.langsmith.workspace_id
    _onboard(tenant_id, "project")
    old = get_services().store.read(tenant_id)
    _trace(tenant_id, "before")
    assert _runs_by_workspace(stack, tenant_id) == {shared: 1}

    result = migrate_tenant(tenant_id, "workspace")

    assert result.outcome == "migrated" and result.revoked_key_ids == [old.key_id]
    new = get_services().store.read(tenant_id)
    assert new.workspace_id == result.workspace_id != shared
    assert (_emulator_key(stack, new.key_id)["kind"], current_key_works(tenant_id)) == ("org", True)
    assert _dead(old.api_key, shared)
    _trace(tenant_id, "after")
    # From now on traces land in the new workspace; the old ones stay where they were.
    assert _runs_by_workspace(stack, tenant_id) == {shared: 1, new.workspace_id: 1}
    assert live_tool_keys(stack, tenant_id) == {new.key_id}

    mints = len(minted_keys(stack, tenant_id))
    again = migrate_tenant(tenant_id, "workspace")
    assert again.outcome == "already-migrated" and len(minted_keys(stack, tenant_id)) == mints

    # The tenant now rotates in its new mode.
    state = rotate_keys([tenant_id], rotation_id="r-after-move", return_state=True)
    assert state.is_completed(), state.message
    assert _emulator_key(stack, get_services().store.read(tenant_id).key_id)["kind"] == "org"
    assert_no_orphans(stack, tenant_id)


def test_migration_that_fails_its_key_test_keeps_the_tenant_as_it_was(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    _onboard(tenant_id, "project")
    old = get_services().store.read(tenant_id)
    # Every test call with the new key is refused (five attempts).
    stack.langsmith.control.inject_fault(
        method="GET", route="/api/v1/sessions", action="status", status=401, count=5
    )
    state = migrate_tenant(tenant_id, "workspace", return_state=True)
    stack.langsmith.control.clear_faults()

    assert state.is_failed()
    assert get_services().store.read(tenant_id).key_id == old.key_id and current_key_works(
        tenant_id
    )
    assert get_services().store.describe(tenant_id).tags[TAG_ISOLATION] == "project"
    assert live_tool_keys(stack, tenant_id) == {old.key_id}  # the new key was deleted

    assert migrate_tenant(tenant_id, "workspace").outcome == "migrated"  # a rerun finishes it


def test_a_migration_stopped_half_way_is_finished_by_a_rerun(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    """Crash points reproduced by running the steps of `flows/migrate.py` up to there."""
    services = get_services()
    _onboard(tenant_id, "project")
    old = services.store.read(tenant_id)
    # Stopped after storing the new key: the rerun resumes it instead of minting another.
    target = migrate_steps.ensure_target(services, tenant_id)
    stored = migrate_steps.store_new_key(
        services, tenant_id, target, services.store.describe(tenant_id)
    )
    mints = len(minted_keys(stack, tenant_id))

    result = migrate_tenant(tenant_id, "workspace")

    assert result.outcome == "migrated" and result.key_id == stored.key_id
    assert len(minted_keys(stack, tenant_id)) == mints
    assert _dead(old.api_key, stack.langsmith.workspace_id)
    assert live_tool_keys(stack, tenant_id) == {stored.key_id}


def test_a_stored_migration_key_deleted_meanwhile_is_replaced_on_rerun(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    services = get_services()
    _onboard(tenant_id, "project")
    target = migrate_steps.ensure_target(services, tenant_id)
    stored = migrate_steps.store_new_key(
        services, tenant_id, target, services.store.describe(tenant_id)
    )
    target.home.delete(services.langsmith, stored.key_id)  # as reconcile does to an orphan

    result = migrate_tenant(tenant_id, "workspace")

    assert result.outcome == "migrated" and result.key_id != stored.key_id
    assert current_key_works(tenant_id)
    assert MIGRATING not in {
        label for labels in services.store.describe(tenant_id).versions.values() for label in labels
    }


def test_a_migration_stopped_after_the_promotion_revokes_the_old_key_on_rerun(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    services = get_services()
    _onboard(tenant_id, "project")
    old = services.store.read(tenant_id)
    target = migrate_steps.ensure_target(services, tenant_id)
    state = services.store.describe(tenant_id)
    new = migrate_steps.store_new_key(services, tenant_id, target, state)
    migrate_steps.promote_new_key(services, tenant_id, new, target, state)
    assert current_key_works(tenant_id) and not _dead(old.api_key, stack.langsmith.workspace_id)

    result = migrate_tenant(tenant_id, "workspace")

    assert (result.outcome, result.revoked_key_ids) == ("migrated", [old.key_id])
    assert _dead(old.api_key, stack.langsmith.workspace_id)
    assert_no_orphans(stack, tenant_id)


def test_cli_migrate_moves_the_tenant_and_list_shows_its_mode(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    _onboard(tenant_id, "project")
    runner = CliRunner()

    moved = runner.invoke(app, ["migrate", tenant_id, "--to", "workspace"], env={"COLUMNS": "250"})
    listing = runner.invoke(app, ["list"], env={"COLUMNS": "250"})

    assert moved.exit_code == 0, moved.output
    assert (
        "migrated" in moved.output and get_services().store.read(tenant_id).key_id in moved.output
    )
    line = next(line for line in listing.output.splitlines() if tenant_id in line)
    assert "workspace" in line.split() and "ok" in line


def test_cli_migrate_refuses_an_unknown_tenant_in_one_line(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    result = CliRunner().invoke(app, ["migrate", tenant_id, "--to", "workspace"])
    assert result.exit_code == 2
    assert tenant_id in result.output and len(result.output.strip().splitlines()) == 1


def test_bad_requests_fail_in_one_line_before_any_change(
    stack: LocalStack, tenant_id: str, org_admin: None
) -> None:
    _onboard(tenant_id, "project")
    with pytest.raises(BadInput, match="only `--to workspace` or `--to tagged`"):
        migrate_tenant(tenant_id, "project")
    with pytest.raises(BadInput, match="'project', 'workspace' or 'tagged'"):
        onboard_tenants([f"{tenant_id}-x"], None, "tenant")
    assert not get_services().store.exists(f"{tenant_id}-x")

    with pytest.MonkeyPatch.context() as env:
        env.delenv("TENANT_KEYS_LANGSMITH_ORG_ID")
        reset_services()
        with pytest.raises(BadInput, match="TENANT_KEYS_LANGSMITH_ORG_ID"):
            onboard_tenants([f"{tenant_id}-y"], None, "workspace")
        assert not get_services().store.exists(f"{tenant_id}-y")
    reset_services()


def test_an_org_key_without_a_workspace_gets_an_error_that_says_what_to_set(
    stack: LocalStack,
) -> None:
    org = LangSmithAdmin(
        stack.langsmith.url, SecretStr(stack.langsmith.org_admin_key), org_id=stack.langsmith.org_id
    )
    with pytest.raises(OrgKeyNeedsWorkspace, match="TENANT_KEYS_LANGSMITH_WORKSPACE_ID"):
        org.list_keys()
    org.close()
