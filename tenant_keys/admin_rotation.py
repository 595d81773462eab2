"""Rotation of the admin key: create → test → promote → retire, on the admin key secret.

The tenant rotation's protocol (`tenant_keys.rotation`) on the one secret that holds the key
every flow acts with, so the same reasoning holds: two writes (the new key stored as
AWSPENDING, AWSCURRENT moved onto it by compare-and-swap; AWSPENDING left on the current
version is "finished"), the old key named by the current record (`previous_key_id`) and its
life read from LangSmith's listing, every step first reading where the labels stand, so a rerun
after a crash at any point converges and never mints a second key. What differs:

- **create** mints with the current admin key a key of the same kind, role and scope
  (`AdminScope`), described `tenant-keys admin rotation=<id>`.
- **test** uses the new key itself: it authenticates and it may list, create and delete keys
  where tenants' keys live (a short-lived probe key). A failure deletes it; the old key stays.
- **retire**, after `admin_grace_seconds`: the old key is deleted *with the new key*, and only
  once the new key is shown to work (the tool never deletes the key it may be running with
  before its successor is proven), once LangSmith lists it as the tool's admin key, and its
  death is proven by its own 401.

The caller passes the lock that keeps fan-outs out while the key changes (`AdminLock`; the
Prefect one is `tasks.admin_lock`). Processes that read the old key keep working: their client
re-reads the secret on a 401 (`tenant_keys.admin_key`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, Field, SecretStr, SerializeAsAny

from tenant_keys import minting
from tenant_keys.admin_keys import (
    AdminKeyTestFailed,
    AdminScope,
    owned,
    prove_rights,
    record_of,
    works,
)
from tenant_keys.admin_layout import AdminKeyRecord, admin_key_description
from tenant_keys.admin_secret import ADMIN_SUBJECT, AdminSecretStore
from tenant_keys.errors import ConfigError, SecretStoreError, TenantKeysError, error_text
from tenant_keys.events import AdminKeyRotatedEvent, AdminRetireFailedEvent, TenantEvent
from tenant_keys.keys import rotation_tokens
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import CURRENT, PENDING, PREVIOUS, TAG_ISOLATION, TAG_WORKSPACE, SecretState
from tenant_keys.lifetime import KeyLifetime
from tenant_keys.models import utcnow
from tenant_keys.rotation import PendingKey, RetireResult
from tenant_keys.services import Services

Outcome = Literal["rotated", "already-rotated", "waiting", "failed", "retire-failed"]
FAILED: tuple[Outcome, ...] = ("failed", "retire-failed")
# How long a deleted admin key may still be accepted before the retire calls it a failure.
DEAD_WITHIN_SECONDS = 5.0

PLAIN_KEY_REFUSED = (
    "the admin key comes from TENANT_KEYS_LANGSMITH_ADMIN_KEY: rotate-admin cannot store the key "
    "it would mint; keep it in Secrets Manager instead (README, The admin key: "
    "`tenant-keys admin-key init`, then TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET)"
)


class AdminLock(Protocol):
    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the admin key to itself for the `with` block: no fan-out that uses it runs
        meanwhile. Raises `LockUnavailable` if it cannot be had in time."""
        ...


