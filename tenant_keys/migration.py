"""The steps of moving a tenant from project isolation to workspace or tagged isolation
(docs/isolation.md).

the target (workspace: a new workspace and project; tagged: the same project, tagged, with the
tenant's role and access policy) → new key (workspace: an org service key scoped to that
workspace; tagged: a workspace key with the tenant's role), stored beside the current one under
`MIGRATING` → test it (tagged: the probe sees it confined) → record the mode in the secret's
tags → promote it (compare-and-swap on AWSCURRENT) → revoke every other shared-workspace key of
the tenant. Apps pick the new key (and with it the new workspace and project) up from the
secret, so traces go to the new place from then on; the old traces stay in the old project.

Every step is safe to repeat: a rerun after a crash at any point finishes the move and never
mints a second key for it. `migrate` drives the steps; the caller holds the tenant's lock.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from tenant_keys import tagged
from tenant_keys.errors import BadInput, IsolationNotProven, KeyTestFailed
from tenant_keys.events import TenantEvent, TenantMigratedEvent
from tenant_keys.keys import (
    PROJECT_HOME,
    KeyHome,
    KeyRef,
    delete_owned,
    mint_and_store,
    tagged_home,
    workspace_home,
)
from tenant_keys.langsmith import Project
from tenant_keys.layout import CURRENT, MIGRATING, PENDING, RETIRE_PENDING, TAG_PROJECT, SecretState
from tenant_keys.models import (
    IsolationMode,
    parse_key_description,
    project_description,
    project_name,
)
from tenant_keys.rotation import discard_pending_key
from tenant_keys.services import Services
from tenant_keys.workspaces import ensure_tenant_workspace

MIGRATION_ROTATION = "migrate-workspace"
MIGRATION_STOPPED = "the migration stopped: the tenant stays in project isolation, on its key"


def migration_rotation(to: IsolationMode) -> str:
    """The rotation id in the new key's description."""
    return MIGRATION_ROTATION if to == "workspace" else f"migrate-{to}"


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
    """Only project → workspace or project → tagged, only for a live tenant: a one-line error
    before any change."""
    if to not in ("workspace", "tagged"):
        raise BadInput(
            f"cannot migrate to {to!r}: only `--to workspace` or `--to tagged` is supported "
            "(moving a tenant back into the shared workspace would give up its isolation)"
        )
    if state.leaving:
        raise BadInput(f"secret {state.name} belongs to an offboarded tenant: nothing to migrate")
    current = KeyHome.of(state.tags).mode
    if current not in ("project", to):
        raise BadInput(
            f"secret {state.name} is in {current} isolation: only a tenant in project "
            f"isolation can be migrated to {to}"
        )


def is_migrated(services: Services, tenant_id: str, state: SecretState, to: str) -> bool:
    """The tags say the target mode and AWSCURRENT holds a key of it: workspace mode, a key of
    that workspace; tagged mode, no new key still waiting under `MIGRATING`."""
    home = KeyHome.of(state.tags)
    if home.mode != to:
        return False
    if home.mode == "tagged":
        return state.version_with(MIGRATING) is None
    return services.store.read(tenant_id).workspace_id == home.workspace_id


def discard_unfinished_rotation(services: Services, tenant_id: str, state: SecretState) -> None:
    """An AWSPENDING key of an unfinished rotation is a shared-workspace key: drop it first."""
    pending = state.version_with(PENDING)
    if pending is None or pending == state.version_with(CURRENT):
        return
    record = services.store.read(tenant_id, stage=PENDING, version_id=pending)
    discard_pending_key(services, tenant_id, version_id=pending, key_id=record.key_id)


