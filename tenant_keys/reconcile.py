"""Reconcile: finish what failures left half done.

1. **survey**, reads only and no lock: the tool's keys at LangSmith (one list call per key
   kind) and every tenant's secret (concurrent reads). The tenants are those with a secret
   under the prefix plus those a key's description names (ListSecrets lags; a key does not).
2. **plan**, pure (`tenant_keys.reconcile_plan`): the repairs, from the listing.
3. **repair** one tenant, under its lock: read the secret again, ask LangSmith whether each
   key the secret holds still authenticates (the ground truth, not the listing of step 1,
   which a rotation may have overtaken), plan again from that, and do the local repairs
   (discard a dead AWSPENDING, retire, delete orphans). Then, under the lock again, the one
   protocol repair (resume a rotation, replace a dead key, rotate an expiring one, finish an
   offboarding).

Tagged isolation adds the tool's roles, access policies and tag values to the survey (four
listing calls): a tenant whose objects drifted is repaired under its lock and, if the probe
then does not see its key confined, rotated; those of a tenant without a secret are removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, SerializeAsAny

from tenant_keys import tagged
from tenant_keys.errors import (
    BadInput,
    CorruptSecret,
    Forbidden,
    IsolationNotProven,
    KeyTestFailed,
    SecretStoreError,
    TenantNotFound,
    error_text,
)
from tenant_keys.events import RepairEvent, RetireOverdueEvent, TenantEvent
from tenant_keys.keys import KeyHome, key_works, keys_by_mode, tagged_home
from tenant_keys.layout import (
    CURRENT,
    PENDING,
    PREVIOUS,
    RETIRE_PENDING,
    TAG_OFFBOARDING,
    TAG_PROJECT,
    SecretState,
)
from tenant_keys.locks import TenantLocks
from tenant_keys.models import utcnow
from tenant_keys.offboarding import offboard
from tenant_keys.reconcile_plan import (
    LOCAL_KINDS,
    PROTOCOL_KINDS,
    AccessFound,
    AccessIds,
    OwnKey,
    Policy,
    PolicyFound,
    Repair,
    RepairKind,
    RoleFound,
    TenantSnapshot,
    VersionInfo,
    liveness_from_list,
    own_keys,
    plan,
    plan_tenant,
)
from tenant_keys.rotation import (
    RotationResult,
    discard_pending_key,
    retire_marked_key,
    retire_previous_key,
    rotate,
)
from tenant_keys.secret_store import SecretStore
from tenant_keys.services import Services
from tenant_keys.settings import Settings

RepairOutcome = Literal["planned", "done", "already-done", "waiting", "failed", "needs-attention"]
DEFAULT_EXPIRING_WITHIN_DAYS = 7.0
# Older than any onboarding in flight (mint → store takes about a second), younger than an hour.
DEFAULT_ORPHAN_MIN_AGE_SECONDS = 600.0
# A key still waiting to be retired a day after its rotation means retires keep failing.
RETIRE_OVERDUE_AFTER = timedelta(days=1)


class RepairRow(BaseModel):
    """One repair, planned or done: ids only, never a key."""

    tenant_id: str
    kind: RepairKind
    outcome: RepairOutcome
    key_id: str | None = None
    rotation_id: str | None = None
    new_key_id: str | None = None
    reason: str = ""
    error: str | None = None
    # What the protocol behind the repair reported (a rotation's, an offboarding's).
    events: list[SerializeAsAny[TenantEvent]] = Field(default_factory=list, exclude=True)

    def event(self) -> RepairEvent:
        return RepairEvent(
            tenant_id=self.tenant_id,
            kind=self.kind,
            outcome=self.outcome,
            key_id=self.key_id,
            rotation_id=self.rotation_id,
            new_key_id=self.new_key_id,
            error=self.error,
        )


def make_policy(
    settings: Settings, expiring_within_days: float, orphan_min_age_seconds: float
) -> Policy:
    """The thresholds, checked before any side effect."""
    if not 0 <= expiring_within_days < settings.key_lifetime_days:
        raise BadInput(
            f"expiring_within_days={expiring_within_days} is out of range: give 0 or more and "
            f"less than the key lifetime ({settings.key_lifetime_days} days), or every key would "
            "rotate on every run"
        )
    if orphan_min_age_seconds < 0:
        raise BadInput("orphan_min_age_seconds must be 0 or more")
    return Policy(
        grace_seconds=settings.grace_seconds,
        expiring_within=timedelta(days=expiring_within_days),
        orphan_min_age=timedelta(seconds=orphan_min_age_seconds),
    )


# -- 1. survey -----------------------------------------------------------------------------------


def list_own_keys(services: Services) -> list[OwnKey]:
    """Every key the tool minted: workspace keys of the shared workspace and org service keys
    of workspace-mode tenants (a call each); other keys are dropped here."""
    return [key for mode, keys in keys_by_mode(services).items() for key in own_keys(keys, mode)]


def snapshot_tenant(store: SecretStore, tenant_id: str) -> TenantSnapshot:
    """The tenant's secret as reconcile sees it. Never raises for a tenant-level problem: an
    unreadable secret is a snapshot with status "unreadable" and the problem in one line."""
    try:
        state = store.describe(tenant_id)
    except TenantNotFound:
        return TenantSnapshot(tenant_id=tenant_id, status="absent")
    except SecretStoreError as exc:
        return TenantSnapshot(tenant_id=tenant_id, status="unreadable", problem=str(exc))
    if state.scheduled_for_deletion:
        return TenantSnapshot(tenant_id=tenant_id, status="scheduled-for-deletion")
    if TAG_OFFBOARDING in state.tags:
        return TenantSnapshot(tenant_id=tenant_id, status="offboarding")
    try:
        unfinished = state.version_with(PENDING) != state.version_with(CURRENT)
        current = _version(store, tenant_id, state, CURRENT)
        return TenantSnapshot(
            tenant_id=tenant_id,
            status="active",
            current=current,
            pending=_version(store, tenant_id, state, PENDING) if unfinished else None,
            previous=_version(store, tenant_id, state, PREVIOUS),
            retire_pending=_version(store, tenant_id, state, RETIRE_PENDING),
            access=_access_ids(state, current),
        )
    except (CorruptSecret, SecretStoreError, TenantNotFound) as exc:
        # TenantNotFound here: a label on a version without a value (not written by this tool).
        return TenantSnapshot(tenant_id=tenant_id, status="unreadable", problem=str(exc))


def _access_ids(state: SecretState, current: VersionInfo | None) -> AccessIds | None:
    home = KeyHome.of(state.tags)
    if home.mode != "tagged":
        return None
    return AccessIds(
        project_id=state.tags.get(TAG_PROJECT) or (current.project_id if current else None),
        tag_value_id=home.tag_value_id,
        role_id=home.role_id,
        policy_id=home.policy_id,
    )


def list_access(services: Services) -> dict[str, AccessFound] | None:
    """The tool's objects of tagged isolation by tenant, or None when they cannot be listed (no
    org id, or an admin key that may not read roles and policies: then no tenant can be in
    tagged isolation)."""
    if not services.settings.langsmith_org_id:
        return None
    try:
        found = tagged.list_tool_access(services.langsmith)
    except Forbidden:
        return None
    return access_by_tenant(found)


def access_by_tenant(found: tagged.ToolAccess) -> dict[str, AccessFound]:
    by_tenant: dict[str, AccessFound] = {}
    for tenant in sorted(found.tenants):
        roles = found.roles.get(tenant, [])
        policies = found.policies.get(tenant, [])
        own = {p.id for p in policies}
        foreign = {
            policy_id
            for role in roles
            for policy_id in found.policies_on(role.id)
            if policy_id not in own
        }
        by_tenant[tenant] = AccessFound(
            tenant_id=tenant,
            values={v.id: tuple(found.tagged.get(v.id, [])) for v in found.values.get(tenant, [])},
            roles=tuple(
                RoleFound(role_id=r.id, permissions_ok=tagged.role_matches(r)) for r in roles
            ),
            policies=tuple(
                PolicyFound(
                    policy_id=p.id,
                    matches=tagged.policy_matches(p, tenant),
                    role_ids=tuple(p.role_ids),
                    created_at=_timestamp(p.created_at),
                )
                for p in policies
            ),
            foreign_policies=tuple(sorted(foreign)),
        )
    return by_tenant


def _timestamp(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def snapshot_tenants(
    store: SecretStore, tenant_ids: Iterable[str], *, workers: int
) -> list[TenantSnapshot]:
    """Snapshots of many tenants, read concurrently (reads are cheap and plentiful: 10,000/s)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ids)))) as pool:
        return list(pool.map(lambda t: snapshot_tenant(store, t), ids))


