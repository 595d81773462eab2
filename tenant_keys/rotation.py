"""Rotation, after Secrets Manager's rotation protocol: create → test → promote → retire.

Every step first reads where the secret's staging labels say the rotation stands, so a
rerun after a crash at any point picks up where the last run stopped and never mints a
second key for the same rotation. `rotate` drives the steps for one tenant; the caller holds
the tenant's lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from tenant_keys.errors import (
    BadInput,
    KeyTestFailed,
    RetireFailed,
    SecretStoreError,
    TenantKeysError,
)
from tenant_keys.events import KeyRotatedEvent, RetireFailedEvent, TenantEvent
from tenant_keys.keys import (
    KeyHome,
    check_key,
    delete_owned,
    mint_and_store,
    rotation_tokens,
    tenant_home,
)
from tenant_keys.layout import (
    CURRENT,
    PENDING,
    PREVIOUS,
    RETIRE_PENDING,
    TAG_OFFBOARDING,
    SecretState,
)
from tenant_keys.models import utcnow, validate_tenant_id
from tenant_keys.redact import redact
from tenant_keys.services import Services

Outcome = Literal["rotated", "already-rotated", "waiting", "offboarding", "failed", "retire-failed"]
FAILED: tuple[Outcome, ...] = ("failed", "retire-failed")


class PendingKey(BaseModel):
    """The AWSPENDING version of a rotation and the version it replaces: ids only."""

    model_config = ConfigDict(frozen=True)

    token: str
    key_id: str
    resumed: bool
    replaces_key_id: str | None = None  # the AWSCURRENT key when this one was minted


class RetireResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: str | None = None
    waiting_seconds: float = 0.0  # > 0: the grace window is still open; nothing was deleted


class RotationResult(BaseModel):
    """What happened to one tenant: ids only. `events` are for the caller to emit."""

    tenant_id: str
    outcome: Outcome
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
    services: Services, tenant_id: str, rotation_id: str, state: SecretState
) -> PendingKey | None:
    """Step 1. Resume an unfinished AWSPENDING, or mint a key and store it at once as AWSPENDING.

    `state` is the secret as described before this step. Returns None when this
    rotation already completed (its version is or was current).
    """
    store, langsmith = services.store, services.langsmith
    current, pending = state.version_with(CURRENT), state.version_with(PENDING)
    home = KeyHome.of(state.tags)  # the tenant's isolation mode picks the key endpoints
    if pending is not None:
        record = store.read(tenant_id, stage=PENDING, version_id=pending)
        # Never resume a key that is not provably this tenant's (`NotOwned`).
        owned = services.ownership.key(
            tenant_id, record.key_id, service_key=home.mode == "workspace"
        )
        if pending == current or (
            owned and langsmith.authenticates(record.api_key, workspace_id=record.workspace_id)
        ):
            return PendingKey(token=pending, key_id=record.key_id, resumed=True)
        # The pending key is gone at LangSmith (deleted, expired): discard it, mint afresh.
        discard_pending_key(
            services, tenant_id, PendingKey(token=pending, key_id=record.key_id, resumed=True)
        )

    tokens = rotation_tokens(tenant_id, rotation_id)
    if any(token in state.versions and token != pending for token in tokens):
        return None  # this rotation's version already carries a label: it was promoted before

    base = store.read(tenant_id)  # the project the new key serves is the current one's
    services.ownership.project(tenant_id, base.project_id, home.workspace_id)  # or `NotOwned`
    stored = mint_and_store(services, tenant_id, rotation_id, base=base, stage=PENDING, home=home)
    assert stored.version_id is not None
    return PendingKey(
        token=stored.version_id, key_id=stored.key_id, resumed=False, replaces_key_id=base.key_id
    )


def test_pending_key(services: Services, tenant_id: str, pending: PendingKey) -> None:
    """Step 2. The pending key, read back from the store, authenticates (bounded retries)."""
    record = services.store.read(tenant_id, stage=PENDING, version_id=pending.token)
    check_key(services.langsmith, record, tenant_id)


def discard_pending_key(services: Services, tenant_id: str, pending: PendingKey) -> None:
    """Undo steps 1-2: delete the new key (404 is fine), then drop AWSPENDING. The old key
    stays current."""
    delete_owned(services, tenant_id, tenant_home(services, tenant_id), pending.key_id)
    services.store.remove_label(tenant_id, PENDING, from_version=pending.token)


def promote_pending_key(
    services: Services, tenant_id: str, pending: PendingKey, state: SecretState
) -> str | None:
    """Step 3. Move AWSCURRENT to the pending version (compare-and-swap), mark the old version
    RETIRE_PENDING, then drop AWSPENDING. Returns the old version id.

    `state` is the secret as described before step 1. AWSPENDING is dropped last, so a
    crash before it leaves a state the next run recognises (AWSPENDING on AWSCURRENT)
    and finishes.
    """
    store = services.store
    current = state.version_with(CURRENT)
    if current != pending.token:
        store.move_label(tenant_id, CURRENT, to_version=pending.token, from_version=current)
        old = current
    else:
        old = state.version_with(PREVIOUS)  # promoted by an earlier run that stopped here
    marked = state.version_with(RETIRE_PENDING)
    if old is not None and marked != old:
        if marked is not None:
            raise SecretStoreError(
                "UpdateSecretVersionStage",
                state.name,
                "RetirePendingElsewhere",
                "an older key still waits to be retired: run `tenant-keys reconcile`",
            )
        store.move_label(tenant_id, RETIRE_PENDING, to_version=old, from_version=None)
    store.remove_label(tenant_id, PENDING, from_version=pending.token)
    return old


def retire_old_key(
    services: Services, tenant_id: str, *, grace_seconds: float, state: SecretState
) -> RetireResult:
    """Step 4. Delete the RETIRE_PENDING version's key at LangSmith (404: already gone), then
    drop the label. Waits for nothing: while the grace window is open it reports the seconds
    left. The label is dropped only after the delete succeeded, so a failed delete leaves the
    durable record that reconcile and the next rotation act on."""
    store = services.store
    version = state.version_with(RETIRE_PENDING)
    if version is None:
        return RetireResult()
    old = store.read(tenant_id, stage=RETIRE_PENDING, version_id=version)
    current = store.read(tenant_id)
    left = (current.issued_at + timedelta(seconds=grace_seconds) - utcnow()).total_seconds()
    if left > 0:
        return RetireResult(key_id=old.key_id, waiting_seconds=left)
    if old.key_id == current.key_id:  # never delete the live key, whatever the labels say
        store.remove_label(tenant_id, RETIRE_PENDING, from_version=version)
        return RetireResult()
    retire_key(services, tenant_id, KeyHome.of(state.tags), version=version, key_id=old.key_id)
    return RetireResult(key_id=old.key_id)


def retire_key(
    services: Services, tenant_id: str, home: KeyHome, *, version: str, key_id: str
) -> None:
    """Delete the key of the RETIRE_PENDING `version` once proven the tenant's (gone: nothing
    to delete), then drop the label."""
    delete_owned(services, tenant_id, home, key_id)
    services.store.remove_label(tenant_id, RETIRE_PENDING, from_version=version)


# -- the driver ------------------------------------------------------------------------------


def rotate(
    services: Services, tenant_id: str, rotation_id: str, *, retire_now: bool
) -> RotationResult:
    """The protocol for one tenant; the caller holds the tenant's lock. A failure is the
    result's outcome (its error text holds no key), never an exception."""
    started = time.monotonic()
    events: list[TenantEvent] = []

    def result(outcome: Outcome, **fields: str | None) -> RotationResult:
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
            # An earlier rotation's old key must be gone before this one marks another.
            earlier = _retire(services, tenant_id, grace, state, events)
            if earlier.waiting_seconds > 0:
                wait = (
                    f"previous key waits {earlier.waiting_seconds:.0f} s more for its grace window"
                )
                return result("waiting", old_key_id=earlier.key_id, error=wait)
            state = store.describe(tenant_id)
        pending = create_pending_key(services, tenant_id, rotation_id, state)
        if pending is None:
            return result("already-rotated")
        try:
            test_pending_key(services, tenant_id, pending)
        except KeyTestFailed:
            discard_pending_key(services, tenant_id, pending)
            raise
        old_version = promote_pending_key(services, tenant_id, pending, state)
        events.append(
            KeyRotatedEvent(tenant_id=tenant_id, rotation_id=rotation_id, key_id=pending.key_id)
        )
        if not retire_now or old_version is None:
            return result("rotated", new_key_id=pending.key_id)
        if pending.replaces_key_id is None:  # resumed: the old key id is in the labelled version
            now = store.describe(tenant_id)
            retired = _retire(services, tenant_id, 0.0, now, events).key_id
        else:
            retired = pending.replaces_key_id
            with _retire_alarm(tenant_id, retired, events):
                home = KeyHome.of(state.tags)
                retire_key(services, tenant_id, home, version=old_version, key_id=retired)
        return result("rotated", old_key_id=retired, new_key_id=pending.key_id)
    except Exception as exc:
        outcome: Outcome = "retire-failed" if isinstance(exc, RetireFailed) else "failed"
        return result(outcome, error=error_text(exc))