def ensure_target(
    services: Services, tenant_id: str, to: IsolationMode = "workspace"
) -> MigrationTarget:
    """Workspace: the tenant's own workspace and its project there (found, or created). Tagged:
    its project in the shared workspace, tagged, with its role and access policy."""
    if to == "tagged":
        project = services.langsmith.ensure_project(
            project_name(tenant_id), description=project_description(tenant_id)
        )
        done = tagged.provision(services.langsmith, tenant_id, project, MIGRATION_STOPPED)
        home = tagged_home(done.role_id, done.policy_id, done.tag_value_id)
        return MigrationTarget(home=home, project_id=project.id, project_name=project.name)
    workspace = ensure_tenant_workspace(services.langsmith, tenant_id)
    found: Project = services.langsmith.ensure_project(
        project_name(tenant_id),
        description=project_description(tenant_id),
        workspace_id=workspace.id,
    )
    return MigrationTarget(
        home=workspace_home(workspace.id), project_id=found.id, project_name=found.name
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
        if services.langsmith.authenticates(
            record.api_key, workspace_id=record.workspace_id, project_id=record.project_id
        ):
            return resumed
        discard_new_key(services, tenant_id, resumed, target)
    current = store.read(tenant_id)
    base = current.model_copy(
        update={
            "project_id": target.project_id,
            "project_name": target.project_name,
            "workspace_id": target.home.workspace_id or current.workspace_id,
        }
    )
    rotation_id = migration_rotation(target.home.mode)
    return mint_and_store(
        services, tenant_id, rotation_id, base=base, stage=MIGRATING, home=target.home
    )


def test_new_key(
    services: Services, tenant_id: str, new: KeyRef, home: KeyHome = PROJECT_HOME
) -> None:
    """The new key authenticates; a tagged one is also seen confined to its project."""
    record = services.store.read(tenant_id, stage=MIGRATING, version_id=new.version_id)
    home.test(services.langsmith, record, tenant_id, consequence=MIGRATION_STOPPED)


def discard_new_key(
    services: Services, tenant_id: str, new: KeyRef, target: MigrationTarget
) -> None:
    """Undo: delete the new key (404 is fine), drop `MIGRATING`. The old key stays current."""
    assert new.version_id is not None
    delete_owned(services, tenant_id, target.home, new.key_id)
    services.store.remove_label(tenant_id, MIGRATING, from_version=new.version_id)


def undo_target(services: Services, tenant_id: str, target: MigrationTarget) -> None:
    """After a failed test towards tagged isolation: the tenant's policy, role and tag value go
    (the tenant in project mode uses none of them; its new key, which carried the role, is
    gone). A workspace is kept, as onboarding would reuse it."""
    if target.home.mode == "tagged":
        tagged.remove_access(services.langsmith, tenant_id)


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
    services: Services, tenant_id: str, state: SecretState, *, keep: str | None = None
) -> list[str]:
    """Delete every shared-workspace key minted for the tenant (its old current key, a key
    waiting for retirement, any leftover) but `keep` (a tagged tenant's new key is one too),
    then drop a RETIRE_PENDING label: its key is gone."""
    langsmith = services.langsmith
    mine = [
        key.id
        for key in PROJECT_HOME.list_keys(langsmith)
        if (parsed := parse_key_description(key.description))
        and parsed[0] == tenant_id
        and key.id != keep
    ]
    revoked = [key_id for key_id in mine if PROJECT_HOME.delete(langsmith, key_id)]
    retiring = state.version_with(RETIRE_PENDING)
    if retiring is not None:
        services.store.remove_label(tenant_id, RETIRE_PENDING, from_version=retiring)
    return revoked


# -- the driver ------------------------------------------------------------------------------


def migrate(services: Services, tenant_id: str, to: IsolationMode = "workspace") -> MigrationResult:
    """Move one tenant; the caller holds its lock. Raises on failure (a failed key test first
    deletes the new key: the tenant stays as it was)."""
    store = services.store
    started = time.monotonic()
    state = store.describe(tenant_id)
    if is_migrated(services, tenant_id, state, to):
        # Finished before, or stopped after the promotion: make sure the old keys are gone.
        current = store.read(tenant_id).key_id
        revoked = revoke_shared_workspace_keys(services, tenant_id, state, keep=current)
        outcome: Literal["migrated", "already-migrated"] = (
            "migrated" if revoked else "already-migrated"
        )
    else:
        discard_unfinished_rotation(services, tenant_id, state)
        target = ensure_target(services, tenant_id, to)
        state = store.describe(tenant_id)
        new = store_new_key(services, tenant_id, target, state)
        try:
            test_new_key(services, tenant_id, new, target.home)
        except (KeyTestFailed, IsolationNotProven):
            discard_new_key(services, tenant_id, new, target)
            undo_target(services, tenant_id, target)
            raise
        promote_new_key(services, tenant_id, new, target, state)
        revoked = revoke_shared_workspace_keys(
            services, tenant_id, store.describe(tenant_id), keep=new.key_id
        )
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