def overdue_retires(
    snapshots: Iterable[TenantSnapshot], live: Mapping[str, bool], now: datetime
) -> list[TenantEvent]:
    """An event per tenant whose old key has waited longer than RETIRE_OVERDUE_AFTER to be
    retired (the key its current key replaced, still listed; or a RETIRE_PENDING version's).
    The wait counts from the current key's issue: the rotation that minted it is the one that
    set the old key aside."""
    events: list[TenantEvent] = []
    for snapshot in snapshots:
        current = snapshot.current
        if current is None:
            continue
        replaced = current.previous_key_id
        if replaced is not None and replaced != current.key_id and live.get(replaced, False):
            old = replaced
        elif snapshot.retire_pending is not None:
            old = snapshot.retire_pending.key_id
        else:
            continue
        waiting = now - current.issued_at
        if waiting > RETIRE_OVERDUE_AFTER:
            events.append(
                RetireOverdueEvent(
                    tenant_id=snapshot.tenant_id,
                    key_id=old,
                    rotation_id=current.rotation_id,
                    waiting_hours=round(waiting.total_seconds() / 3600, 1),
                )
            )
    return events


def probe_liveness(services: Services, snapshot: TenantSnapshot) -> dict[str, bool]:
    """Which of the snapshot's keys authenticate right now: the ground truth, asked with each
    key itself (read from its version)."""
    labelled = {
        CURRENT: snapshot.current,
        PENDING: snapshot.pending,
        RETIRE_PENDING: snapshot.retire_pending,
        PREVIOUS: snapshot.previous,
    }
    live: dict[str, bool] = {}
    for label, version in labelled.items():
        if version is None or version.key_id in live:
            continue
        record = services.store.read(snapshot.tenant_id, stage=label, version_id=version.version_id)
        live[version.key_id] = key_works(services.langsmith, record)
    return live


