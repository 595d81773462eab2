"""The steps of a key rotation, after Secrets Manager's rotation protocol.

create → test → promote → retire, each idempotent and resumable: every step
first reads where the secret's staging labels say the rotation stands, so a
rerun after a crash at any point picks up where the last run stopped and
never mints a second key for the same rotation. The order of the steps and
their compensation live in `flows/rotation.py`.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from tenant_keys.errors import SecretStoreError
from tenant_keys.keys import KeyScope, check_key, mint_and_store, rotation_tokens, tenant_scope
from tenant_keys.models import utcnow
from tenant_keys.secret_store import CURRENT, PENDING, PREVIOUS, RETIRE_PENDING, SecretState
from tenant_keys.services import Services


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


def create_pending_key(
    services: Services, tenant_id: str, rotation_id: str, state: SecretState
) -> PendingKey | None:
    """Step 1. Resume an unfinished AWSPENDING, or mint a key and store it at once as AWSPENDING.

    `state` is the secret as described before this step. Returns None when this
    rotation already completed (its version is or was current).
    """
    store, langsmith = services.store, services.langsmith
    current, pending = state.version_with(CURRENT), state.version_with(PENDING)
    if pending is not None:
        record = store.read(tenant_id, stage=PENDING, version_id=pending)
        if pending == current or langsmith.authenticates(
            record.api_key, workspace_id=record.workspace_id
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
    scope = KeyScope.of(state.tags)  # the tenant's isolation mode picks the key endpoints
    stored = mint_and_store(services, tenant_id, rotation_id, base=base, stage=PENDING, scope=scope)
    assert stored.version_id is not None
    return PendingKey(
        token=stored.version_id, key_id=stored.key_id, resumed=False, replaces_key_id=base.key_id
    )


def test_pending_key(services: Services, tenant_id: str, pending: PendingKey) -> None:
    """Step 2. The pending key, read back from the store, authenticates (bounded retries)."""
    record = services.store.read(tenant_id, stage=PENDING, version_id=pending.token)
    check_key(services.langsmith, record, tenant_id)


def discard_pending_key(services: Services, tenant_id: str, pending: PendingKey) -> None:
    """Undo steps 1-2: delete the new key (404 is fine), then drop AWSPENDING. The old key stays current."""
    tenant_scope(services, tenant_id).delete(services.langsmith, pending.key_id)
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
    """Step 4. Delete the RETIRE_PENDING version's key at LangSmith (404: already gone), then drop
    the label. Waits for nothing: while the grace window is open it reports the seconds left.

    The label is dropped only after the delete succeeded, so a failed delete leaves
    the durable record that reconcile and the next rotation act on.
    """
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
    retire_key(services, tenant_id, KeyScope.of(state.tags), version=version, key_id=old.key_id)
    return RetireResult(key_id=old.key_id)


def retire_key(
    services: Services, tenant_id: str, scope: KeyScope, *, version: str, key_id: str
) -> None:
    """Delete the key of the RETIRE_PENDING `version` in `scope` (404: already gone), then drop
    the label."""
    scope.delete(services.langsmith, key_id)
    services.store.remove_label(tenant_id, RETIRE_PENDING, from_version=version)
