"""Tagged isolation, run directly against the emulator's access policies: onboarding proves the
key confined before it stores anything, fails closed where LangSmith would not confine it (an
organization without ABAC, one that refuses policies, a canary that carries a tag), and
rotation, revoke, offboarding and migration follow the tenant's mode through `KeyHome`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import langsmith
import pytest
from pydantic import SecretStr

from devstack.stack import LocalStack
from tenant_keys import tagged
from tenant_keys.errors import BadInput, IsolationNotProven
from tenant_keys.isolation import probe_isolation
from tenant_keys.keys import KeyHome
from tenant_keys.layout import (
    TAG_ISOLATION,
    TAG_POLICY,
    TAG_PROJECT,
    TAG_ROLE,
    TAG_TAG_VALUE,
    TenantKeyRecord,
)
from tenant_keys.migration import check_migratable, migrate
from tenant_keys.offboarding import offboard
from tenant_keys.onboarding import onboard
from tenant_keys.revocation import request_from, revoke
from tenant_keys.rotation import rotate
from tenant_keys.runtime import TenantTracing
from tenant_keys.services import Services
from tests.core.conftest import ThreadLocks
from tests.invariants import assert_no_orphans, current_key_works, live_tool_keys, minted_keys


@pytest.fixture
def abac(backends: LocalStack) -> Iterator[None]:
    """Restores the emulator's ABAC settings after a test that changes them."""
    yield
    backends.langsmith.control.configure_abac(
        enabled=True, when_disabled="accept", project_list="filter", unmatched="rbac"
    )


def _access(services: Services, tenant_id: str) -> dict[str, list[str]]:
    """The tool's objects of the tenant at LangSmith, by kind."""
    found = tagged.list_tool_access(services.langsmith)
    return {
        "roles": [r.id for r in found.roles.get(tenant_id, [])],
        "policies": [p.id for p in found.policies.get(tenant_id, [])],
        "values": [v.id for v in found.values.get(tenant_id, [])],
    }


def _emulator_key(backends: LocalStack, key_id: str) -> dict[str, object]:
    return next(k for k in backends.langsmith.control.keys() if k["id"] == key_id)  # noqa: SIM118


def _reads(services: Services, record: TenantKeyRecord, project_id: str) -> tuple[str, str]:
    """What the record's key gets on the project and on its runs."""
    key, workspace = record.api_key, record.workspace_id
    return (
        services.langsmith.reads_project_as(key, project_id, workspace_id=workspace),
        services.langsmith.reads_runs_as(key, project_id, workspace_id=workspace),
    )


def _dead(services: Services, api_key: SecretStr) -> bool:
    return not services.langsmith.authenticates(api_key)


def _onboard(services: Services, tenant_id: str) -> TenantKeyRecord:
    result = onboard(services, tenant_id, isolation="tagged")
    assert (result.outcome, result.isolation) == ("created", "tagged")
    return services.store.read(tenant_id)