def _version(
    store: SecretStore, tenant_id: str, state: SecretState, label: str
) -> VersionInfo | None:
    version = state.version_with(label)
    if version is None:
        return None
    record = store.read(tenant_id, stage=label, version_id=version)
    return VersionInfo(
        version_id=version,
        key_id=record.key_id,
        rotation_id=record.rotation_id,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        project_id=record.project_id,
        previous_key_id=record.previous_key_id,
    )


class Survey(BaseModel):
    """Steps 1-2 for the tenants surveyed: what reconcile saw, and what it would do."""

    rotation_id: str
    keys: list[OwnKey]
    snapshots: list[TenantSnapshot]
    repairs: list[Repair]
    events: list[SerializeAsAny[TenantEvent]] = Field(default_factory=list, exclude=True)

    def keys_of(self, tenant_id: str) -> list[OwnKey]:
        return [k for k in self.keys if k.tenant_id == tenant_id]

    def tenants_to_repair(self) -> list[str]:
        """Tenants with a repair to do, in the plan's order ("attention" is for a human)."""
        return list(dict.fromkeys(r.tenant_id for r in self.repairs if r.kind != "attention"))

    def lockable(self, tenant_ids: Iterable[str]) -> list[str]:
        """Those of the tenants whose repair takes their lock (they have a live secret)."""
        status = {s.tenant_id: s.status for s in self.snapshots}
        return [t for t in tenant_ids if status.get(t) in ("active", "offboarding")]


def survey(services: Services, named: list[str] | None, policy: Policy, rotation_id: str) -> Survey:
    """Steps 1-2, reads only: every tenant (or the named ones) and the tool's keys, the plan."""
    now = utcnow()
    keys = list_own_keys(services)
    access = list_access(services)
    if named is not None:
        keys = [k for k in keys if k.tenant_id in named]
        tenant_ids = set(named)
    else:
        tenant_ids = set(services.store.iter_tenants()) | {k.tenant_id for k in keys}
        tenant_ids |= set(access or {})
    snapshots = snapshot_tenants(
        services.store, tenant_ids, workers=services.settings.max_concurrency
    )
    live = liveness_from_list(keys, now)
    repairs = plan(
        snapshots, keys, live, now=now, policy=policy, rotation_id=rotation_id, access=access
    )
    return Survey(
        rotation_id=rotation_id,
        keys=keys,
        snapshots=snapshots,
        repairs=repairs,
        events=overdue_retires(snapshots, live, now),
    )


