"""Migration: move a tenant from project isolation (a project in the shared workspace) to
workspace isolation (a workspace of its own, an org service key scoped to it).

Under the tenant's lock: discard an unfinished rotation's pending key → ensure the workspace
and its project → mint and store the new key beside the current one → test it → record the
mode and promote the new key → revoke every shared-workspace key of the tenant. A failed test
deletes the new key and leaves the tenant as it was. The steps are in `tenant_keys.migrate`.
"""

from __future__ import annotations

import time
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.events import emit_tenant_event
from tasks.locks import ensure_tenant_locks, tenant_lock
from tenant_keys.errors import KeyTestFailed
from tenant_keys.keys import KeyScope
from tenant_keys.migrate import (
    check_migratable,
    discard_new_key,
    discard_unfinished_rotation,
    ensure_target,
    is_migrated,
    promote_new_key,
    revoke_shared_workspace_keys,
    store_new_key,
    test_new_key,
)
from tenant_keys.models import validate_tenant_id
from tenant_keys.services import get_services
from tenant_keys.workspaces import isolation_for

MIGRATED_EVENT = "tenant-keys.tenant.migrated"


class MigrationResult(BaseModel):
    tenant_id: str
    outcome: Literal["migrated", "already-migrated"]
    workspace_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None
    revoked_key_ids: list[str] = []
    seconds: float = 0.0


def migrate_one(tenant_id: str) -> MigrationResult:
    """The protocol for one tenant; the caller holds the tenant's lock."""
    services = get_services()
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
    scope = KeyScope.of(store.describe(tenant_id).tags)
    result = MigrationResult(
        tenant_id=tenant_id,
        outcome=outcome,
        workspace_id=scope.workspace_id,
        project_id=record.project_id,
        key_id=record.key_id,
        revoked_key_ids=revoked,
        seconds=round(time.monotonic() - started, 3),
    )
    if outcome == "migrated":
        emit_tenant_event(
            MIGRATED_EVENT,
            tenant_id,
            workspace_id=result.workspace_id,
            project_id=result.project_id,
            key_id=result.key_id,
            revoked_key_ids=revoked,
        )
    return result


@task(
    name="migrate-tenant",
    task_run_name="migrate-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def migrate_tenant_task(tenant_id: str) -> MigrationResult:
    result = migrate_one(tenant_id)
    get_run_logger().info(
        "tenant=%s outcome=%s workspace=%s key_id=%s revoked=%s",
        tenant_id,
        result.outcome,
        result.workspace_id,
        result.key_id,
        ",".join(result.revoked_key_ids),
    )
    return result


@flow(name="migrate-tenant", log_prints=False)
def migrate_tenant(tenant_id: str, to: str = "workspace") -> MigrationResult:
    """Move a tenant to a workspace of its own with a key scoped to it; its old key is revoked.
    Traces go to the new workspace from then on; the old ones stay where they are."""
    validate_tenant_id(tenant_id)
    services = get_services()
    isolation_for(services.settings, to)  # an org-scoped admin key is configured
    check_migratable(services.store.describe(tenant_id), to)  # unknown tenant: one line
    ensure_tenant_locks([tenant_id])
    # Taken before the task run exists, as in the revoke flow: on a SQLite server an acquire
    # inside the task collided with the server recording the task run (a 503, then a 2 s wait).
    with tenant_lock(tenant_id):
        result = migrate_tenant_task(tenant_id)
    row = result.model_dump(mode="json", exclude_none=True)
    row["revoked_key_ids"] = ", ".join(result.revoked_key_ids)
    create_table_artifact(
        key="migration",
        table=[row],
        description=f"Migration of {tenant_id} to workspace isolation: ids only, never keys",
    )
    return result
