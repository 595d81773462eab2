"""Offboarding: the Prefect shell of `tenant_keys.offboarding`, under the tenant's lock."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.events import emit
from tasks.locks import tenant_locks
from tenant_keys.models import validate_tenant_id
from tenant_keys.offboarding import OffboardingResult, offboard
from tenant_keys.services import get_services


@task(
    name="offboard-tenant",
    task_run_name="offboard-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def offboard_tenant_task(tenant_id: str, delete_project: bool, force: bool) -> OffboardingResult:
    result = offboard(get_services(), tenant_id, delete_project=delete_project, force=force)
    emit(result.events)
    get_run_logger().info(
        "tenant=%s outcome=%s revoked=%d secret=%s project=%s",
        tenant_id,
        result.outcome,
        len(result.revoked_key_ids),
        result.secret,
        result.project,
    )
    return result


@flow(name="offboard-tenant", log_prints=False)
def offboard_tenant(
    tenant_id: str, delete_project: bool = False, force: bool = False
) -> OffboardingResult:
    """Revoke every key of the tenant, schedule its secret's deletion (or delete it now with
    `force`), and keep its project unless `delete_project`. Rerun to finish a crashed run."""
    validate_tenant_id(tenant_id)
    get_services()  # settings errors surface here, before any side effect
    locks = tenant_locks()
    locks.ensure([tenant_id])
    # Taken before the task run exists: on a SQLite server an acquire inside the task collided
    # with the server recording the task run.
    with locks.hold([tenant_id]):
        result = offboard_tenant_task(tenant_id, delete_project, force)
    row = result.model_dump(mode="json", exclude_none=True)
    row["revoked_key_ids"] = ", ".join(result.revoked_key_ids)
    create_table_artifact(
        key="offboarding",
        table=[row],
        description=f"Offboarding of {tenant_id}: key ids only, never keys",
    )
    return result