class ReconcileReport(BaseModel):
    applied: bool
    rotation_id: str
    tenants_surveyed: int
    rows: list[RepairRow]

    @property
    def failed(self) -> bool:
        """An applied sweep fails if a repair failed or a tenant needs a human."""
        return self.applied and any(r.outcome in ("failed", "needs-attention") for r in self.rows)


def planned(found: Survey) -> ReconcileReport:
    """A dry run's report: the plan, nothing done."""
    rows = [
        row(r, "needs-attention" if r.kind == "attention" else "planned") for r in found.repairs
    ]
    return ReconcileReport(
        applied=False,
        rotation_id=found.rotation_id,
        tenants_surveyed=len(found.snapshots),
        rows=rows,
    )


def reconcile(
    services: Services,
    named: list[str] | None,
    *,
    apply: bool,
    policy: Policy,
    rotation_id: str,
    locks: TenantLocks,
) -> ReconcileReport:
    """The whole sweep in this process, one tenant after another (the flow fans the repairs
    out as tasks instead)."""
    found = survey(services, named, policy, rotation_id)
    if not apply:
        return planned(found)
    rows = [row(r, "needs-attention") for r in found.repairs if r.kind == "attention"]
    for tenant_id in found.tenants_to_repair():
        rows += repair(services, tenant_id, found.keys_of(tenant_id), policy, rotation_id, locks)
    return ReconcileReport(
        applied=True, rotation_id=rotation_id, tenants_surveyed=len(found.snapshots), rows=rows
    )


# -- 3. repair -----------------------------------------------------------------------------------


def repair(
    services: Services,
    tenant_id: str,
    keys: list[OwnKey],
    policy: Policy,
    rotation_id: str,
    locks: TenantLocks,
) -> list[RepairRow]:
    """Plan the tenant again from fresh facts and carry the repairs out (see the module doc).
    One repair failing never stops the tenant's others: each is its own row."""
    snapshot = snapshot_tenant(services.store, tenant_id)
    if snapshot.status == "active":
        with locks.hold([tenant_id]):
            snapshot = snapshot_tenant(services.store, tenant_id)  # no rotation moves labels now
            repairs = _replan(services, snapshot, keys, policy, rotation_id)
            rows = [_local(services, r, policy, keys) for r in repairs if r.kind in LOCAL_KINDS]
    else:  # no live secret: nothing to lock against; young keys are spared by the orphan age
        repairs = _replan(services, snapshot, keys, policy, rotation_id)
        rows = [_local(services, r, policy, keys) for r in repairs if r.kind in LOCAL_KINDS]
    for protocol_repair in (r for r in repairs if r.kind in PROTOCOL_KINDS):
        with locks.hold([tenant_id]):
            rows.append(_protocol(services, protocol_repair, policy))
    rows += [row(r, "needs-attention") for r in repairs if r.kind == "attention"]
    return rows


def _replan(
    services: Services,
    snapshot: TenantSnapshot,
    keys: list[OwnKey],
    policy: Policy,
    rotation_id: str,
) -> list[Repair]:
    """Plan again from the truth: each key the secret holds asked with itself; a key it only
    names (the one its current key replaced) from LangSmith's listing."""
    now = utcnow()
    live = liveness_from_list(keys, now)
    if snapshot.status == "active":
        live |= probe_liveness(services, snapshot)
    found = None
    if snapshot.access is not None or snapshot.status in ("absent", "scheduled-for-deletion"):
        access = list_access(services)
        tenant = snapshot.tenant_id
        found = None if access is None else access.get(tenant, AccessFound(tenant_id=tenant))
    return plan_tenant(
        snapshot, live, keys, now=now, policy=policy, rotation_id=rotation_id, access=found
    )


