"""Onboarding: give each tenant its own LangSmith project, key and secret.

Per tenant: ensure project (in workspace isolation: the tenant's own workspace first) →
issue key (mint, then store as AWSCURRENT) → verify the key authenticates. Compensation runs in reverse: a failed store
deletes the minted key; a failed verification deletes key and secret. A
tenant that is already onboarded is reported and left alone.
"""

from __future__ import annotations

import time
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from tasks.events import emit_tenant_event
from tasks.locks import ensure_tenant_locks
from tenant_keys.errors import BadInput, TenantExists, TenantNotFound, TenantOffboarded
from tenant_keys.keys import (
    PROJECT_SCOPE,
    KeyRef,
    KeyScope,
    check_key,
    mint_key,
    record_for,
    workspace_scope,
)
from tenant_keys.langsmith import Project
from tenant_keys.models import IsolationMode, project_name, validate_tenant_id, version_token
from tenant_keys.secret_store import TAG_BUDGET, TAG_PROJECT
from tenant_keys.services import Services, get_services
from tenant_keys.workspaces import ensure_tenant_workspace, isolation_for

ONBOARDING_ROTATION = "onboard"


class OnboardingResult(BaseModel):
    tenant_id: str
    outcome: Literal["created", "exists", "failed"]
    project_id: str | None = None
    key_id: str | None = None
    short_key: str | None = None
    trace_budget: int | None = None
    isolation: IsolationMode | None = None
    workspace_id: str | None = None
    error: str | None = None
    seconds: float = 0.0


# -- the steps -------------------------------------------------------------------------------


def ensure_scope(services: Services, tenant_id: str, isolation: IsolationMode) -> KeyScope:
    """Project mode: the shared workspace. Workspace mode: the tenant's own workspace."""
    if isolation == "project":
        return PROJECT_SCOPE
    return workspace_scope(ensure_tenant_workspace(services.langsmith, tenant_id).id)


def ensure_project(services: Services, tenant_id: str, scope: KeyScope = PROJECT_SCOPE) -> Project:
    return services.langsmith.ensure_project(
        project_name(tenant_id),
        description=f"Traces of tenant {tenant_id} (managed by tenant-keys)",
        workspace_id=scope.workspace_id,
    )


def issue_key(
    services: Services,
    tenant_id: str,
    project: Project,
    trace_budget: int,
    scope: KeyScope = PROJECT_SCOPE,
) -> KeyRef:
    """Mint the tenant's first key and store it as AWSCURRENT; a failed store deletes the key."""
    created = mint_key(services, tenant_id, ONBOARDING_ROTATION, scope)
    record = record_for(
        created,
        project_id=project.id,
        project_name=project.name,
        workspace_id=scope.workspace_id
        or services.settings.langsmith_workspace_id
        or project.tenant_id,
        rotation_id=ONBOARDING_ROTATION,
    )
    try:
        version = services.store.create(
            tenant_id,
            record,
            token=version_token(tenant_id, ONBOARDING_ROTATION),
            tags={TAG_PROJECT: project.id, TAG_BUDGET: str(trace_budget), **scope.tags()},
        )
    except BaseException:
        scope.delete(services.langsmith, created.id)
        raise
    return KeyRef(
        tenant_id=tenant_id, key_id=created.id, short_key=created.short_key, version_id=version
    )


def verify_key(services: Services, tenant_id: str) -> None:
    """The stored AWSCURRENT key authenticates at LangSmith (read back, as an app would)."""
    check_key(services.langsmith, services.store.read(tenant_id), tenant_id)


def undo_issue_key(
    services: Services, tenant_id: str, key: KeyRef, scope: KeyScope = PROJECT_SCOPE
) -> None:
    scope.delete(services.langsmith, key.key_id)
    services.store.delete(tenant_id, recovery_days=None)  # it never served: no recovery window


# -- the protocol for one tenant -----------------------------------------------------------------


