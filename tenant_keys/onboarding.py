"""Onboarding: give a tenant its own LangSmith project, key and secret.

ensure home (workspace isolation: the tenant's own workspace) → ensure project → (tagged
isolation: tag the project, make the tenant's role and access policy) → issue key (mint; tagged:
prove the key confined by the probe; then create the secret with it as AWSCURRENT) → verify the
stored key authenticates. Compensation runs in reverse: a failed probe or store deletes the
minted key; a failed verification deletes key and secret; a failure in tagged isolation also
removes the tag value, role and policy this run created. A tenant that is already onboarded is
reported and left alone.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, SerializeAsAny

from tenant_keys import tagged
from tenant_keys.errors import BadInput, TenantExists, TenantNotFound, TenantOffboarded
from tenant_keys.events import TenantEvent, TenantOnboardedEvent
from tenant_keys.keys import (
    PROJECT_HOME,
    KeyHome,
    KeyRef,
    check_key,
    mint_key,
    record_for,
    tagged_home,
    workspace_home,
)
from tenant_keys.langsmith import Project
from tenant_keys.layout import TAG_BUDGET, TAG_ONBOARDING, TAG_PROJECT
from tenant_keys.models import (
    IsolationMode,
    project_description,
    project_name,
    validate_tenant_id,
    version_token,
)
from tenant_keys.services import Services
from tenant_keys.workspaces import ensure_tenant_workspace

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
    events: list[SerializeAsAny[TenantEvent]] = Field(default_factory=list, exclude=True)


# -- input -------------------------------------------------------------------------------------


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


def validate_budget(budget: int | None) -> int | None:
    if budget is not None and budget < 0:
        raise BadInput(f"budget {budget} is invalid: give a whole number of traces ≥ 0, e.g. 50000")
    return budget


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


# -- the steps -----------------------------------------------------------------------------------


def ensure_home(services: Services, tenant_id: str, isolation: IsolationMode) -> KeyHome:
    """Project and tagged modes: the shared workspace. Workspace mode: the tenant's own."""
    if isolation == "project":
        return PROJECT_HOME
    if isolation == "tagged":
        return KeyHome(mode="tagged")  # its role and policy come with its project
    return workspace_home(ensure_tenant_workspace(services.langsmith, tenant_id).id)


def ensure_project(services: Services, tenant_id: str, home: KeyHome = PROJECT_HOME) -> Project:
    return services.langsmith.ensure_project(
        project_name(tenant_id),
        description=project_description(tenant_id),
        workspace_id=home.workspace_id,
    )


def ensure_access(
    services: Services, tenant_id: str, project: Project
) -> tuple[KeyHome, tagged.Provisioned]:
    """Tagged mode: the project tagged with the tenant's id, its role and its access policy
    (each found before it is made); the home names them."""
    done = tagged.provision(services.langsmith, tenant_id, project, tagged.ONBOARDING_STOPPED)
    return tagged_home(done.role_id, done.policy_id, done.tag_value_id), done


def issue_key(
    services: Services,
    tenant_id: str,
    project: Project,
    trace_budget: int,
    home: KeyHome = PROJECT_HOME,
) -> KeyRef:
    """Mint the tenant's first key and store it as AWSCURRENT; a failed store deletes the key.
    In tagged mode the key is stored only once the probe has seen it confined to its project:
    a secret never claims an isolation that was not seen."""
    created = mint_key(services, tenant_id, ONBOARDING_ROTATION, home)
    record = record_for(
        created,
        project_id=project.id,
        project_name=project.name,
        workspace_id=home.workspace_id
        or services.settings.langsmith_workspace_id
        or project.tenant_id,
        rotation_id=ONBOARDING_ROTATION,
    )
    try:
        home.confine(services.langsmith, record, tenant_id, consequence=tagged.ONBOARDING_STOPPED)
        version = services.store.create(
            tenant_id,
            record,
            token=version_token(tenant_id, ONBOARDING_ROTATION),
            tags={
                TAG_PROJECT: project.id,
                TAG_BUDGET: str(trace_budget),
                TAG_ONBOARDING: "pending",
                **home.tags(),
            },
        )
    except BaseException:
        home.delete(services.langsmith, created.id)
        raise
    return KeyRef(
        tenant_id=tenant_id, key_id=created.id, short_key=created.short_key, version_id=version
    )


def verify_key(services: Services, tenant_id: str) -> None:
    """The stored AWSCURRENT key authenticates at LangSmith (read back, as an app would); the
    secret is then marked onboarded, and can no longer be deleted without a recovery window."""
    check_key(services.langsmith, services.store.read(tenant_id), tenant_id)
    services.store.set_tags(tenant_id, {TAG_ONBOARDING: "done"})


def undo_issue_key(
    services: Services, tenant_id: str, key: KeyRef, home: KeyHome = PROJECT_HOME
) -> None:
    home.delete(services.langsmith, key.key_id)
    services.store.delete(tenant_id, recovery_days=None)  # it never served: no recovery window


# -- the driver -----------------------------------------------------------------------------------


def onboard(
    services: Services,
    tenant_id: str,
    trace_budget: int | None = None,
    isolation: IsolationMode | None = None,
) -> OnboardingResult:
    """Onboard one tenant (an existing one is reported as it is). Raises on failure, after the
    compensation: nothing is left half written."""
    budget = services.settings.default_trace_budget if trace_budget is None else trace_budget
    started = time.monotonic()
    refuse_offboarded(services, [tenant_id])
    if services.store.exists(tenant_id):
        return existing(services, tenant_id, started)
    home = ensure_home(services, tenant_id, isolation or services.settings.isolation)
    project = ensure_project(services, tenant_id, home)
    access = None
    if home.mode == "tagged":
        home, access = ensure_access(services, tenant_id, project)
    try:
        key = issue_key(services, tenant_id, project, budget, home)
    except TenantExists:  # onboarded concurrently; our key was deleted with the failed store
        return existing(services, tenant_id, started)  # the access objects are the winner's
    except BaseException:
        if access is not None:
            tagged.undo(services.langsmith, tenant_id, access)
        raise
    try:
        verify_key(services, tenant_id)
    except BaseException:
        undo_issue_key(services, tenant_id, key, home)
        if access is not None:
            tagged.undo(services.langsmith, tenant_id, access)
        raise
    return OnboardingResult(
        tenant_id=tenant_id,
        outcome="created",
        project_id=project.id,
        key_id=key.key_id,
        short_key=key.short_key,
        trace_budget=budget,
        isolation=home.mode,
        workspace_id=home.workspace_id,
        seconds=round(time.monotonic() - started, 3),
        events=[
            TenantOnboardedEvent(
                tenant_id=tenant_id,
                project_id=project.id,
                key_id=key.key_id,
                short_key=key.short_key,
                trace_budget=budget,
                isolation=home.mode,
                workspace_id=home.workspace_id,
            )
        ],
    )


def existing(services: Services, tenant_id: str, started: float) -> OnboardingResult:
    record = services.store.read(tenant_id)
    budget = services.store.describe(tenant_id).tags.get(TAG_BUDGET, "")
    return OnboardingResult(
        tenant_id=tenant_id,
        outcome="exists",
        project_id=record.project_id,
        key_id=record.key_id,
        trace_budget=int(budget) if budget.isdigit() else None,
        seconds=round(time.monotonic() - started, 3),
    )
