"""The steps of moving a tenant from project isolation to workspace isolation (docs/isolation.md).

new workspace and project → new key (an org service key scoped to that workspace), stored
beside the current one under `MIGRATING` → test it → record the mode in the secret's tags →
promote it (compare-and-swap on AWSCURRENT) → revoke every shared-workspace key of the tenant.
Apps pick the new key (and with it the new workspace and project) up from the secret, so
traces go to the new place from then on; the old traces stay in the old project.

Every step is safe to repeat: a rerun after a crash at any point finishes the move and never
mints a second key for it. `migrate` drives the steps; the caller holds the tenant's lock.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from tenant_keys.errors import BadInput, KeyTestFailed
from tenant_keys.events import TenantEvent, TenantMigratedEvent
from tenant_keys.keys import (
    PROJECT_HOME,
    KeyHome,
    KeyRef,
    check_key,
    delete_owned,
    mint_and_store,
    workspace_home,
)
from tenant_keys.langsmith import Project
from tenant_keys.layout import CURRENT, MIGRATING, PENDING, RETIRE_PENDING, TAG_PROJECT, SecretState
from tenant_keys.models import parse_key_description, project_description, project_name
from tenant_keys.rotation import discard_pending_key
from tenant_keys.services import Services
from tenant_keys.workspaces import ensure_tenant_workspace

MIGRATION_ROTATION = "migrate-workspace"


class MigrationTarget(BaseModel):
    """Where the tenant moves to: ids only."""

    model_config = ConfigDict(frozen=True)

    home: KeyHome
    project_id: str
    project_name: str


class MigrationResult(BaseModel):
    tenant_id: str
    outcome: Literal["migrated", "already-migrated"]
    workspace_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None
    revoked_key_ids: list[str] = []
    seconds: float = 0.0
    events: list[SerializeAsAny[TenantEvent]] = Field(default_factory=list, exclude=True)


def check_migratable(state: SecretState, to: str) -> None:
    """Only project → workspace, only for a live tenant: a one-line error before any change."""
    if to != "workspace":
        raise BadInput(
            f"cannot migrate to {to!r}: only `--to workspace` is supported (moving a tenant back "
            "into the shared workspace would give up its isolation)"
        )
    if state.leaving:
        raise BadInput(f"secret {state.name} belongs to an offboarded tenant: nothing to migrate")


def is_migrated(services: Services, tenant_id: str, state: SecretState) -> bool:
    """The tags say workspace mode and AWSCURRENT holds a key of that workspace."""
    home = KeyHome.of(state.tags)
    if home.mode != "workspace":
        return False
    return services.store.read(tenant_id).workspace_id == home.workspace_id


def discard_unfinished_rotation(services: Services, tenant_id: str, state: SecretState) -> None:
    """An AWSPENDING key of an unfinished rotation is a shared-workspace key: drop it first."""
    pending = state.version_with(PENDING)
    if pending is None or pending == state.version_with(CURRENT):
        return
    record = services.store.read(tenant_id, stage=PENDING, version_id=pending)
    discard_pending_key(services, tenant_id, version_id=pending, key_id=record.key_id)


def ensure_target(services: Services, tenant_id: str) -> MigrationTarget:
    """The tenant's own workspace and its project there (found, or created)."""
    workspace = ensure_tenant_workspace(services.langsmith, tenant_id)
    project: Project = services.langsmith.ensure_project(
        project_name(tenant_id),
        description=project_description(tenant_id),
        workspace_id=workspace.id,
    )
    return MigrationTarget(
        home=workspace_home(workspace.id), project_id=project.id, project_name=project.name
    )


def store_new_key(
    services: Services, tenant_id: str, target: MigrationTarget, state: SecretState
) -> KeyRef:
    """The new key under `MIGRATING`: resumed if an earlier run stored it and it still works,
    else minted now (a failed store deletes it: `mint_and_store`). A stored key that no longer
    authenticates (deleted meanwhile, e.g. by reconcile as unreferenced) is dropped first."""
    store = services.store
    version = state.version_with(MIGRATING)
    if version is not None:
        record = store.read(tenant_id, stage=MIGRATING, version_id=version)
        resumed = KeyRef(
            tenant_id=tenant_id, key_id=record.key_id, short_key="", version_id=version
        )
        if services.langsmith.authenticates(record.api_key, workspace_id=record.workspace_id):
            return resumed
        discard_new_key(services, tenant_id, resumed, target)
    base = store.read(tenant_id).model_copy(
        update={
            "project_id": target.project_id,
            "project_name": target.project_name,
            "workspace_id": target.home.workspace_id,
        }
    )
    return mint_and_store(
        services, tenant_id, MIGRATION_ROTATION, base=base, stage=MIGRATING, home=target.home
    )


