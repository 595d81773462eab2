"""The reconcile plan: compare what Secrets Manager says with what LangSmith has, and list repairs.

Pure functions over snapshots (no I/O), so every rule is a unit test away. Reading the
snapshots and carrying the repairs out is `tenant_keys.reconcile`.

The rules, per tenant (DESIGN: rotation, invariants 1 and 2):
- AWSPENDING whose key still works: an unfinished rotation; resume it with its rotation id.
- AWSPENDING whose key is gone: discard it (the current key stays).
- AWSCURRENT whose key no longer works (deleted or expired behind the tool's back): drift;
  mint and promote a replacement through the rotation protocol, loudly.
- AWSCURRENT that expires within the window: rotate it early.
- RETIRE_PENDING past its grace window: delete the old key, drop the label.
- A key the tool minted (its description says so) that no version of its tenant's secret
  references: an orphan; delete it. Keys with any other description are never touched.
  A tenant without a live secret (never stored, or offboarded) has only orphans. Orphans
  are deleted only once older than the orphan age: onboarding mints a key before its
  secret exists, without the tenant's lock, so a young unreferenced key may be in flight.
- A secret tagged as being offboarded: finish the offboarding.
- A secret the tool cannot read: report it; none of its keys counts as an orphan.
- Tagged isolation: a tenant whose tag value, the tag on its project, role or access policy is
  missing or changed (a role with other permissions, a policy that no longer grants exactly its
  reads or is not attached to its role, a second role or policy of the tool for it): drift;
  repair it loudly, then replace its key if the probe does not see it confined. A policy that
  is not the tool's attached to its role: report it (only a human may detach it). The tool's
  role, policy and tag value of a tenant without a live secret: remove them, once its policy
  and keys are older than the orphan age (an onboarding makes them before the secret).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tenant_keys.langsmith import ApiKeyInfo
from tenant_keys.models import TENANT_ID_PATTERN, IsolationMode, parse_key_description

RepairKind = Literal[
    "repair-access",
    "discard-pending",
    "retire",
    "delete-orphan",
    "resume-rotation",
    "replace-dead-key",
    "rotate-expiring",
    "finish-offboarding",
    "remove-access",
    "attention",
]
# Done under the tenant's lock by reconcile itself, in this order.
LOCAL_KINDS: tuple[RepairKind, ...] = (
    "repair-access",
    "discard-pending",
    "retire",
    "delete-orphan",
    "remove-access",
)
# Done by another protocol that takes the tenant's lock itself (rotation, offboarding).
PROTOCOL_KINDS: tuple[RepairKind, ...] = (
    "resume-rotation",
    "replace-dead-key",
    "rotate-expiring",
    "finish-offboarding",
)

TenantStatus = Literal["active", "absent", "scheduled-for-deletion", "offboarding", "unreadable"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class VersionInfo(_Frozen):
    """One labelled version of a tenant secret: ids and dates, never the key."""

    version_id: str
    key_id: str
    rotation_id: str
    issued_at: datetime
    expires_at: datetime | None = None
    project_id: str | None = None
    previous_key_id: str | None = None  # the key this version's key replaced


class AccessIds(_Frozen):
    """What a tagged tenant's secret names: its project, tag value, role and policy."""

    project_id: str | None = None
    tag_value_id: str | None = None
    role_id: str | None = None
    policy_id: str | None = None


class RoleFound(_Frozen):
    role_id: str
    permissions_ok: bool  # exactly the tool's permissions for a tenant role


class PolicyFound(_Frozen):
    policy_id: str
    matches: bool  # grants exactly its tenant's reads
    role_ids: tuple[str, ...] = ()
    created_at: datetime | None = None


class AccessFound(_Frozen):
    """The tool's objects of tagged isolation for one tenant, as LangSmith lists them."""

    tenant_id: str
    # Tag value id -> the projects it tags.
    values: dict[str, tuple[str, ...]] = {}
    roles: tuple[RoleFound, ...] = ()
    policies: tuple[PolicyFound, ...] = ()
    # Policies the tool did not make, attached to one of the tenant's roles.
    foreign_policies: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.values or self.roles or self.policies)


