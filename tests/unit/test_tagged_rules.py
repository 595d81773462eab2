"""Tagged isolation's plain rules: what proves an object the tool's, when a policy matches its
tenant, what the probe's answers mean, and the reconcile plan's drift and orphan rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenant_keys import tagged
from tenant_keys.langsmith import AccessPolicy, Role
from tenant_keys.reconcile_plan import (
    AccessFound,
    AccessIds,
    OwnKey,
    Policy,
    PolicyFound,
    RoleFound,
    TenantSnapshot,
    VersionInfo,
    plan_tenant,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(
    grace_seconds=0.0, expiring_within=timedelta(days=7), orphan_min_age=timedelta(minutes=10)
)
OLD = NOW - timedelta(hours=1)


def _policy(tenant: str, **changes: object) -> AccessPolicy:
    body = {
        "id": "p1",
        "name": tagged.access_name(tenant),
        "description": tagged.policy_description(tenant),
        "effect": "allow",
        "condition_groups": tagged.policy_groups(tenant),
        "role_ids": ["r1"],
    }
    return AccessPolicy.model_validate(body | changes)


def test_a_policy_matches_only_its_own_tenant_and_exactly_its_reads() -> None:
    assert tagged.policy_matches(_policy("acme"), "acme")
    assert not tagged.policy_matches(_policy("acme"), "globex")
    assert not tagged.policy_matches(_policy("acme", effect="deny"), "acme")
    wider = tagged.policy_groups("acme")
    wider[0]["conditions"][0]["operator"] = "matches"
    wider[0]["conditions"][0]["attribute_value"] = "*"
    assert not tagged.policy_matches(_policy("acme", condition_groups=wider), "acme")
    more = [
        *tagged.policy_groups("acme"),
        {**tagged.policy_groups("acme")[0], "permission": "runs:delete"},
    ]
    assert not tagged.policy_matches(_policy("acme", condition_groups=more), "acme")
    doubled = [*tagged.policy_groups("acme"), tagged.policy_groups("acme")[0]]
    assert not tagged.policy_matches(_policy("acme", condition_groups=doubled), "acme")
    assert tagged.tenant_of(tagged.access_name("-not-a-tenant")) is None


def test_only_the_tools_name_and_marker_prove_a_role_or_policy_its_own() -> None:
    role = Role(
        id="r1",
        name="CUSTOM_1",
        display_name=tagged.access_name("acme"),
        description=tagged.role_description("acme"),
        organization_id="org",
        permissions=["runs:create"],
    )
    assert tagged.role_tenant(role) == "acme" and tagged.role_matches(role)
    assert tagged.role_tenant(role.model_copy(update={"description": "mine"})) is None
    assert tagged.role_tenant(role.model_copy(update={"organization_id": None})) is None
    assert tagged.role_tenant(role.model_copy(update={"display_name": "acme"})) is None
    assert not tagged.role_matches(role.model_copy(update={"permissions": ["projects:read"]}))
    assert tagged.policy_tenant(_policy("acme")) == "acme"
    assert tagged.policy_tenant(_policy("acme", description="someone's")) is None


@pytest.mark.parametrize(
    ("own", "project", "runs", "says"),
    [
        ("readable", "refused", "refused", None),
        ("refused", "refused", "refused", "refused its own project"),
        ("readable", "readable", "readable", "read the project and runs of"),
        ("readable", "refused", "readable", "read the runs of"),
        ("refused", "readable", "refused", "read the project of"),
        ("unauthenticated", "refused", "refused", "not accepted"),
    ],
)
def test_the_probe_says_in_one_line_why_a_key_is_not_confined(
    own: str, project: str, runs: str, says: str | None
) -> None:
    probe = tagged.Probe.model_validate(
        {"target": "the canary", "own_project": own, "other_project": project, "other_runs": runs}
    )
    failure = probe.failure()
    assert probe.confined is (says is None)
    if says is not None:
        assert failure is not None and says in failure and "\n" not in failure


# -- the reconcile plan ---------------------------------------------------------------------------


def _tagged_tenant(**ids: str | None) -> TenantSnapshot:
    current = VersionInfo(
        version_id="v1",
        key_id="k1",
        rotation_id="onboard",
        issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=20),
        project_id="proj",
    )
    access = AccessIds(
        **({"project_id": "proj", "tag_value_id": "val", "role_id": "r1", "policy_id": "p1"} | ids)
    )
    return TenantSnapshot(tenant_id="acme", status="active", current=current, access=access)


def _sound(**changes: object) -> AccessFound:
    found = AccessFound(
        tenant_id="acme",
        values={"val": ("proj",)},
        roles=(RoleFound(role_id="r1", permissions_ok=True),),
        policies=(PolicyFound(policy_id="p1", matches=True, role_ids=("r1",), created_at=OLD),),
    )
    return found.model_copy(update=changes)


def _plan(snapshot: TenantSnapshot, found: AccessFound | None, keys: list[OwnKey] | None = None):
    return plan_tenant(
        snapshot, {"k1": True}, keys or [], now=NOW, policy=POLICY, rotation_id="rc", access=found
    )


def test_a_sound_tagged_tenant_needs_nothing() -> None:
    assert _plan(_tagged_tenant(), _sound()) == []
    assert _plan(_tagged_tenant(), None) == [], "not listed: nothing is known, nothing planned"


@pytest.mark.parametrize(
    ("found", "says"),
    [
        (_sound(values={}), "tag value val is missing"),
        (_sound(values={"val": ()}), "project proj lost its tag"),
        (_sound(roles=()), "role r1 is missing"),
        (_sound(roles=(RoleFound(role_id="r1", permissions_ok=False),)), "other permissions"),
        (_sound(policies=()), "access policy p1 is missing"),
        (
            _sound(policies=(PolicyFound(policy_id="p1", matches=False, role_ids=("r1",)),)),
            "p1 no longer matches",
        ),
        (
            _sound(policies=(PolicyFound(policy_id="p1", matches=True, role_ids=()),)),
            "not attached to its role",
        ),
        (
            _sound(
                roles=(
                    RoleFound(role_id="r1", permissions_ok=True),
                    RoleFound(role_id="r2", permissions_ok=True),
                )
            ),
            "a second role r2",
        ),
    ],
)
def test_drift_is_one_loud_repair_that_names_it(found: AccessFound, says: str) -> None:
    [repair] = _plan(_tagged_tenant(), found)
    assert repair.kind == "repair-access" and repair.rotation_id == "rc"
    assert repair.reason.startswith("DRIFT") and says in repair.reason


def test_a_policy_the_tool_did_not_make_on_the_role_is_for_a_human() -> None:
    kinds = [r.kind for r in _plan(_tagged_tenant(), _sound(foreign_policies=("x",)))]
    assert kinds == ["attention"]


def test_a_tenant_in_another_mode_is_never_checked_for_tagged_objects() -> None:
    snapshot = _tagged_tenant().model_copy(update={"access": None})
    assert _plan(snapshot, _sound(roles=())) == []


def test_orphan_access_of_a_tenant_without_a_secret_goes_once_old_enough() -> None:
    gone = TenantSnapshot(tenant_id="acme", status="absent")
    assert [r.kind for r in _plan(gone, _sound())] == ["remove-access"]
    young = _sound(policies=(PolicyFound(policy_id="p1", matches=True, created_at=NOW),))
    assert _plan(gone, young) == [], "an onboarding may be making them"
    in_flight = OwnKey(
        key_id="k9", short_key="s", tenant_id="acme", rotation_id="onboard", created_at=NOW
    )
    assert _plan(gone, _sound(), [in_flight]) == []
    assert _plan(gone, AccessFound(tenant_id="acme")) == []