class NoAdminLock:
    """Holds nothing: for the core's tests and one-person experiments, where no fan-out runs."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        yield


class AdminRetireFailed(TenantKeysError):
    """The old admin key survived its retire: LangSmith still lists it, and the current record
    names it, so the next rotation retries it first."""

    def __init__(self, key_id: str | None, cause: str) -> None:
        super().__init__(
            f"AdminRetireFailed: old admin key {key_id} was not deleted ({cause}); the next "
            "`tenant-keys rotate-admin` retries it, and its expiry bounds the exposure"
        )
        self.key_id = key_id


class AdminRotationResult(BaseModel):
    """What happened to the admin key: ids only. `events` are for the caller to emit."""

    outcome: Outcome
    rotation_id: str
    old_key_id: str | None = None
    new_key_id: str | None = None
    waiting_seconds: float = 0.0
    error: str | None = None
    seconds: float = 0.0
    events: list[SerializeAsAny[TenantEvent]] = Field(default_factory=list, exclude=True)

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED


def admin_store(services: Services) -> AdminSecretStore:
    """The admin key secret, or the one-line refusal when the key comes from the environment."""
    if services.settings.langsmith_admin_key is not None or services.admin_secret is None:
        raise ConfigError(PLAIN_KEY_REFUSED)
    return services.admin_secret


# -- the steps -------------------------------------------------------------------------------


def create_pending_admin_key(
    services: Services,
    store: AdminSecretStore,
    rotation_id: str,
    state: SecretState,
    current: AdminKeyRecord,
) -> PendingKey[AdminKeyRecord] | None:
    """Step 1. Resume an unfinished AWSPENDING (on a version other than AWSCURRENT's), or mint a
    key with the current one and store it at once as AWSPENDING: one write. None: this rotation
    was promoted before. `state` and `current` are the secret and its AWSCURRENT record."""
    current_version, pending = state.version_with(CURRENT), state.version_with(PENDING)
    tokens = rotation_tokens(ADMIN_SUBJECT, rotation_id)
    if current_version in tokens or any(
        token in state.versions and token != pending for token in tokens
    ):
        return None  # this rotation's version is (or was) current
    scope = AdminScope.of(current)
    acting = services.langsmith.with_key(current.api_key)
    if pending is not None and pending != current_version:
        record = store.read_admin(stage=PENDING, version_id=pending)
        # Never resume a key that is not provably the tool's admin key (`NotOwned`).
        mine = owned(acting, scope, record.key_id)
        if mine and works(services.langsmith.with_key(record.api_key), AdminScope.of(record)):
            return PendingKey(token=pending, key_id=record.key_id, resumed=True, record=record)
        if mine:  # listed but refused (expired): delete it; the next write moves the label
            scope.delete(acting, record.key_id)

    lifetime = KeyLifetime(acting, services.settings.admin_key_lifetime_days)
    created = minting.mint(acting, scope, admin_key_description(rotation_id), lifetime)
    record = record_of(created, scope, rotation_id, previous_key_id=current.key_id)
    try:
        for token in tokens:
            try:
                store.put_admin_version(record, token=token, stage=PENDING)
            except SecretStoreError as exc:
                if exc.code == "ResourceExistsException":
                    continue  # an earlier, rolled-back attempt of this rotation used that token
                raise
            return PendingKey(token=token, key_id=created.id, resumed=False, record=record)
        raise SecretStoreError(
            "PutSecretValue", store.secret_id, "TooManyAttempts", "start a new rotation"
        )
    except BaseException:
        scope.delete(acting, created.id)  # no admin key outlives a failed store
        raise


def test_pending_admin_key(services: Services, pending: PendingKey[AdminKeyRecord]) -> None:
    """Step 2. The pending key authenticates and has the rights the flows need
    (`prove_rights`); `AdminKeyTestFailed` otherwise."""
    record = pending.record
    prove_rights(
        services.langsmith.with_key(record.api_key),
        AdminScope.of(record),
        record.key_id,
        record.rotation_id,
        tenant_workspace=_a_tenant_workspace(services),
        shared_workspace=services.settings.langsmith_workspace_id,
    )


def discard_pending_admin_key(
    services: Services,
    store: AdminSecretStore,
    current: AdminKeyRecord,
    pending: PendingKey[AdminKeyRecord],
) -> None:
    """Undo steps 1-2: delete the new key with the current one (if LangSmith lists it as the
    tool's; gone is fine), then drop AWSPENDING. The current key stays."""
    scope = AdminScope.of(current)
    acting = services.langsmith.with_key(current.api_key)
    if owned(acting, scope, pending.key_id):
        scope.delete(acting, pending.key_id)
    store.remove_label(ADMIN_SUBJECT, PENDING, from_version=pending.token)


def promote_pending_admin_key(
    store: AdminSecretStore, pending: PendingKey[AdminKeyRecord], state: SecretState
) -> None:
    """Step 3. Move AWSCURRENT to the pending version, a compare-and-swap from the version that
    was current (one write), as the tenant rotation's `promote_pending_key` does. Secrets
    Manager moves AWSPREVIOUS onto the old version; AWSPENDING stays on the new current one."""
    current = state.version_with(CURRENT)
    if current != pending.token:
        store.move_label(ADMIN_SUBJECT, CURRENT, to_version=pending.token, from_version=current)


def retire_previous_admin_key(
    services: Services,
    store: AdminSecretStore,
    current: AdminKeyRecord,
    *,
    grace_seconds: float,
    key_id: str | None = None,
) -> RetireResult:
    """Step 4. Delete the key the current one replaced (`key_id`, by default the one the
    current record names) if LangSmith still lists it as the tool's admin key; no write to the
    store. Reports the seconds left while the grace window is open. The old key is deleted with
    the current one, only once the current one is shown to work, and proven dead by its 401."""
    old = key_id or current.previous_key_id
    if old is None or old == current.key_id:
        return RetireResult()
    scope = AdminScope.of(current)
    acting = services.langsmith.with_key(current.api_key)
    # Never delete the key a process may be running with before its successor is proven.
    if not works(acting, scope):
        raise AdminRetireFailed(old, "the current admin key is not accepted: kept the old one")
    if not owned(acting, scope, old):  # gone already (`NotOwned`: not the tool's, left alone)
        return RetireResult()
    left = (current.issued_at + timedelta(seconds=grace_seconds) - utcnow()).total_seconds()
    if left > 0:
        return RetireResult(key_id=old, waiting_seconds=left)
    scope.delete(acting, old)
    _prove_dead(services, store, scope, acting, old)
    return RetireResult(key_id=old)


def _prove_dead(
    services: Services,
    store: AdminSecretStore,
    scope: AdminScope,
    acting: LangSmithAdmin,
    key_id: str,
) -> None:
    """A delete is proven by the deleted key's own 401, not by the admin API's answer: asked
    with the key itself, which AWSPREVIOUS holds after a promotion."""
    key = _key_of(store, key_id)
    if key is None:  # an older version holds it: the listing is the proof left
        if owned(acting, scope, key_id):
            raise AdminRetireFailed(key_id, "LangSmith still lists it after the delete")
        return
    probe = services.langsmith.with_key(key)
    deadline = time.monotonic() + DEAD_WITHIN_SECONDS
    while works(probe, scope):
        if time.monotonic() > deadline:
            raise AdminRetireFailed(key_id, "LangSmith still accepts it after the delete")
        time.sleep(0.5)


def _key_of(store: AdminSecretStore, key_id: str) -> SecretStr | None:
    """The plaintext of `key_id` if the AWSPREVIOUS version holds it."""
    try:
        previous = store.read_admin(stage=PREVIOUS)
    except TenantKeysError:
        return None
    return previous.api_key if previous.key_id == key_id else None


def _a_tenant_workspace(services: Services) -> str | None:
    """The workspace of some workspace-mode tenant, where the flows mint scoped keys."""
    for _, tags in services.store.iter_tenant_tags():
        if tags.get(TAG_ISOLATION) == "workspace" and tags.get(TAG_WORKSPACE):
            return tags[TAG_WORKSPACE]
    return None


# -- the driver ------------------------------------------------------------------------------


def rotate_admin(
    services: Services, rotation_id: str, *, retire_now: bool, lock: AdminLock
) -> AdminRotationResult:
    """The protocol for the admin key, under `lock`. Refuses (`ConfigError`) when the key comes
    from the environment; any other failure is the result's outcome, never an exception."""
    store = admin_store(services)
    started = time.monotonic()
    events: list[TenantEvent] = []

    def result(
        outcome: Outcome,
        *,
        old_key_id: str | None = None,
        new_key_id: str | None = None,
        waiting_seconds: float = 0.0,
        error: str | None = None,
    ) -> AdminRotationResult:
        return AdminRotationResult(
            outcome=outcome,
            rotation_id=rotation_id,
            old_key_id=old_key_id,
            new_key_id=new_key_id,
            waiting_seconds=waiting_seconds,
            error=error,
            seconds=round(time.monotonic() - started, 3),
            events=events,
        )

    try:
        with lock.exclusive():
            state = store.describe_admin()
            current = store.read_admin()
            # An earlier rotation's old key must be gone before this one replaces the current.
            grace = services.settings.admin_grace_seconds
            with _retire_alarm(current.previous_key_id, events):
                earlier = retire_previous_admin_key(services, store, current, grace_seconds=grace)
            if earlier.waiting_seconds > 0:
                return result(
                    "waiting",
                    old_key_id=earlier.key_id,
                    waiting_seconds=round(earlier.waiting_seconds, 1),
                    error=f"the previous admin key waits {earlier.waiting_seconds:.0f} s more "
                    "for its grace window",
                )
            pending = create_pending_admin_key(services, store, rotation_id, state, current)
            if pending is None:
                return result("already-rotated")
            try:
                test_pending_admin_key(services, pending)
            except AdminKeyTestFailed:
                discard_pending_admin_key(services, store, current, pending)
                raise
            promote_pending_admin_key(store, pending, state)
            replaced = current.key_id
            events.append(
                AdminKeyRotatedEvent(
                    rotation_id=rotation_id, key_id=pending.key_id, old_key_id=replaced
                )
            )
            if retire_now:
                # A resumed key may have been minted while another was current: both go.
                for old in dict.fromkeys((replaced, pending.record.previous_key_id)):
                    with _retire_alarm(old, events):
                        retire_previous_admin_key(
                            services, store, pending.record, grace_seconds=0.0, key_id=old
                        )
            return result("rotated", new_key_id=pending.key_id, old_key_id=replaced)
    except Exception as exc:
        outcome: Outcome = "retire-failed" if isinstance(exc, AdminRetireFailed) else "failed"
        return result(outcome, error=error_text(exc))


def retire_admin(services: Services, rotation_id: str, *, lock: AdminLock) -> AdminRotationResult:
    """Retire the key the current admin key replaced once its grace window has passed (the
    flow's second pass)."""
    store = admin_store(services)
    started = time.monotonic()
    events: list[TenantEvent] = []
    old_key_id, error, waiting = None, None, 0.0
    try:
        with lock.exclusive():
            current = store.read_admin()
            old_key_id = current.previous_key_id
            with _retire_alarm(old_key_id, events):
                retired = retire_previous_admin_key(
                    services, store, current, grace_seconds=services.settings.admin_grace_seconds
                )
        waiting = retired.waiting_seconds
        outcome: Outcome = "waiting" if waiting > 0 else "rotated"
    except Exception as exc:
        outcome = "retire-failed" if isinstance(exc, AdminRetireFailed) else "failed"
        error = error_text(exc)
    return AdminRotationResult(
        outcome=outcome,
        rotation_id=rotation_id,
        old_key_id=old_key_id,
        waiting_seconds=round(waiting, 1),
        error=error,
        seconds=round(time.monotonic() - started, 3),
        events=events,
    )


@contextmanager
def _retire_alarm(key_id: str | None, events: list[TenantEvent]) -> Iterator[None]:
    """Forward compensation: a failed retire leaves the old key listed at LangSmith (the current
    record still names it), adds the alarm event and fails the run visibly; the next rotation
    retries it first, and the key's expiry bounds the exposure."""
    try:
        yield
    except Exception as exc:
        events.append(AdminRetireFailedEvent(key_id=key_id, error=error_text(exc)))
        if isinstance(exc, AdminRetireFailed):
            raise
        raise AdminRetireFailed(key_id, type(exc).__name__) from exc
