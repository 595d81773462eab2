"""Reading what reconcile compares: each tenant's secret (as a `TenantSnapshot`) and the tool's
keys at LangSmith. Reads only; every write is in `flows/reconcile.py`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from tenant_keys.errors import CorruptSecret, SecretStoreError, TenantNotFound
from tenant_keys.keys import keys_by_mode
from tenant_keys.langsmith import LangSmithError
from tenant_keys.reconcile import OwnKey, TenantSnapshot, VersionInfo, own_keys
from tenant_keys.secret_store import (
    CURRENT,
    PENDING,
    PREVIOUS,
    RETIRE_PENDING,
    TAG_OFFBOARDING,
    SecretState,
    SecretStore,
)
from tenant_keys.services import Services


def list_own_keys(services: Services) -> list[OwnKey]:
    """Every key the tool minted: workspace keys of the shared workspace and org service keys
    of workspace-mode tenants (a call each); other keys are dropped here."""
    listed = keys_by_mode(services)
    return [key for mode, keys in listed.items() for key in own_keys(keys, mode)]


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
        current = _version(store, tenant_id, state, CURRENT)
        pending = _version(store, tenant_id, state, PENDING)
        on_current = pending is not None and pending.version_id == state.version_with(CURRENT)
        return TenantSnapshot(
            tenant_id=tenant_id,
            status="active",
            current=current,
            pending=pending,
            retire_pending=_version(store, tenant_id, state, RETIRE_PENDING),
            previous=_version(store, tenant_id, state, PREVIOUS) if on_current else None,
        )
    except (CorruptSecret, SecretStoreError, TenantNotFound) as exc:
        # TenantNotFound here: a label on a version without a value (not written by this tool).
        return TenantSnapshot(tenant_id=tenant_id, status="unreadable", problem=str(exc))


def snapshot_tenants(
    store: SecretStore, tenant_ids: Iterable[str], *, workers: int
) -> list[TenantSnapshot]:
    """Snapshots of many tenants, read concurrently (reads are cheap and plentiful: 10,000/s)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ids)))) as pool:
        return list(pool.map(lambda t: snapshot_tenant(store, t), ids))


def probe_liveness(
    services: Services, snapshot: TenantSnapshot, *, attempts: int = 3
) -> dict[str, bool]:
    """Which of the snapshot's keys authenticate right now: the ground truth, asked with each key
    itself (read from its version), so it costs none of the admin key's rate limit.

    A 401 is a definite no; transient failures are retried a few times, then raised, so a
    network blip is never mistaken for a dead key.
    """
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
        for attempt in range(attempts):
            try:
                live[version.key_id] = services.langsmith.authenticates(
                    record.api_key, workspace_id=record.workspace_id
                )
                break
            except LangSmithError as exc:
                if not exc.transient or attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
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
    )
