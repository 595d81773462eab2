"""Rotation, after Secrets Manager's rotation protocol: create → test → promote → retire.

Two writes per tenant: the new key stored as AWSPENDING, and AWSCURRENT moved onto it (a
compare-and-swap; Secrets Manager moves AWSPREVIOUS onto the old version by itself, and
AWSPENDING left on the current version is the protocol's "finished"). Whether the old key
still has to be deleted is read from the truth, not from a label: the current record names the
key it replaced (`previous_key_id`), and LangSmith's key listing says whether that key still
exists. A failed retire leaves it existing: the next rotation and reconcile retire it first,
and its expiry bounds the exposure.

Every step first reads where the labels stand, so a rerun after a crash at any point picks up
where the last run stopped and never mints a second key for the same rotation. `rotate` drives
the steps for one tenant; the caller holds the tenant's lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from tenant_keys.errors import (
    BadInput,
    IsolationNotProven,
    KeyTestFailed,
    RetireFailed,
    error_text,
)
from tenant_keys.events import KeyRotatedEvent, RetireFailedEvent, TenantEvent
from tenant_keys.keys import (
    KeyHome,
    delete_owned,
    key_works,
    mint_and_store,
    rotation_tokens,
    tenant_home,
)
from tenant_keys.layout import (
    CURRENT,
    PENDING,
    RETIRE_PENDING,
    TAG_OFFBOARDING,
    KeyRecord,
    SecretState,
    TenantKeyRecord,
)
from tenant_keys.models import utcnow, validate_tenant_id
from tenant_keys.services import Services

RotationOutcome = Literal[
    "rotated", "already-rotated", "waiting", "offboarding", "failed", "retire-failed"
]
FAILED: tuple[RotationOutcome, ...] = ("failed", "retire-failed")


Record = TypeVar("Record", bound=KeyRecord)


class PendingKey(BaseModel, Generic[Record]):
    """The AWSPENDING version of a rotation (a tenant's, or the admin key's): ids, and the
    record where this process minted it or read it (for the test step; never shown)."""

    model_config = ConfigDict(frozen=True)

    token: str
    key_id: str
    resumed: bool
    record: Record = Field(exclude=True, repr=False)


class RetireResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: str | None = None
    waiting_seconds: float = 0.0  # > 0: the grace window is still open; nothing was deleted


class RotationResult(BaseModel):
    """What happened to one tenant: ids only. `events` are for the caller to emit."""

    tenant_id: str
    outcome: RotationOutcome
    rotation_id: str
    old_key_id: str | None = None
    new_key_id: str | None = None
    error: str | None = None
    seconds: float = 0.0
    events: list[SerializeAsAny[TenantEvent]] = Field(default_factory=list, exclude=True)

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED


# -- the steps -------------------------------------------------------------------------------


def create_pending_key(
    services: Services,
    tenant_id: str,
    rotation_id: str,
    state: SecretState,
    current: TenantKeyRecord,
) -> PendingKey[TenantKeyRecord] | None:
    """Step 1. Resume an unfinished AWSPENDING (on a version other than AWSCURRENT's), or mint a
    key and store it at once as AWSPENDING: one write. None when this rotation was promoted
    before (its version carries another label).

    `state` and `current` are the secret and its AWSCURRENT record as read before this step.
    """
    home = KeyHome.of(state.tags)  # the tenant's isolation mode picks the key endpoints
    current_version, pending = state.version_with(CURRENT), state.version_with(PENDING)
    tokens = rotation_tokens(tenant_id, rotation_id)
    if current_version in tokens or any(
        token in state.versions and token != pending for token in tokens
    ):
        return None  # this rotation's version is (or was) current
    if pending is not None and pending != current_version:
        record = services.store.read(tenant_id, stage=PENDING, version_id=pending)
        # Never resume a key that is not provably this tenant's (`NotOwned`).
        if services.ownership.key(
            tenant_id, record.key_id, service_key=home.service_key
        ) and key_works(services.langsmith, record):
            return PendingKey(token=pending, key_id=record.key_id, resumed=True, record=record)
        # Gone or dead at LangSmith: deleted if still listed; the next write moves the label.
        delete_owned(services, tenant_id, home, record.key_id)
    # The project the new key serves is the current one's, provably the tenant's (`NotOwned`).
    services.ownership.project(tenant_id, current.project_id, home.workspace_id)
    stored = mint_and_store(
        services, tenant_id, rotation_id, base=current, stage=PENDING, home=home
    )
    assert stored.version_id is not None and stored.record is not None
    return PendingKey(
        token=stored.version_id, key_id=stored.key_id, resumed=False, record=stored.record
    )


def test_pending_key(
    services: Services,
    tenant_id: str,
    pending: PendingKey[TenantKeyRecord],
    home: KeyHome | None = None,
) -> None:
    """Step 2. The pending key authenticates (bounded retries: a new key may take a moment);
    in tagged mode the probe also sees it confined to the tenant's project."""
    home = home or tenant_home(services, tenant_id)
    home.test(services.langsmith, pending.record, tenant_id)


def discard_pending_key(
    services: Services, tenant_id: str, *, version_id: str, key_id: str
) -> None:
    """Undo steps 1-2: delete the new key (gone: nothing to delete), then drop AWSPENDING. The
    old key stays current."""
    delete_owned(services, tenant_id, tenant_home(services, tenant_id), key_id)
    services.store.remove_label(tenant_id, PENDING, from_version=version_id)


def promote_pending_key(
    services: Services, tenant_id: str, pending: PendingKey[TenantKeyRecord], state: SecretState
) -> None:
    """Step 3. Move AWSCURRENT to the pending version, a compare-and-swap from the version that
    was current (one write). Secrets Manager moves AWSPREVIOUS onto that one by itself;
    AWSPENDING stays on the new current version, which is the protocol's "finished"."""
    current = state.version_with(CURRENT)
    if current != pending.token:
        services.store.move_label(
            tenant_id, CURRENT, to_version=pending.token, from_version=current
        )


def retire_previous_key(
    services: Services,
    tenant_id: str,
    current: TenantKeyRecord,
    home: KeyHome,
    *,
    grace_seconds: float,
    key_id: str | None = None,
) -> RetireResult:
    """Step 4. Delete the key the current one replaced (`key_id`, by default the one the current
    record names) if LangSmith still lists it and proves it this tenant's; no write to the
    store. Waits for nothing: while the grace window is open it reports the seconds left. A
    failed delete leaves the key listed: the next rotation and reconcile retire it first."""
    old = key_id or current.previous_key_id
    if old is None or old == current.key_id:
        return RetireResult()
    # The old key is older than the current one: a listing taken since then settles "gone".
    if not services.ownership.key(
        tenant_id, old, service_key=home.service_key, created_before=current.issued_at
    ):
        return RetireResult()
    left = (current.issued_at + timedelta(seconds=grace_seconds) - utcnow()).total_seconds()
    if left > 0:
        return RetireResult(key_id=old, waiting_seconds=left)
    delete_owned(services, tenant_id, home, old)
    return RetireResult(key_id=old)


def retire_marked_key(services: Services, tenant_id: str, state: SecretState) -> RetireResult:
    """A secret from the tool's earlier versions may carry RETIRE_PENDING on the version whose
    key waits to be retired: delete that key (proven the tenant's), then drop the label."""
    version = state.version_with(RETIRE_PENDING)
    if version is None:
        return RetireResult()
    old = services.store.read(tenant_id, stage=RETIRE_PENDING, version_id=version)
    current = services.store.read(tenant_id)
    if old.key_id != current.key_id:  # never the live key, whatever the labels say
        delete_owned(services, tenant_id, KeyHome.of(state.tags), old.key_id)
    services.store.remove_label(tenant_id, RETIRE_PENDING, from_version=version)
    return RetireResult(key_id=old.key_id if old.key_id != current.key_id else None)


# -- the driver ------------------------------------------------------------------------------


def rotate(
    services: Services, tenant_id: str, rotation_id: str, *, retire_now: bool
) -> RotationResult:
    """The protocol for one tenant; the caller holds the tenant's lock. Two reads (the secret's
    labels, its current record) and two writes. A failure is the result's outcome (its error
    text holds no key), never an exception."""
    started = time.monotonic()
    events: list[TenantEvent] = []

    def result(outcome: RotationOutcome, **fields: str | None) -> RotationResult:
        return RotationResult(
            tenant_id=tenant_id,
            outcome=outcome,
            rotation_id=rotation_id,
            seconds=round(time.monotonic() - started, 3),
            events=events,
            **fields,
        )

    try:
        store, grace = services.store, services.settings.grace_seconds
        state = store.describe(tenant_id)
        if state.leaving:  # offboarding deletes its keys; a new one would only outlive it
            return result("offboarding")
        if state.version_with(RETIRE_PENDING):
            with _retire_alarm(tenant_id, None, events):
                retire_marked_key(services, tenant_id, state)
            state = store.describe(tenant_id)
        current = store.read(tenant_id)
        home = KeyHome.of(state.tags)
        # An earlier rotation's old key must be gone before this one replaces the current key.
        with _retire_alarm(tenant_id, current.previous_key_id, events):
            earlier = retire_previous_key(services, tenant_id, current, home, grace_seconds=grace)
        if earlier.waiting_seconds > 0:
            wait = f"previous key waits {earlier.waiting_seconds:.0f} s more for its grace window"
            return result("waiting", old_key_id=earlier.key_id, error=wait)
        pending = create_pending_key(services, tenant_id, rotation_id, state, current)
        if pending is None:
            return result("already-rotated")
        try:
            test_pending_key(services, tenant_id, pending, home)
        except (KeyTestFailed, IsolationNotProven):
            discard_pending_key(
                services, tenant_id, version_id=pending.token, key_id=pending.key_id
            )
            raise
        promote_pending_key(services, tenant_id, pending, state)
        events.append(
            KeyRotatedEvent(tenant_id=tenant_id, rotation_id=rotation_id, key_id=pending.key_id)
        )
        # The key AWSCURRENT held until now. A resumed key may have been minted while another
        # was current (a revoke's replacement came between): that one is retired too.
        replaced = current.key_id
        if not retire_now:
            return result("rotated", old_key_id=replaced, new_key_id=pending.key_id)
        for old in dict.fromkeys((replaced, pending.record.previous_key_id)):
            with _retire_alarm(tenant_id, old, events):
                retire_previous_key(
                    services, tenant_id, pending.record, home, grace_seconds=0.0, key_id=old
                )
        return result("rotated", old_key_id=replaced, new_key_id=pending.key_id)
    except Exception as exc:
        outcome: RotationOutcome = "retire-failed" if isinstance(exc, RetireFailed) else "failed"
        return result(outcome, error=error_text(exc))


def retire(services: Services, tenant_id: str, rotation_id: str, old_key_id: str) -> RotationResult:
    """Retire the key a rotation replaced (`old_key_id`) once its grace window has passed (a
    fan-out's second pass); the caller holds the tenant's lock."""
    started = time.monotonic()
    events: list[TenantEvent] = []
    error = None
    try:
        state = services.store.describe(tenant_id)
        current = services.store.read(tenant_id)
        with _retire_alarm(tenant_id, old_key_id, events):
            retired = retire_previous_key(
                services,
                tenant_id,
                current,
                KeyHome.of(state.tags),
                grace_seconds=services.settings.grace_seconds,
                key_id=old_key_id,
            )
        outcome: RotationOutcome = "waiting" if retired.waiting_seconds > 0 else "rotated"
    except Exception as exc:
        outcome = "retire-failed" if isinstance(exc, RetireFailed) else "failed"
        error = error_text(exc)
    return RotationResult(
        tenant_id=tenant_id,
        outcome=outcome,
        rotation_id=rotation_id,
        old_key_id=old_key_id,
        error=error,
        seconds=round(time.monotonic() - started, 3),
        events=events,
    )


@contextmanager
def _retire_alarm(tenant_id: str, key_id: str | None, events: list[TenantEvent]) -> Iterator[None]:
    """Forward compensation: a failed retire leaves the old key listed at LangSmith (the durable
    record), adds the alarm event and fails the tenant visibly; reconcile and the next
    rotation retry it, and the key's expiry bounds the exposure."""
    try:
        yield
    except Exception as exc:
        events.append(RetireFailedEvent(tenant_id=tenant_id, key_id=key_id, error=error_text(exc)))
        raise RetireFailed(tenant_id, key_id, type(exc).__name__) from exc


def rotation_targets(services: Services, tenants: list[str] | Literal["all"]) -> Iterator[str]:
    """The tenant ids to rotate. Named: each valid and onboarded, checked here, before any side
    effect. `all`: every tenant with a secret under the prefix except those being offboarded,
    page by page as Secrets Manager lists them (a fan-out starts on the first page)."""
    if tenants == "all":
        listed = services.store.iter_tenant_tags()
        return (tenant_id for tenant_id, tags in listed if TAG_OFFBOARDING not in tags)
    if not tenants:
        raise BadInput("no tenants given: name tenants or pass 'all'")
    tenant_ids = [validate_tenant_id(t) for t in dict.fromkeys(tenants)]
    for tenant_id in tenant_ids:
        services.store.describe(tenant_id)  # TenantNotFound says how to onboard it
    return iter(tenant_ids)


class RotationTally(BaseModel):
    """A fan-out's results, gathered as they finish: counts, the failures (the first
    `MAX_ROWS`), and for a retire after the grace window, the keys the rotated tenants replaced.
    Its size grows with the failures, not with the tenants."""

    MAX_ROWS: ClassVar[int] = 1000

    counts: dict[str, int] = Field(default_factory=dict)
    failures: list[RotationResult] = Field(default_factory=list)
    failures_left_out: int = 0
    replaced: dict[str, str] = Field(default_factory=dict)  # tenant -> old key, to retire later

    def add(self, result: RotationResult, *, keep_replaced: bool) -> None:
        self.counts[result.outcome] = self.counts.get(result.outcome, 0) + 1
        if result.failed:
            if len(self.failures) < self.MAX_ROWS:
                self.failures.append(result)
            else:
                self.failures_left_out += 1
        elif keep_replaced and result.outcome == "rotated" and result.old_key_id:
            self.replaced[result.tenant_id] = result.old_key_id

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome in FAILED)