def test_onboarding_confines_the_key_to_its_tagged_project(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    a, b = f"{tenant_id}-a", f"{tenant_id}-b"
    record_a, record_b = _onboard(services, a), _onboard(services, b)

    tags = services.store.describe(a).tags
    home = KeyHome.of(tags)
    assert tags[TAG_ISOLATION] == "tagged" and tags[TAG_PROJECT] == record_a.project_id
    assert _access(services, a) == {
        "roles": [tags[TAG_ROLE]],
        "policies": [tags[TAG_POLICY]],
        "values": [tags[TAG_TAG_VALUE]],
    }
    # The key carries the tenant's role, which reads nothing of its own accord; the policy
    # attached to it grants reads of the project tagged with the tenant's id.
    assert _emulator_key(backends, record_a.key_id)["role"] == home.role_id
    found = tagged.list_tool_access(services.langsmith)
    [role] = found.roles[a]
    assert role.permissions == ["runs:create"]
    [policy] = found.policies[a]
    assert tagged.policy_matches(policy, a) and policy.role_ids == [home.role_id]
    [value] = found.values[a]
    assert found.tagged[value.id] == [record_a.project_id]
    # Its own project and runs: readable. Another tenant's, and the canary's: refused.
    canary = tagged.ensure_canary(services.langsmith)
    assert _reads(services, record_a, record_a.project_id) == ("readable", "readable")
    assert _reads(services, record_a, record_b.project_id) == ("refused", "refused")
    assert _reads(services, record_b, record_a.project_id) == ("refused", "refused")
    assert _reads(services, record_a, canary.id) == ("refused", "refused")
    assert record_a.workspace_id == backends.langsmith.workspace_id
    assert current_key_works(a) and live_tool_keys(backends, a) == {record_a.key_id}


def test_a_rerun_finds_everything_and_creates_nothing(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    _onboard(tagged_services, tenant_id)
    before = _access(tagged_services, tenant_id), len(minted_keys(backends, tenant_id))

    again = onboard(tagged_services, tenant_id, isolation="tagged")

    assert again.outcome == "exists"
    assert (_access(tagged_services, tenant_id), len(minted_keys(backends, tenant_id))) == before


def _fails_closed(
    backends: LocalStack, services: Services, tenant_id: str, reason: str
) -> IsolationNotProven:
    with pytest.raises(IsolationNotProven) as failed:
        onboard(services, tenant_id, isolation="tagged")
    message = str(failed.value)
    assert reason in message and len(message.splitlines()) == 1, message
    assert not services.store.exists(tenant_id), "no secret may claim an isolation not seen"
    assert live_tool_keys(backends, tenant_id) == set()
    return failed.value


def test_an_organization_without_abac_fails_closed_and_leaves_nothing(
    backends: LocalStack, tagged_services: Services, tenant_id: str, abac: None
) -> None:
    backends.langsmith.control.configure_abac(enabled=False)

    failed = _fails_closed(backends, tagged_services, tenant_id, "refused its own project")

    assert "ABAC" in str(failed) and "no secret was stored" in str(failed)
    assert len(minted_keys(backends, tenant_id)) == 1, "the key was minted, then deleted"
    assert _access(tagged_services, tenant_id) == {"roles": [], "policies": [], "values": []}


def test_an_organization_that_refuses_access_policies_fails_closed_before_any_key(
    backends: LocalStack, tagged_services: Services, tenant_id: str, abac: None
) -> None:
    backends.langsmith.control.configure_abac(enabled=False, when_disabled="refuse")

    _fails_closed(backends, tagged_services, tenant_id, "refused the access policy")

    backends.langsmith.control.configure_abac(when_disabled="accept")  # to list what is left
    assert minted_keys(backends, tenant_id) == []
    assert _access(tagged_services, tenant_id) == {"roles": [], "policies": [], "values": []}


def test_a_key_that_reads_the_canary_fails_closed(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    """The tenant's tag value exists (an earlier run made it) and someone put it on the canary:
    the new key reads the canary, so the probe refuses the onboarding."""
    langsmith = tagged_services.langsmith
    tag_key_id, value_id, _ = tagged.ensure_tag_value(langsmith, tenant_id)
    canary = tagged.ensure_canary(langsmith)
    tagging = langsmith.tag_project(value_id, canary.id)
    try:
        _fails_closed(backends, tagged_services, tenant_id, "read the canary project")
        # What the run created went (role, policy); the tag value it found stays.
        assert _access(tagged_services, tenant_id) == {
            "roles": [],
            "policies": [],
            "values": [value_id],
        }
    finally:
        langsmith.delete_tagging(tagging.id)
        langsmith.delete_tag_value(tag_key_id, value_id)


def test_no_tagged_key_is_ever_minted_without_its_role(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    # Without a role LangSmith would make it a Workspace Admin key.
    with pytest.raises(IsolationNotProven, match="names no role"):
        KeyHome(mode="tagged").create(
            tagged_services.langsmith, f"tenant-keys tenant={tenant_id} rotation=r", expires_at=None
        )
    assert minted_keys(backends, tenant_id) == []


def test_rotation_mints_with_the_role_and_proves_the_new_key(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    old = _onboard(services, tenant_id)
    role_id = KeyHome.of(services.store.describe(tenant_id).tags).role_id

    result = rotate(services, tenant_id, "r-tagged", retire_now=True)

    assert result.outcome == "rotated", result.error
    new = services.store.read(tenant_id)
    assert _emulator_key(backends, new.key_id)["role"] == role_id
    assert _dead(services, old.api_key)
    assert live_tool_keys(backends, tenant_id) == {new.key_id}
    canary = tagged.ensure_canary(services.langsmith)
    assert _reads(services, new, canary.id) == ("refused", "refused")


def test_a_rotation_whose_key_reads_everything_keeps_the_old_key(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    """Someone gave the tenant's role read permissions of its own: the new key would read every
    project, so the rotation's test step refuses to promote it."""
    services = tagged_services
    old = _onboard(services, tenant_id)
    role_id = KeyHome.of(services.store.describe(tenant_id).tags).role_id
    assert role_id
    services.langsmith.update_role(
        role_id,
        tagged.access_name(tenant_id),
        description=tagged.role_description(tenant_id),
        permissions=["runs:create", "projects:read", "runs:read"],
    )
    try:
        result = rotate(services, tenant_id, "r-reads-all", retire_now=True)
    finally:
        tagged.set_role_permissions(services.langsmith, tenant_id, role_id)

    assert result.outcome == "failed" and result.error
    assert "IsolationNotProven" in result.error and "read the project and runs" in result.error
    assert services.store.read(tenant_id).key_id == old.key_id
    assert live_tool_keys(backends, tenant_id) == {old.key_id}, "the new key was deleted"


def test_revoke_kills_first_and_replaces_with_a_confined_key(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    old = _onboard(services, tenant_id)
    role_id = KeyHome.of(services.store.describe(tenant_id).tags).role_id
    locks, held, release = ThreadLocks(), threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # a rotation in flight
        with locks.hold([tenant_id]):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)
    threading.Timer(1.0, release.set).start()
    request = request_from(
        services, tenant=tenant_id, scope="current", key_id=None, fingerprint=None, incident_id="i1"
    )
    outcome = revoke(services.urgent(), request, locks)
    holder.join(10)

    assert outcome.status == "revoked", outcome.error
    assert outcome.rejected_at and outcome.lock_acquired_at
    assert outcome.rejected_at < outcome.lock_acquired_at, "the key died before the lock was free"
    assert _dead(services, old.api_key)
    new = services.store.read(tenant_id)
    assert new.key_id == outcome.replacement_key_id
    assert _emulator_key(backends, new.key_id)["role"] == role_id
    assert current_key_works(tenant_id)
    assert_no_orphans(backends, tenant_id)


def test_offboarding_removes_role_policy_and_tag_and_keeps_the_project(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    record = _onboard(services, tenant_id)
    expected = _access(services, tenant_id)

    result = offboard(services, tenant_id)

    assert result.outcome == "offboarded" and result.revoked_key_ids == [record.key_id]
    assert sorted(result.removed_access) == sorted(i for ids in expected.values() for i in ids)
    assert _access(services, tenant_id) == {"roles": [], "policies": [], "values": []}
    assert (result.project, result.project_id) == ("kept", record.project_id)
    assert services.langsmith.project_tags(record.project_id) == [], "the project is untagged"
    assert _dead(services, record.api_key)
    assert offboard(services, tenant_id).outcome == "already-offboarded"


def test_offboarding_never_removes_another_tenants_access_named_in_an_edited_secret(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    victim, attacker = f"{tenant_id}-v", f"{tenant_id}-x"
    _onboard(services, victim)
    _onboard(services, attacker)
    theirs = services.store.describe(victim).tags
    services.store.set_tags(attacker, {k: theirs[k] for k in (TAG_ROLE, TAG_POLICY, TAG_TAG_VALUE)})
    victim_access = _access(services, victim)

    offboard(services, attacker)

    assert _access(services, victim) == victim_access
    assert current_key_works(victim)
    record = services.store.read(victim)
    assert _reads(services, record, record.project_id) == ("readable", "readable")


def test_migration_from_project_to_tagged(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    assert onboard(services, tenant_id, isolation="project").outcome == "created"
    old = services.store.read(tenant_id)
    canary = tagged.ensure_canary(services.langsmith)
    assert _reads(services, old, canary.id) == ("readable", "readable"), "project mode reads all"

    result = migrate(services, tenant_id, "tagged")

    assert result.outcome == "migrated" and result.revoked_key_ids == [old.key_id]
    new = services.store.read(tenant_id)
    assert (new.project_id, new.workspace_id) == (old.project_id, old.workspace_id)
    assert KeyHome.of(services.store.describe(tenant_id).tags).mode == "tagged"
    assert _reads(services, new, new.project_id) == ("readable", "readable")
    assert _reads(services, new, canary.id) == ("refused", "refused")
    assert _dead(services, old.api_key) and live_tool_keys(backends, tenant_id) == {new.key_id}
    again = migrate(services, tenant_id, "tagged")
    assert again.outcome == "already-migrated" and current_key_works(tenant_id)
    # A rotation in the new mode.
    assert rotate(services, tenant_id, "r-after", retire_now=True).outcome == "rotated"


def test_a_migration_to_tagged_that_fails_its_probe_leaves_the_tenant_as_it_was(
    backends: LocalStack, tagged_services: Services, tenant_id: str, abac: None
) -> None:
    services = tagged_services
    onboard(services, tenant_id, isolation="project")
    old = services.store.read(tenant_id)
    backends.langsmith.control.configure_abac(enabled=False)

    with pytest.raises(IsolationNotProven, match="stays in project isolation"):
        migrate(services, tenant_id, "tagged")

    assert services.store.read(tenant_id).key_id == old.key_id and current_key_works(tenant_id)
    assert KeyHome.of(services.store.describe(tenant_id).tags).mode == "project"
    assert live_tool_keys(backends, tenant_id) == {old.key_id}
    assert _access(services, tenant_id) == {"roles": [], "policies": [], "values": []}


def test_only_a_project_tenant_migrates_to_tagged(
    tagged_services: Services, tenant_id: str
) -> None:
    _onboard(tagged_services, tenant_id)
    state = tagged_services.store.describe(tenant_id)
    check_migratable(state, "tagged")  # already there: the driver reports it
    with pytest.raises(BadInput, match="only a tenant in project isolation"):
        check_migratable(state, "workspace")
    with pytest.raises(BadInput, match="only `--to workspace` or `--to tagged`"):
        check_migratable(state, "project")


def test_check_isolation_probes_a_pair_and_a_tenant_against_the_canary(
    tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    a, b, p = f"{tenant_id}-a", f"{tenant_id}-b", f"{tenant_id}-p"
    _onboard(services, a)
    _onboard(services, b)
    assert onboard(services, p, isolation="project").outcome == "created"

    pair = probe_isolation(services, a, b)
    alone = probe_isolation(services, a, None)
    shared = probe_isolation(services, p, None)

    assert pair.own_reads_ok and pair.isolated, pair.markdown()
    assert [(c.project, c.runs, c.runs_seen) for c in pair.cross_reads] == [
        ("refused", "refused", 0),
        ("refused", "refused", 0),
    ]
    assert alone.isolated and [(c.reader, c.target) for c in alone.cross_reads] == [(a, "canary")]
    # A project-mode key reads the canary: the check says so.
    assert shared.own_reads_ok and not shared.isolated
    assert (shared.cross_reads[0].project, shared.cross_reads[0].runs) == ("readable", "readable")
    assert "NOT isolated" in shared.markdown()


def test_the_runtime_traces_a_tagged_tenant_into_its_own_project(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    """The role writes traces; the helper routes them to the tenant's own project only."""
    a, b = f"{tenant_id}-a", f"{tenant_id}-b"
    _onboard(tagged_services, a)
    _onboard(tagged_services, b)
    tracing = TenantTracing.from_settings(ttl_seconds=60.0)
    try:
        for tenant in (a, a, b):
            with tracing.context(tenant) as handle:
                assert handle is not None
                langsmith.traceable(name="request")(lambda: None)()
            handle.client.flush()
    finally:
        tracing.close()
    runs = {p["name"]: p["run_count"] for p in backends.langsmith.control.state()["projects"]}
    assert (runs[f"tenant-{a}"], runs[f"tenant-{b}"]) == (2, 1)
