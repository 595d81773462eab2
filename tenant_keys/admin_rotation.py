"""Rotation of the admin key: create → test → promote → retire, on the admin key secret.

The tenant rotation's protocol (`tenant_keys.rotation`) on the one secret that holds the key
every flow acts with, so the same reasoning holds: every step first reads where the labels say
the rotation stands, a rerun after a crash at any point converges, and a rotation never mints
a second key. What differs:

- **create** mints with the current admin key a key of the same kind, role and scope
  (`AdminScope`), described `tenant-keys admin rotation=<id>`.
- **test** uses the new key itself: it authenticates and it may list, create and delete keys
  where tenants' keys live (a short-lived probe key). A failure deletes it; the old key stays.
- **promote** is the tenant rotation's own step (`promote_pending_key`): AWSCURRENT moved by
  compare-and-swap, the old version marked RETIRE_PENDING, AWSPENDING dropped last.
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
from dataclasses import replace
from datetime import timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, Field, SecretStr, SerializeAsAny

from tenant_keys.admin_keys import (
    AdminKeyTestFailed,
    AdminScope,
    mint_admin_key,
    owned,
    prove_rights,
    record_of,
    works,
)
from tenant_keys.admin_layout import admin_key_description
from tenant_keys.admin_secret import ADMIN_SUBJECT, AdminSecretStore
from tenant_keys.errors import ConfigError, SecretStoreError, TenantKeysError
from tenant_keys.events import AdminKeyRotatedEvent, AdminRetireFailedEvent, TenantEvent
from tenant_keys.keys import rotation_tokens
from tenant_keys.layout import (
    CURRENT,
    PENDING,
    RETIRE_PENDING,
    TAG_ISOLATION,
    TAG_WORKSPACE,
    SecretState,
)
from tenant_keys.lifetime import KeyLifetime
from tenant_keys.models import utcnow
from tenant_keys.rotation import PendingKey, RetireResult, error_text, promote_pending_key
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
    """The old admin key survived its retire; its label stays as the durable record."""

    def __init__(self, key_id: str | None, cause: str) -> None:
        super().__init__(
            f"AdminRetireFailed: old admin key {key_id} was not deleted ({cause}); it keeps its "
            "RETIRE_PENDING label and the next `tenant-keys rotate-admin` retries it"
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
    services: Services, store: AdminSecretStore, rotation_id: str, state: SecretState
) -> PendingKey | None:
    """Step 1. Resume an unfinished AWSPENDING, or mint a key with the current one and store it
    at once as AWSPENDING. None: this rotation already completed."""
    current_version, pending_version = state.version_with(CURRENT), state.version_with(PENDING)
    if current_version is None:
        raise ConfigError(f"the admin key secret {store.secret_id} has no AWSCURRENT version")
    current = store.read_admin()
    scope = AdminScope.of(current)
    acting = services.langsmith.with_key(current.api_key)
    if pending_version is not None:
        if pending_version == current_version:  # promoted by a run that stopped before the end
            return PendingKey(token=pending_version, key_id=current.key_id, resumed=True)
        record = store.read_admin(stage=PENDING, version_id=pending_version)
        mine = owned(acting, scope, record.key_id)  # `NotOwned`: an edited secret, left alone
        fresh = services.langsmith.with_key(record.api_key)
        if mine and works(fresh, AdminScope.of(record)):
            return PendingKey(
                token=pending_version,
                key_id=record.key_id,
                resumed=True,
                replaces_key_id=current.key_id,
            )
        # Gone at LangSmith (deleted, expired): discard it and mint afresh.
        discard_pending_admin_key(
            services, store, PendingKey(token=pending_version, key_id=record.key_id, resumed=True)
        )

    tokens = rotation_tokens(ADMIN_SUBJECT, rotation_id)
    if any(token in state.versions and token != pending_version for token in tokens):
        return None  # this rotation's version carries a label: it was promoted before

    lifetime = KeyLifetime(acting, services.settings.admin_key_lifetime_days)
    created = mint_admin_key(acting, scope, admin_key_description(rotation_id), lifetime)
    record = record_of(created, scope, rotation_id)
    try:
        for token in tokens:
            try:
                store.put_admin_version(record, token=token, stage=PENDING)
            except SecretStoreError as exc:
                if exc.code == "ResourceExistsException":
                    continue  # an earlier, rolled-back attempt of this rotation used that token
                raise
            return PendingKey(
                token=token, key_id=created.id, resumed=False, replaces_key_id=current.key_id
            )
        raise SecretStoreError(
            "PutSecretValue", store.secret_id, "TooManyAttempts", "start a new rotation"
        )
    except BaseException:
        scope.delete(acting, created.id)  # no admin key outlives a failed store
        raise


def test_pending_admin_key(
    services: Services, store: AdminSecretStore, pending: PendingKey
) -> None:
    """Step 2. The pending key, read back from the store, authenticates and has the rights the
    flows need (`prove_rights`); `AdminKeyTestFailed` otherwise."""
    record = store.read_admin(stage=PENDING, version_id=pending.token)
    prove_rights(
        services.langsmith.with_key(record.api_key),
        AdminScope.of(record),
        record.key_id,
        record.rotation_id,
        tenant_workspace=_a_tenant_workspace(services),
        shared_workspace=services.settings.langsmith_workspace_id,
    )


def discard_pending_admin_key(
    services: Services, store: AdminSecretStore, pending: PendingKey
) -> None:
    """Undo steps 1-2: delete the new key with the current one (if LangSmith lists it as the
    tool's; gone is fine), then drop AWSPENDING. The current key stays."""
    current = store.read_admin()
    scope = AdminScope.of(current)
    acting = services.langsmith.with_key(current.api_key)
    if owned(acting, scope, pending.key_id):
        scope.delete(acting, pending.key_id)
    store.remove_label(ADMIN_SUBJECT, PENDING, from_version=pending.token)


def promote_pending_admin_key(
    services: Services, store: AdminSecretStore, pending: PendingKey, state: SecretState
) -> str | None:
    """Step 3: the tenant rotation's promotion, on the admin secret. Returns the old version."""
    return promote_pending_key(replace(services, store=store), ADMIN_SUBJECT, pending, state)


def retire_old_admin_key(
    services: Services, store: AdminSecretStore, *, grace_seconds: float, state: SecretState
) -> RetireResult:
    """Step 4. Delete the RETIRE_PENDING version's key once the grace window is over, then drop
    the label; reports the seconds left while the window is open. The label goes only after the
    old key is proven dead, so a failure leaves the durable record for the next run."""
    version = state.version_with(RETIRE_PENDING)
    if version is None:
        return RetireResult()
    old = store.read_admin(stage=RETIRE_PENDING, version_id=version)
    current = store.read_admin()
    left = (current.issued_at + timedelta(seconds=grace_seconds) - utcnow()).total_seconds()
    if left > 0:
        return RetireResult(key_id=old.key_id, waiting_seconds=left)
    if old.key_id != current.key_id:  # never delete the live key, whatever the labels say
        acting = services.langsmith.with_key(current.api_key)
        if not works(acting, AdminScope.of(current)):
            raise AdminRetireFailed(
                old.key_id, "the current admin key is not accepted: kept the old one"
            )
        old_scope = AdminScope.of(old)
        if owned(acting, old_scope, old.key_id):
            old_scope.delete(acting, old.key_id)
        _prove_dead(services, old_scope, old.key_id, old.api_key)
    store.remove_label(ADMIN_SUBJECT, RETIRE_PENDING, from_version=version)
    return RetireResult(key_id=old.key_id if old.key_id != current.key_id else None)


def _prove_dead(services: Services, scope: AdminScope, key_id: str, api_key: SecretStr) -> None:
    """A delete is proven by the deleted key's own 401, not by the admin API's answer."""
    probe = services.langsmith.with_key(api_key)
    deadline = time.monotonic() + DEAD_WITHIN_SECONDS
    while works(probe, scope):
        if time.monotonic() > deadline:
            raise AdminRetireFailed(key_id, "LangSmith still accepts it after the delete")
        time.sleep(0.5)


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
            if state.version_with(RETIRE_PENDING):
                # An earlier rotation's old key must be gone before this one marks another.
                grace = services.settings.admin_grace_seconds
                earlier = _retire(services, store, grace, state, events)
                if earlier.waiting_seconds > 0:
                    return result(
                        "waiting",
                        old_key_id=earlier.key_id,
                        waiting_seconds=round(earlier.waiting_seconds, 1),
                        error=f"the previous admin key waits {earlier.waiting_seconds:.0f} s more "
                        "for its grace window",
                    )
                state = store.describe_admin()
            pending = create_pending_admin_key(services, store, rotation_id, state)
            if pending is None:
                return result("already-rotated")
            try:
                test_pending_admin_key(services, store, pending)
            except AdminKeyTestFailed:
                discard_pending_admin_key(services, store, pending)
                raise
            old_version = promote_pending_admin_key(services, store, pending, state)
            events.append(
                AdminKeyRotatedEvent(
                    rotation_id=rotation_id,
                    key_id=pending.key_id,
                    old_key_id=pending.replaces_key_id,
                )
            )
            if not retire_now or old_version is None:
                return result(
                    "rotated", new_key_id=pending.key_id, old_key_id=pending.replaces_key_id
                )
            retired = _retire(services, store, 0.0, store.describe_admin(), events)
            return result("rotated", new_key_id=pending.key_id, old_key_id=retired.key_id)
    except Exception as exc:
        outcome: Outcome = "retire-failed" if isinstance(exc, AdminRetireFailed) else "failed"
        return result(outcome, error=error_text(exc))


def retire_admin(services: Services, rotation_id: str, *, lock: AdminLock) -> AdminRotationResult:
    """Retire the old admin key once its grace window has passed (the flow's second pass)."""
    store = admin_store(services)
    started = time.monotonic()
    events: list[TenantEvent] = []
    try:
        with lock.exclusive():
            state = store.describe_admin()
            grace = services.settings.admin_grace_seconds
            retired = _retire(services, store, grace, state, events)
        outcome: Outcome = "waiting" if retired.waiting_seconds > 0 else "rotated"
        old_key_id, error, waiting = retired.key_id, None, retired.waiting_seconds
    except Exception as exc:
        outcome = "retire-failed" if isinstance(exc, AdminRetireFailed) else "failed"
        old_key_id, error, waiting = None, error_text(exc), 0.0
    return AdminRotationResult(
        outcome=outcome,
        rotation_id=rotation_id,
        old_key_id=old_key_id,
        waiting_seconds=round(waiting, 1),
        error=error,
        seconds=round(time.monotonic() - started, 3),
        events=events,
    )


def _retire(
    services: Services,
    store: AdminSecretStore,
    grace_seconds: float,
    state: SecretState,
    events: list[TenantEvent],
) -> RetireResult:
    """Forward compensation: a failed retire keeps its label, adds the alarm event and fails the
    run visibly; the next rotation retries it first."""
    try:
        return retire_old_admin_key(services, store, grace_seconds=grace_seconds, state=state)
    except Exception as exc:
        key_id = exc.key_id if isinstance(exc, AdminRetireFailed) else None
        events.append(AdminRetireFailedEvent(key_id=key_id, error=error_text(exc)))
        if isinstance(exc, AdminRetireFailed):
            raise
        raise AdminRetireFailed(key_id, type(exc).__name__) from exc