class TenantSnapshot(_Frozen):
    tenant_id: str
    status: TenantStatus
    current: VersionInfo | None = None
    # AWSPENDING on another version than AWSCURRENT's: a rotation that has not promoted yet
    # (on AWSCURRENT's version it is a finished rotation's, and not set here).
    pending: VersionInfo | None = None
    previous: VersionInfo | None = None  # AWSPREVIOUS
    retire_pending: VersionInfo | None = None  # a label of the tool's earlier versions
    problem: str | None = None  # why the status is "unreadable"
    access: AccessIds | None = None  # set for a tenant in tagged isolation

    def referenced_key_ids(self) -> set[str]:
        """Keys the secret still accounts for: none of them is an orphan."""
        versions = [self.current, self.pending, self.previous, self.retire_pending]
        ids = {v.key_id for v in versions if v is not None}
        if self.current is not None and self.current.previous_key_id:
            ids.add(self.current.previous_key_id)
        return ids


class OwnKey(_Frozen):
    """A key the tool minted, as LangSmith lists it (its description names tenant and rotation)."""

    key_id: str
    short_key: str
    tenant_id: str
    rotation_id: str
    created_at: datetime | None = None
    expires_at: datetime | None = None
    mode: IsolationMode = "project"  # where it is listed: a workspace key or an org service key


class Policy(_Frozen):
    grace_seconds: float
    expiring_within: timedelta
    orphan_min_age: timedelta


class Repair(_Frozen):
    """One thing reconcile will do (or, for "attention", cannot do) for a tenant."""

    tenant_id: str
    kind: RepairKind
    reason: str
    key_id: str | None = None
    version_id: str | None = None
    rotation_id: str | None = None


def own_keys(keys: Iterable[ApiKeyInfo], mode: IsolationMode = "project") -> list[OwnKey]:
    """The keys the tool minted; every other key is left out, so nothing downstream can touch it."""
    mine = []
    for key in keys:
        parsed = parse_key_description(key.description)
        # The tool mints only for valid tenant ids: anything else only looks like ours.
        if parsed is None or not TENANT_ID_PATTERN.fullmatch(parsed[0]):
            continue
        mine.append(
            OwnKey(
                key_id=key.id,
                short_key=key.short_key,
                tenant_id=parsed[0],
                rotation_id=parsed[1],
                created_at=key.created_at,
                expires_at=key.expires_at,
                mode=mode,
            )
        )
    return mine


def liveness_from_list(keys: Iterable[OwnKey], now: datetime) -> dict[str, bool]:
    """Listed and not expired means live; a key missing from the list was deleted."""
    return {k.key_id: k.expires_at is None or k.expires_at > now for k in keys}


def plan(
    snapshots: Iterable[TenantSnapshot],
    keys: Iterable[OwnKey],
    live: Mapping[str, bool],
    *,
    now: datetime,
    policy: Policy,
    rotation_id: str,
    access: Mapping[str, AccessFound] | None = None,
) -> list[Repair]:
    """Repairs for every surveyed tenant. Keys of tenants that were not surveyed are left alone,
    and so is every tenant in a conflict (a key or project that two secrets name): a human
    decides which secret was edited. `access`: the tool's objects of tagged isolation by
    tenant, when they were listed."""
    by_tenant: dict[str, list[OwnKey]] = {}
    for key in keys:
        by_tenant.setdefault(key.tenant_id, []).append(key)
    conflicted = conflicts(snapshots)
    repairs: list[Repair] = []
    for snapshot in sorted(snapshots, key=lambda s: s.tenant_id):
        if snapshot.tenant_id in conflicted:
            why = conflicted[snapshot.tenant_id]
            repairs.append(Repair(tenant_id=snapshot.tenant_id, kind="attention", reason=why))
            continue
        repairs += plan_tenant(
            snapshot,
            live,
            by_tenant.get(snapshot.tenant_id, []),
            now=now,
            policy=policy,
            rotation_id=rotation_id,
            access=None
            if access is None
            else access.get(snapshot.tenant_id, AccessFound(tenant_id=snapshot.tenant_id)),
        )
    return repairs


def conflicts(snapshots: Iterable[TenantSnapshot]) -> dict[str, str]:
    """Tenants whose secret names a key or project that another tenant's secret names too,
    with the reason in one line. Neither is acted on: one of the secrets was edited."""
    holders: dict[tuple[str, str], set[str]] = {}
    for snapshot in snapshots:
        versions = [snapshot.current, snapshot.pending, snapshot.retire_pending, snapshot.previous]
        for version in (v for v in versions if v is not None):
            holders.setdefault(("key", version.key_id), set()).add(snapshot.tenant_id)
            if version.project_id:
                holders.setdefault(("project", version.project_id), set()).add(snapshot.tenant_id)
    found: dict[str, str] = {}
    for (kind, item_id), tenants in sorted(holders.items()):
        if len(tenants) > 1:
            for tenant in sorted(tenants):
                others = ", ".join(sorted(tenants - {tenant}))
                found.setdefault(
                    tenant,
                    f"CONFLICT: {kind} {item_id} is also named by the secret of {others}: "
                    "left alone; find which secret was edited and restore it",
                )
    return found