def onboard_one(
    tenant_id: str, trace_budget: int | None = None, isolation: IsolationMode | None = None
) -> OnboardingResult:
    services = get_services()
    budget = services.settings.default_trace_budget if trace_budget is None else trace_budget
    started = time.monotonic()
    if services.store.exists(tenant_id):
        return _existing(services, tenant_id, started)
    scope = ensure_scope(services, tenant_id, isolation or services.settings.isolation)
    project = ensure_project(services, tenant_id, scope)
    try:
        key = issue_key(services, tenant_id, project, budget, scope)
    except TenantExists:  # onboarded concurrently; our key was deleted with the failed store
        return _existing(services, tenant_id, started)
    try:
        verify_key(services, tenant_id)
    except BaseException:
        undo_issue_key(services, tenant_id, key, scope)
        raise
    emit_tenant_event(
        "tenant-keys.tenant.onboarded",
        tenant_id,
        project_id=project.id,
        key_id=key.key_id,
        short_key=key.short_key,
        trace_budget=budget,
        isolation=scope.mode,
        workspace_id=scope.workspace_id,
    )
    return OnboardingResult(
        tenant_id=tenant_id,
        outcome="created",
        project_id=project.id,
        key_id=key.key_id,
        short_key=key.short_key,
        trace_budget=budget,
        isolation=scope.mode,
        workspace_id=scope.workspace_id,
        seconds=round(time.monotonic() - started, 3),
    )


def _existing(services: Services, tenant_id: str, started: float) -> OnboardingResult:
    record = services.store.read(tenant_id)
    state = services.store.describe(tenant_id)
    return OnboardingResult(
        tenant_id=tenant_id,
        outcome="exists",
        project_id=record.project_id,
        key_id=record.key_id,
        trace_budget=_int(state.tags.get(TAG_BUDGET)),
        seconds=round(time.monotonic() - started, 3),
    )


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@task(
    name="onboard-tenant",
    task_run_name="onboard-{tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def onboard_tenant(
    tenant_id: str, trace_budget: int | None = None, isolation: IsolationMode | None = None
) -> OnboardingResult:
    logger = get_run_logger()
    try:
        result = onboard_one(tenant_id, trace_budget, isolation)
    except Exception as exc:
        logger.error("tenant=%s step=onboard outcome=failed error=%s", tenant_id, exc)
        raise
    logger.info(
        "tenant=%s step=onboard outcome=%s project=%s key_id=%s",
        tenant_id,
        result.outcome,
        result.project_id,
        result.key_id,
    )
    return result


# -- the flow ------------------------------------------------------------------------------------


def validate_tenants(tenant_ids: list[str]) -> list[str]:
    """Every id valid and unique, or one line that says which is not (before any side effect)."""
    if not tenant_ids:
        raise BadInput("no tenant ids given: name at least one tenant")
    seen: set[str] = set()
    for tenant_id in tenant_ids:
        validate_tenant_id(tenant_id)
        if tenant_id in seen:
            raise BadInput(f"tenant id {tenant_id!r} is listed twice: list each tenant once")
        seen.add(tenant_id)
    return tenant_ids


def refuse_offboarded(services: Services, tenant_ids: list[str]) -> None:
    """An offboarded id waits out its secret's recovery window: a clear error, not "exists".
    Checked here, not trusted to CreateSecret: moto reports that name as existing (AWS refuses it)."""
    for tenant_id in tenant_ids:
        try:
            state = services.store.describe(tenant_id)
        except TenantNotFound:
            continue
        if state.leaving:
            raise TenantOffboarded(tenant_id, state.name)


@flow(name="onboard-tenants", task_runner=ThreadPoolTaskRunner(max_workers=16), log_prints=False)
def onboard_tenants(
    tenant_ids: list[str], trace_budget: int | None = None, isolation: str | None = None
) -> list[OnboardingResult]:
    """Onboard each tenant: its own project, key and secret. Existing tenants are left alone.
    `isolation` ('project' | 'workspace') overrides the `isolation` setting for these tenants."""
    validate_tenants(tenant_ids)
    mode = isolation_for(get_services().settings, isolation)  # settings errors surface here too
    refuse_offboarded(get_services(), tenant_ids)
    ensure_tenant_locks(tenant_ids)  # every later flow takes the tenant's lock
    futures = {
        tenant_id: onboard_tenant.submit(tenant_id, trace_budget, mode) for tenant_id in tenant_ids
    }
    results: list[OnboardingResult] = []
    for tenant_id, future in futures.items():
        future.wait()
        if future.state.is_completed():
            results.append(future.result())
        else:
            error = future.state.message or "failed"
            results.append(OnboardingResult(tenant_id=tenant_id, outcome="failed", error=error))
    create_table_artifact(
        key="onboarding",
        table=[r.model_dump(mode="json", exclude_none=True) for r in results],
        description=f"Onboarding of {len(results)} tenant(s): ids only, never keys",
    )
    failed = [r.tenant_id for r in results if r.outcome == "failed"]
    if failed:
        raise RuntimeError(
            f"onboarding failed for {len(failed)} of {len(results)} tenant(s): {', '.join(failed)}"
        )
    return results