def test_new_key(services: Services, tenant_id: str, new: KeyRef) -> None:
    record = services.store.read(tenant_id, stage=MIGRATING, version_id=new.version_id)
    check_key(services.langsmith, record, tenant_id)


def discard_new_key(
    services: Services, tenant_id: str, new: KeyRef, target: MigrationTarget
) -> None:
    """Undo: delete the new key (404 is fine), drop `MIGRATING`. The old key stays current."""
    assert new.version_id is not None
    delete_owned(services, tenant_id, target.home, new.key_id)
    services.store.remove_label(tenant_id, MIGRATING, from_version=new.version_id)


def promote_new_key(
    services: Services, tenant_id: str, new: KeyRef, target: MigrationTarget, state: SecretState
) -> None:
    """Record the new mode in the tags, then move AWSCURRENT to the new key (compare-and-swap)
    and drop `MIGRATING`. Tags first: a rerun after a crash in between sees the mode and
    finishes the move."""
    store = services.store
    assert new.version_id is not None
    store.set_tags(tenant_id, {**target.home.tags(), TAG_PROJECT: target.project_id})
    current = state.version_with(CURRENT)
    if current != new.version_id:
        store.move_label(tenant_id, CURRENT, to_version=new.version_id, from_version=current)
    store.remove_label(tenant_id, MIGRATING, from_version=new.version_id)


def revoke_shared_workspace_keys(
    services: Services, tenant_id: str, state: SecretState
) -> list[str]:
    """Delete every shared-workspace key minted for the tenant (its old current key, a key
    waiting for retirement, any leftover), then drop a RETIRE_PENDING label: its key is gone."""
    langsmith = services.langsmith
    mine = [
        key.id
        for key in PROJECT_HOME.list_keys(langsmith)
        if (parsed := parse_key_description(key.description)) and parsed[0] == tenant_id
    ]
    revoked = [key_id for key_id in mine if PROJECT_HOME.delete(langsmith, key_id)]
    retiring = state.version_with(RETIRE_PENDING)
    if retiring is not None:
        services.store.remove_label(tenant_id, RETIRE_PENDING, from_version=retiring)
    return revoked


# -- the driver ------------------------------------------------------------------------------


def migrate(services: Services, tenant_id: str) -> MigrationResult:
    """Move one tenant; the caller holds its lock. Raises on failure (a failed key test first
    deletes the new key: the tenant stays as it was)."""
    store = services.store
    started = time.monotonic()
    state = store.describe(tenant_id)
    if is_migrated(services, tenant_id, state):
        # Finished before, or stopped after the promotion: make sure the old keys are gone.
        revoked = revoke_shared_workspace_keys(services, tenant_id, state)
        outcome: Literal["migrated", "already-migrated"] = (
            "migrated" if revoked else "already-migrated"
        )
    else:
        discard_unfinished_rotation(services, tenant_id, state)
        target = ensure_target(services, tenant_id)
        state = store.describe(tenant_id)
        new = store_new_key(services, tenant_id, target, state)
        try:
            test_new_key(services, tenant_id, new)
        except KeyTestFailed:
            discard_new_key(services, tenant_id, new, target)
            raise
        promote_new_key(services, tenant_id, new, target, state)
        revoked = revoke_shared_workspace_keys(services, tenant_id, store.describe(tenant_id))
        outcome = "migrated"
    record = store.read(tenant_id)
    home = KeyHome.of(store.describe(tenant_id).tags)
    events: list[TenantEvent] = []
    if outcome == "migrated":
        events.append(
            TenantMigratedEvent(
                tenant_id=tenant_id,
                workspace_id=home.workspace_id,
                project_id=record.project_id,
                key_id=record.key_id,
                revoked_key_ids=revoked,
            )
        )
    return MigrationResult(
        tenant_id=tenant_id,
        outcome=outcome,
        workspace_id=home.workspace_id,
        project_id=record.project_id,
        key_id=record.key_id,
        revoked_key_ids=revoked,
        seconds=round(time.monotonic() - started, 3),
        events=events,
    )