def plan_tenant(
    snapshot: TenantSnapshot,
    live: Mapping[str, bool],
    keys: Iterable[OwnKey],
    *,
    now: datetime,
    policy: Policy,
    rotation_id: str,
    access: AccessFound | None = None,
) -> list[Repair]:
    """Repairs for one tenant: local ones first (in `LOCAL_KINDS` order), then at most one protocol run.

    `live` says which key ids still authenticate (a missing id: not live); `keys` are the
    tool's keys that name this tenant; `rotation_id` is the id a new rotation would use;
    `access` what LangSmith lists of the tool's objects of tagged isolation for this tenant
    (None: not listed).
    """
    tenant = snapshot.tenant_id
    if snapshot.status == "unreadable":
        return [
            Repair(
                tenant_id=tenant,
                kind="attention",
                reason=snapshot.problem or "the secret cannot be read",
            )
        ]
    if snapshot.status == "offboarding":
        return [
            Repair(
                tenant_id=tenant,
                kind="finish-offboarding",
                reason="an offboarding stopped half way: revoke the keys, schedule the secret's deletion",
            )
        ]
    if snapshot.status in ("absent", "scheduled-for-deletion"):
        why = "no secret" if snapshot.status == "absent" else "secret scheduled for deletion"
        orphans = _orphans(tenant, keys, set(), now, policy.orphan_min_age, f"tenant has {why}")
        return orphans + _orphan_access(tenant, access, keys, now, policy.orphan_min_age, why)
    repairs = _plan_active(snapshot, live, keys, now=now, policy=policy, rotation_id=rotation_id)
    return _access_drift(snapshot, access, rotation_id) + repairs


def _access_drift(
    snapshot: TenantSnapshot, found: AccessFound | None, rotation_id: str
) -> list[Repair]:
    """A tagged tenant whose objects at LangSmith are not what its secret names, or not as the
    tool made them: one repair that says every difference."""
    ids = snapshot.access
    if ids is None or found is None:
        return []
    tenant = snapshot.tenant_id
    drift: list[str] = []
    if ids.tag_value_id not in found.values:
        drift.append(f"its tag value {ids.tag_value_id} is missing")
    elif ids.project_id not in found.values[ids.tag_value_id]:
        drift.append(f"its project {ids.project_id} lost its tag")
    role = next((r for r in found.roles if r.role_id == ids.role_id), None)
    if role is None:
        drift.append(f"its role {ids.role_id} is missing")
    elif not role.permissions_ok:
        drift.append(f"its role {ids.role_id} has other permissions")
    own = next((p for p in found.policies if p.policy_id == ids.policy_id), None)
    if own is None:
        drift.append(f"its access policy {ids.policy_id} is missing")
    elif not own.matches:
        drift.append(f"its access policy {ids.policy_id} no longer matches the tenant")
    elif ids.role_id not in own.role_ids:
        drift.append(f"its access policy {ids.policy_id} is not attached to its role")
    drift += [
        f"access policy {p.policy_id} of the tool no longer matches the tenant"
        for p in found.policies
        if p.policy_id != ids.policy_id and not p.matches
    ]
    drift += [
        f"a second access policy {p.policy_id} of the tool for the tenant"
        for p in found.policies
        if p.policy_id != ids.policy_id and p.matches
    ]
    drift += [
        f"a second role {r.role_id} of the tool for the tenant"
        for r in found.roles
        if r.role_id != ids.role_id
    ]
    repairs = []
    if drift:
        repairs.append(
            Repair(
                tenant_id=tenant,
                kind="repair-access",
                rotation_id=rotation_id,
                reason="DRIFT: " + "; ".join(drift) + ": repair it, and replace the key if the "
                "probe does not see it confined",
            )
        )
    if found.foreign_policies:
        repairs.append(
            Repair(
                tenant_id=tenant,
                kind="attention",
                reason=f"access policies the tool did not make are attached to the tenant's role "
                f"({', '.join(found.foreign_policies)}): they may grant reads of other tenants' "
                "projects; detach them in LangSmith",
            )
        )
    return repairs