def retire(services: Services, tenant_id: str, rotation_id: str) -> RotationResult:
    """Retire the tenant's RETIRE_PENDING key once its grace window has passed (a fan-out's
    second pass); the caller holds the tenant's lock."""
    started = time.monotonic()
    events: list[TenantEvent] = []
    try:
        state = services.store.describe(tenant_id)
        retired = _retire(services, tenant_id, services.settings.grace_seconds, state, events)
        outcome: Outcome = "waiting" if retired.waiting_seconds > 0 else "rotated"
        error = None
        old_key_id = retired.key_id
    except Exception as exc:
        outcome = "retire-failed" if isinstance(exc, RetireFailed) else "failed"
        error, old_key_id = error_text(exc), None
    return RotationResult(
        tenant_id=tenant_id,
        outcome=outcome,
        rotation_id=rotation_id,
        old_key_id=old_key_id,
        error=error,
        seconds=round(time.monotonic() - started, 3),
        events=events,
    )


def _retire(
    services: Services,
    tenant_id: str,
    grace_seconds: float,
    state: SecretState,
    events: list[TenantEvent],
) -> RetireResult:
    with _retire_alarm(tenant_id, None, events):
        return retire_old_key(services, tenant_id, grace_seconds=grace_seconds, state=state)


@contextmanager
def _retire_alarm(tenant_id: str, key_id: str | None, events: list[TenantEvent]) -> Iterator[None]:
    """Forward compensation: a failed retire keeps its label (the durable record), adds the
    alarm event and fails the tenant visibly; reconcile and the next rotation retry it."""
    try:
        yield
    except Exception as exc:
        events.append(RetireFailedEvent(tenant_id=tenant_id, key_id=key_id, error=error_text(exc)))
        raise RetireFailed(tenant_id, key_id, type(exc).__name__) from exc


def error_text(exc: BaseException) -> str:
    """One line about a failure, safe to store: the tool's own messages hold no key, and
    anything else passes the redactor."""
    text = str(exc) if isinstance(exc, TenantKeysError) else f"{type(exc).__name__}: {exc}"
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def rotation_targets(services: Services, tenants: list[str] | Literal["all"]) -> list[str]:
    """The tenant ids to rotate, each valid and onboarded, checked before any side effect.
    `all`: every tenant with a secret under the prefix, except those being offboarded."""
    if tenants == "all":
        listed = services.store.iter_tenant_tags()
        return sorted(tenant_id for tenant_id, tags in listed if TAG_OFFBOARDING not in tags)
    if not tenants:
        raise BadInput("no tenants given: name tenants or pass 'all'")
    tenant_ids = [validate_tenant_id(t) for t in dict.fromkeys(tenants)]
    for tenant_id in tenant_ids:
        services.store.describe(tenant_id)  # TenantNotFound says how to onboard it
    return tenant_ids
