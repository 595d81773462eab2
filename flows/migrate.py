"""Migration to workspace or tagged isolation: the Prefect shell of `tenant_keys.migration`,
under the tenant's lock."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.events import emit
from tasks.locks import tenant_locks
from tenant_keys.migration import MigrationResult, check_migratable, migrate
from tenant_keys.models import IsolationMode, validate_tenant_id
from tenant_keys.services import get_services
from tenant_keys.workspaces import isolation_for


@task(
    name="migrate-tenant",
    task_run_name="migrate-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def migrate_tenant_task(tenant_id: str, to: IsolationMode = "workspace") -> MigrationResult:
    result = migrate(get_services(), tenant_id, to)
    emit(result.events)
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
    """Move a tenant to a workspace of its own with a key scoped to it (`to="workspace"`), or
    to tagged isolation (`to="tagged"`: its project tagged, a key confined to it); its old key
    is revoked. Traces go to the new place from then on; the old ones stay where they are."""
    validate_tenant_id(tenant_id)
    services = get_services()
    mode = isolation_for(services.settings, to)  # an org-scoped admin key is configured
    check_migratable(services.store.describe(tenant_id), to)  # unknown tenant: one line
    locks = tenant_locks()
    locks.ensure([tenant_id])
    # Taken before the task run exists: on a SQLite server an acquire inside the task collided
    # with the server recording the task run.
    with locks.hold([tenant_id]):
        result = migrate_tenant_task(tenant_id, mode)
    row = result.model_dump(mode="json", exclude_none=True)
    row["revoked_key_ids"] = ", ".join(result.revoked_key_ids)
    create_table_artifact(
        key="migration",
        table=[row],
        description=f"Migration of {tenant_id} to {mode} isolation: ids only, never keys",
    )
    return result