def _orphan_access(
    tenant_id: str,
    found: AccessFound | None,
    keys: Iterable[OwnKey],
    now: datetime,
    min_age: timedelta,
    why: str,
) -> list[Repair]:
    """The tool's objects of tagged isolation of a tenant without a live secret; spared while an
    onboarding may be making them (a policy or key of the tenant younger than `min_age`)."""
    if found is None or found.empty:
        return []
    born = [p.created_at for p in found.policies] + [
        k.created_at for k in keys if k.tenant_id == tenant_id
    ]
    if any(t is not None and now - t < min_age for t in born):
        return []
    return [
        Repair(
            tenant_id=tenant_id,
            kind="remove-access",
            reason=f"orphan role, access policy or tag value of tagged isolation: tenant has {why}",
        )
    ]


def _plan_active(
    snapshot: TenantSnapshot,
    live: Mapping[str, bool],
    keys: Iterable[OwnKey],
    *,
    now: datetime,
    policy: Policy,
    rotation_id: str,
) -> list[Repair]:
    tenant, current, pending = snapshot.tenant_id, snapshot.current, snapshot.pending
    if current is None:
        return [Repair(tenant_id=tenant, kind="attention", reason="the secret has no AWSCURRENT")]
    local: list[Repair] = []
    protocol: Repair | None = None

    if pending is not None:
        if live.get(pending.key_id, False):
            protocol = Repair(
                tenant_id=tenant,
                kind="resume-rotation",
                key_id=pending.key_id,
                version_id=pending.version_id,
                rotation_id=pending.rotation_id,
                reason="AWSPENDING of an unfinished rotation: finish it",
            )
        else:
            local.append(
                Repair(
                    tenant_id=tenant,
                    kind="discard-pending",
                    key_id=pending.key_id,
                    version_id=pending.version_id,
                    rotation_id=pending.rotation_id,
                    reason="the AWSPENDING key no longer exists at LangSmith: drop the label",
                )
            )

    if protocol is None:
        if not live.get(current.key_id, False):
            protocol = Repair(
                tenant_id=tenant,
                kind="replace-dead-key",
                key_id=current.key_id,
                rotation_id=rotation_id,
                reason="DRIFT: the AWSCURRENT key no longer authenticates (deleted or expired "
                "outside the tool): mint and promote a replacement",
            )
        elif current.expires_at is not None and current.expires_at - now <= policy.expiring_within:
            days = (current.expires_at - now).total_seconds() / 86400
            protocol = Repair(
                tenant_id=tenant,
                kind="rotate-expiring",
                key_id=current.key_id,
                rotation_id=rotation_id,
                reason=f"the AWSCURRENT key expires in {days:.1f} days: rotate it early",
            )

    grace_over = current.issued_at + timedelta(seconds=policy.grace_seconds) <= now
    retiring = snapshot.retire_pending
    replaced = [current.previous_key_id, snapshot.previous.key_id if snapshot.previous else None]
    skip = {current.key_id, retiring.key_id if retiring else None}
    for old in dict.fromkeys(k for k in replaced if k is not None and k not in skip):
        if live.get(old, False) and grace_over:
            local.append(
                Repair(
                    tenant_id=tenant,
                    kind="retire",
                    key_id=old,
                    reason="a key AWSCURRENT replaced still exists past its grace window: "
                    "delete it",
                )
            )
    if retiring is not None and (grace_over or retiring.version_id == current.version_id):
        local.append(
            Repair(
                tenant_id=tenant,
                kind="retire",
                key_id=retiring.key_id,
                version_id=retiring.version_id,
                reason="RETIRE_PENDING (from an earlier version of the tool): delete the old key, "
                "drop the label",
            )
        )

    referenced = snapshot.referenced_key_ids()
    local += _orphans(
        tenant, keys, referenced, now, policy.orphan_min_age, "no version of the secret holds it"
    )
    return local + ([protocol] if protocol else [])


def _orphans(
    tenant_id: str,
    keys: Iterable[OwnKey],
    referenced: set[str],
    now: datetime,
    min_age: timedelta,
    why: str,
) -> list[Repair]:
    return [
        Repair(
            tenant_id=tenant_id,
            kind="delete-orphan",
            key_id=key.key_id,
            rotation_id=key.rotation_id,
            reason=f"orphan key {key.short_key}: {why}",
        )
        for key in sorted(keys, key=lambda k: k.key_id)
        if key.tenant_id == tenant_id
        and key.key_id not in referenced
        and (key.created_at is None or now - key.created_at >= min_age)
    ]