def _local(services: Services, repair: Repair, policy: Policy, keys: list[OwnKey]) -> RepairRow:
    tenant_id = repair.tenant_id
    try:
        if repair.kind == "repair-access":
            assert repair.rotation_id
            rotated = repair_access(services, tenant_id, repair.rotation_id)
            if rotated is None:
                return row(repair, "done")
            return row(
                repair,
                "failed" if rotated.failed else "done",
                new_key_id=rotated.new_key_id,
                error=rotated.error,
                events=rotated.events,
            )
        if repair.kind == "remove-access":
            removed = tagged.remove_access(services.langsmith, tenant_id)
            return row(repair, "done" if removed else "already-done")
        if repair.kind == "discard-pending":
            assert repair.version_id and repair.key_id
            discard_pending_key(
                services, tenant_id, version_id=repair.version_id, key_id=repair.key_id
            )
            return row(repair, "done")
        if repair.kind == "retire":
            state = services.store.describe(tenant_id)
            if repair.version_id is not None:  # the label of the tool's earlier versions
                retire_marked_key(services, tenant_id, state)
                return row(repair, "done")
            retired = retire_previous_key(
                services,
                tenant_id,
                services.store.read(tenant_id),
                KeyHome.of(state.tags),
                grace_seconds=policy.grace_seconds,
                key_id=repair.key_id,
            )
            return row(repair, "waiting" if retired.waiting_seconds > 0 else "done")
        assert repair.kind == "delete-orphan" and repair.key_id
        mode = next((k.mode for k in keys if k.key_id == repair.key_id), "project")
        deleted = KeyHome(mode=mode).delete(services.langsmith, repair.key_id)
        return row(repair, "done" if deleted else "already-done")
    except Exception as exc:
        return row(repair, "failed", error=error_text(exc))


def repair_access(services: Services, tenant_id: str, rotation_id: str) -> RotationResult | None:
    """Set a tagged tenant's objects right (`tagged.restore`), record them in its secret's tags,
    then probe its current key: a key the probe does not see confined (its role was made again,
    or something else still lets it read beyond its project) is replaced by a rotation, whose
    result is returned. The caller holds the tenant's lock."""
    store, langsmith = services.store, services.langsmith
    state = store.describe(tenant_id)
    home = KeyHome.of(state.tags)
    current = store.read(tenant_id)
    project_id = state.tags.get(TAG_PROJECT) or current.project_id
    services.ownership.project(tenant_id, project_id, None)  # proven before it is tagged
    done = tagged.restore(langsmith, tenant_id, project_id, role_id=home.role_id)
    repaired = tagged_home(done.role_id, done.policy_id, done.tag_value_id)
    if repaired != home:
        store.set_tags(tenant_id, repaired.tags())
    confined = key_works(langsmith, current)  # a dead key needs no probe to be replaced
    if confined:
        try:
            repaired.confine(langsmith, current, tenant_id)
        except (IsolationNotProven, KeyTestFailed):
            confined = False
    result = None if confined else rotate(services, tenant_id, rotation_id, retire_now=True)
    if result is None or not result.failed:
        tagged.remove_other_roles(langsmith, tenant_id, keep=done.role_id)
    return result


def _protocol(services: Services, repair: Repair, policy: Policy) -> RepairRow:
    """A repair by another protocol, under the tenant's lock (the caller holds it)."""
    tenant_id = repair.tenant_id
    try:
        if repair.kind == "finish-offboarding":
            return row(repair, "done", events=offboard(services, tenant_id).events)
    except Exception as exc:
        return row(repair, "failed", error=error_text(exc))
    assert repair.rotation_id
    # A dead key needs no grace window: no app can be using it.
    retire_now = policy.grace_seconds == 0 or repair.kind == "replace-dead-key"
    result = rotate(services, tenant_id, repair.rotation_id, retire_now=retire_now)
    outcome: RepairOutcome = "waiting"  # an older key still waits out its grace window
    if result.failed:
        outcome = "failed"
    elif result.outcome == "rotated":
        outcome = "done"
    elif result.outcome == "already-rotated":
        outcome = "already-done"
    return row(
        repair, outcome, new_key_id=result.new_key_id, error=result.error, events=result.events
    )


def row(
    repair: Repair,
    outcome: RepairOutcome,
    *,
    new_key_id: str | None = None,
    error: str | None = None,
    events: list[TenantEvent] | None = None,
) -> RepairRow:
    return RepairRow(
        tenant_id=repair.tenant_id,
        kind=repair.kind,
        outcome=outcome,
        key_id=repair.key_id,
        rotation_id=repair.rotation_id,
        reason=repair.reason,
        new_key_id=new_key_id,
        error=error,
        events=events or [],
    )
