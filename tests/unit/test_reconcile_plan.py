"""The reconcile plan, rule by rule: snapshots in, repairs out, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenant_keys.langsmith import ApiKeyInfo
from tenant_keys.models import key_description
from tenant_keys.reconcile_plan import (
    LOCAL_KINDS,
    OwnKey,
    Policy,
    Repair,
    TenantSnapshot,
    VersionInfo,
    liveness_from_list,
    own_keys,
    plan,
    plan_tenant,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = Policy(
    grace_seconds=0.0, expiring_within=timedelta(days=7), orphan_min_age=timedelta(minutes=10)
)
NEW = "reconcile-r20261127T120000Z"
OLD_ENOUGH = NOW - timedelta(hours=1)


def version(name: str, *, issued: datetime = NOW - timedelta(days=1), expires_in_days: float = 29):
    return VersionInfo(
        version_id=f"v-{name}",
        key_id=f"k-{name}",
        rotation_id=f"r-{name}",
        issued_at=issued,
        expires_at=NOW + timedelta(days=expires_in_days),
    )


def active(**versions: VersionInfo) -> TenantSnapshot:
    return TenantSnapshot(tenant_id="acme", status="active", **versions)


def key(name: str, tenant: str = "acme", created: datetime = OLD_ENOUGH) -> OwnKey:
    return OwnKey(
        key_id=f"k-{name}",
        short_key=f"lsv2_sk_...{name[:4]}",
        tenant_id=tenant,
        rotation_id=f"r-{name}",
        created_at=created,
    )


def kinds(repairs: list[Repair]) -> list[str]:
    return [r.kind for r in repairs]


def run(snapshot: TenantSnapshot, live: set[str], keys: list[OwnKey] | None = None) -> list[Repair]:
    return plan_tenant(
        snapshot,
        {k: True for k in live},
        keys or [],
        now=NOW,
        policy=POLICY,
        rotation_id=NEW,
    )


def test_a_healthy_tenant_needs_nothing() -> None:
    assert run(active(current=version("cur")), {"k-cur"}, [key("cur")]) == []


def test_retire_pending_past_grace_is_retired() -> None:
    snapshot = active(current=version("cur"), retire_pending=version("old"))
    [repair] = run(snapshot, {"k-cur", "k-old"}, [key("cur"), key("old")])
    assert (repair.kind, repair.key_id, repair.version_id) == ("retire", "k-old", "v-old")


def test_retire_pending_inside_grace_waits() -> None:
    policy = POLICY.model_copy(update={"grace_seconds": 3600.0})
    snapshot = active(
        current=version("cur", issued=NOW - timedelta(minutes=5)), retire_pending=version("old")
    )
    live = {"k-cur": True, "k-old": True}
    repairs = plan_tenant(snapshot, live, [key("old")], now=NOW, policy=policy, rotation_id=NEW)
    assert repairs == [], "the old key is still in its grace window and is no orphan"


def test_live_pending_resumes_its_own_rotation() -> None:
    snapshot = active(current=version("cur"), pending=version("new"))
    [repair] = run(snapshot, {"k-cur", "k-new"}, [key("cur"), key("new")])
    assert (repair.kind, repair.rotation_id, repair.key_id) == ("resume-rotation", "r-new", "k-new")


def test_dead_pending_is_discarded_and_nothing_else_happens() -> None:
    snapshot = active(current=version("cur"), pending=version("new"))
    [repair] = run(snapshot, {"k-cur"}, [key("cur")])
    assert (repair.kind, repair.version_id) == ("discard-pending", "v-new")


def test_a_rotation_stopped_after_its_promotion_has_its_old_key_retired() -> None:
    # AWSCURRENT on the new version (AWSPENDING too: the rotation's "finished"), AWSPREVIOUS on
    # the old one, whose key LangSmith still lists: its retire never ran.
    new = version("new").model_copy(update={"previous_key_id": "k-old"})
    snapshot = active(current=new, previous=version("old"))
    [repair] = run(snapshot, {"k-new", "k-old"}, [key("new"), key("old")])
    assert (repair.kind, repair.key_id, repair.version_id) == ("retire", "k-old", None)


def test_an_old_key_already_gone_is_nothing_to_do() -> None:
    new = version("new").model_copy(update={"previous_key_id": "k-old"})
    assert run(active(current=new, previous=version("old")), {"k-new"}, [key("new")]) == []


def test_dead_current_key_is_drift_replaced_with_a_new_rotation() -> None:
    [repair] = run(active(current=version("cur")), set(), [])
    assert repair.kind == "replace-dead-key" and repair.rotation_id == NEW
    assert repair.reason.startswith("DRIFT")


def test_dead_current_with_live_pending_resumes_instead_of_minting() -> None:
    snapshot = active(current=version("cur"), pending=version("new"))
    assert kinds(run(snapshot, {"k-new"}, [key("new")])) == ["resume-rotation"]


def test_dead_current_with_dead_pending_on_it_discards_then_replaces() -> None:
    cur = version("cur")
    repairs = run(active(current=cur, pending=cur), set(), [])
    assert kinds(repairs) == ["discard-pending", "replace-dead-key"]


@pytest.mark.parametrize(("days", "rotates"), [(3.0, True), (7.0, True), (8.0, False)])
def test_keys_close_to_expiry_are_rotated_early(days: float, rotates: bool) -> None:
    repairs = run(active(current=version("cur", expires_in_days=days)), {"k-cur"}, [key("cur")])
    assert kinds(repairs) == (["rotate-expiring"] if rotates else [])


def test_unreferenced_own_keys_are_orphans_and_referenced_ones_are_not() -> None:
    snapshot = active(current=version("cur"), retire_pending=version("old"))
    policy = POLICY.model_copy(update={"grace_seconds": 10**9})  # keep the retire out of the way
    repairs = plan_tenant(
        snapshot,
        {"k-cur": True, "k-old": True, "k-lost": True},
        [key("cur"), key("old"), key("lost")],
        now=NOW,
        policy=policy,
        rotation_id=NEW,
    )
    assert [(r.kind, r.key_id) for r in repairs] == [("delete-orphan", "k-lost")]


def test_young_orphans_are_spared_an_onboarding_in_flight() -> None:
    young = key("young", created=NOW - timedelta(seconds=30))
    assert run(active(current=version("cur")), {"k-cur"}, [key("cur"), young]) == []


def test_a_tenant_without_a_secret_has_only_orphans() -> None:
    snapshot = TenantSnapshot(tenant_id="acme", status="absent")
    repairs = run(snapshot, set(), [key("a"), key("b"), key("c", created=NOW)])
    assert [(r.kind, r.key_id) for r in repairs] == [
        ("delete-orphan", "k-a"),
        ("delete-orphan", "k-b"),
    ]


def test_an_offboarded_tenant_keys_are_orphans() -> None:
    snapshot = TenantSnapshot(tenant_id="acme", status="scheduled-for-deletion")
    assert kinds(run(snapshot, set(), [key("a")])) == ["delete-orphan"]


def test_an_unfinished_offboarding_is_finished_and_nothing_else() -> None:
    snapshot = TenantSnapshot(tenant_id="acme", status="offboarding")
    assert kinds(run(snapshot, set(), [key("a")])) == ["finish-offboarding"]


def test_an_unreadable_secret_needs_attention_and_its_keys_are_spared() -> None:
    snapshot = TenantSnapshot(tenant_id="acme", status="unreadable", problem="bad JSON")
    [repair] = run(snapshot, set(), [key("a")])
    assert (repair.kind, repair.reason) == ("attention", "bad JSON")


def test_local_repairs_come_before_the_protocol_run() -> None:
    cur = version("cur")
    snapshot = active(current=cur, pending=cur, retire_pending=version("old"))
    repairs = run(snapshot, {"k-old"}, [key("old"), key("lost")])
    local = [r.kind for r in repairs if r.kind in LOCAL_KINDS]
    assert kinds(repairs) == [*local, "replace-dead-key"]
    assert local == ["discard-pending", "retire", "delete-orphan"]


def test_foreign_keys_never_enter_the_plan() -> None:
    listed = [
        ApiKeyInfo(id="k-1", short_key="s1", description=key_description("acme", "onboard")),
        ApiKeyInfo(id="k-2", short_key="s2", description="Default API key"),
        ApiKeyInfo(id="k-3", short_key="s3", description="tenant-keys tenant=acme"),
        ApiKeyInfo(id="k-4", short_key="s4", description="tenant-keys tenant=-bad- rotation=r"),
        ApiKeyInfo(id="k-5", short_key="s5", description="my tenant-keys tenant=acme rotation=r"),
    ]
    mine = own_keys(listed)
    assert [(k.key_id, k.tenant_id, k.rotation_id) for k in mine] == [("k-1", "acme", "onboard")]


def test_listed_keys_are_live_until_they_expire() -> None:
    keys = [
        key("a"),
        key("b").model_copy(update={"expires_at": NOW - timedelta(seconds=1)}),
        key("c").model_copy(update={"expires_at": NOW + timedelta(days=1)}),
    ]
    assert liveness_from_list(keys, NOW) == {"k-a": True, "k-b": False, "k-c": True}


def test_plan_leaves_keys_of_unsurveyed_tenants_alone() -> None:
    surveyed = TenantSnapshot(tenant_id="acme", status="absent")
    repairs = plan(
        [surveyed],
        [key("a"), key("z", tenant="other")],
        {},
        now=NOW,
        policy=POLICY,
        rotation_id=NEW,
    )
    assert [(r.tenant_id, r.key_id) for r in repairs] == [("acme", "k-a")]


def test_a_key_or_project_named_by_two_secrets_is_a_conflict_and_left_alone() -> None:
    shared = _version("v1", "k-shared")
    a = TenantSnapshot(tenant_id="a", status="active", current=shared)
    b = TenantSnapshot(tenant_id="b", status="active", current=shared)
    c = TenantSnapshot(tenant_id="c", status="active", current=_version("v3", "k-c", "p-1"))
    d = TenantSnapshot(tenant_id="d", status="active", current=_version("v4", "k-d", "p-1"))
    e = TenantSnapshot(tenant_id="e", status="active", current=_version("v5", "k-e", "p-e"))

    repairs = plan([a, b, c, d, e], [], {}, now=NOW, policy=POLICY, rotation_id="r")

    by_tenant = {r.tenant_id: r for r in repairs}
    assert {t for t, r in by_tenant.items() if r.kind == "attention"} == {"a", "b", "c", "d"}
    assert "key k-shared is also named by the secret of b" in by_tenant["a"].reason
    assert "project p-1 is also named by the secret of c" in by_tenant["d"].reason
    assert by_tenant["e"].kind == "replace-dead-key", "an unrelated tenant is planned as ever"


def _version(version_id: str, key_id: str, project_id: str | None = None) -> VersionInfo:
    return VersionInfo(
        version_id=version_id,
        key_id=key_id,
        rotation_id="r0",
        issued_at=NOW,
        project_id=project_id or f"p-{key_id}",
    )
