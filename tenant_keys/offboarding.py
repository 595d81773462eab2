"""Offboarding: a tenant leaves. No live key, no readable secret; the project stays unless asked.

Each step is safe to repeat, so a rerun after a crash at any point finishes the job:
1. mark: tag the secret `tenant-keys:offboarding`, the durable record that an offboarding
   started. Reconcile finishes such a tenant instead of "repairing" its dead keys, and
   onboarding refuses the id meanwhile;
2. revoke every key of the tenant at LangSmith: the keys its secret's versions name and
   every key listed with its description (404: already gone);
3. schedule the secret's deletion with the recovery window (`secret_recovery_days`), or,
   with force, delete it now (after restoring it if it was scheduled: AWS refuses a force
   delete of a secret scheduled for deletion);
4. delete the project only when asked: its traces are the customer's data.
Keys go first: security before tidiness. Deleting the secret first would lose the record of
which keys to revoke. `offboard` drives the steps; the caller holds the tenant's lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, Field, SerializeAsAny

from tenant_keys.errors import CorruptSecret, TenantNotFound
from tenant_keys.events import TenantEvent, TenantOffboardedEvent
from tenant_keys.keys import PROJECT_HOME, KeyHome, keys_by_mode
from tenant_keys.layout import TAG_OFFBOARDING, TAG_PROJECT, SecretState
from tenant_keys.models import IsolationMode, parse_key_description, project_name, utcnow
from tenant_keys.services import Services

SecretOutcome = Literal["scheduled", "deleted", "already-scheduled", "absent"]
ProjectOutcome = Literal["kept", "deleted", "absent"]


class OffboardingResult(BaseModel):
    tenant_id: str
    outcome: Literal["offboarded", "already-offboarded", "nothing-found"]
    revoked_key_ids: list[str] = []
    secret: SecretOutcome
    recovery_days: int | None = None
    project: ProjectOutcome
    project_id: str | None = None
    seconds: float = 0.0
    events: list[SerializeAsAny[TenantEvent]] = Field(default_factory=list, exclude=True)


# -- the steps -------------------------------------------------------------------------------


def find_secret(services: Services, tenant_id: str) -> SecretState | None:
    try:
        return services.store.describe(tenant_id)
    except TenantNotFound:
        return None


def mark_offboarding(services: Services, tenant_id: str, state: SecretState | None) -> bool:
    """Tag a live secret as being offboarded (AWS refuses tags on one scheduled for deletion)."""
    if state is None or state.leaving:
        return False
    services.store.set_tags(tenant_id, {TAG_OFFBOARDING: utcnow().isoformat()})
    return True


def tenant_key_ids(
    services: Services, tenant_id: str, state: SecretState | None
) -> dict[str, IsolationMode]:
    """Every key id of the tenant, with the kind of key it is (its mode): named by a labelled
    version, or listed with its description (workspace keys and org service keys)."""
    key_ids: dict[str, IsolationMode] = {}
    for mode, keys in keys_by_mode(services).items():
        for key in keys:
            parsed = parse_key_description(key.description)
            if parsed is not None and parsed[0] == tenant_id:
                key_ids[key.id] = mode
    if state is None or state.scheduled_for_deletion:
        return key_ids  # a secret scheduled for deletion cannot be read (AWS refuses)
    mode = KeyHome.of(state.tags).mode
    for version, labels in state.versions.items():
        try:
            record = services.store.read(tenant_id, stage=labels[0], version_id=version)
        except CorruptSecret:
            continue  # an edited version names no key; the description sweep still finds ours
        key_ids.setdefault(record.key_id, mode)
    return key_ids


def revoke_keys(
    services: Services, key_ids: Iterable[str], modes: Mapping[str, IsolationMode] | None = None
) -> list[str]:
    """Delete the keys at LangSmith, each at the endpoint of its kind (`modes`, by default a
    workspace key); returns those deleted now (the rest were already gone)."""
    kinds = modes or {}
    return [
        key_id
        for key_id in sorted(key_ids)
        if KeyHome(mode=kinds.get(key_id, "project")).delete(services.langsmith, key_id)
    ]


def delete_secret(
    services: Services, tenant_id: str, state: SecretState | None, *, force: bool
) -> SecretOutcome:
    store = services.store
    if state is None:
        return "absent"
    if state.scheduled_for_deletion:
        if not force:
            return "already-scheduled"
        store.restore(tenant_id)
    store.delete(tenant_id, recovery_days=None if force else services.settings.secret_recovery_days)
    return "deleted" if force else "scheduled"


def remove_project(
    services: Services, tenant_id: str, state: SecretState | None, *, delete: bool
) -> tuple[ProjectOutcome, str | None]:
    project_id = state.tags.get(TAG_PROJECT) if state else None
    # Workspace mode: the project is in the tenant's own workspace (which is kept).
    workspace = (KeyHome.of(state.tags) if state else PROJECT_HOME).workspace_id
    if project_id is None:
        found = services.langsmith.find_project(project_name(tenant_id), workspace_id=workspace)
        project_id = found.id if found else None
    if project_id is None:
        return "absent", None
    if not delete:
        return "kept", project_id
    deleted = services.langsmith.delete_project(project_id, workspace_id=workspace)
    return ("deleted" if deleted else "absent"), project_id


# -- the driver ------------------------------------------------------------------------------


def offboard(
    services: Services, tenant_id: str, *, delete_project: bool = False, force: bool = False
) -> OffboardingResult:
    """Offboard one tenant; the caller holds its lock. Rerun to finish a crashed run."""
    started = time.monotonic()
    state = find_secret(services, tenant_id)
    tagged = mark_offboarding(services, tenant_id, state)
    key_ids = tenant_key_ids(services, tenant_id, state)
    revoked = revoke_keys(services, key_ids, modes=key_ids)
    secret = delete_secret(services, tenant_id, state, force=force)
    project, project_id = remove_project(services, tenant_id, state, delete=delete_project)

    changed = tagged or revoked or secret in ("scheduled", "deleted") or project == "deleted"
    if changed:
        outcome: Literal["offboarded", "already-offboarded", "nothing-found"] = "offboarded"
    elif secret == "absent" and project == "absent":
        outcome = "nothing-found"
    else:
        outcome = "already-offboarded"
    events: list[TenantEvent] = []
    if changed:
        events.append(
            TenantOffboardedEvent(
                tenant_id=tenant_id,
                revoked_key_ids=revoked,
                secret=secret,
                project=project,
                project_id=project_id,
            )
        )
    return OffboardingResult(
        tenant_id=tenant_id,
        outcome=outcome,
        revoked_key_ids=revoked,
        secret=secret,
        recovery_days=services.settings.secret_recovery_days if secret == "scheduled" else None,
        project=project,
        project_id=project_id,
        seconds=round(time.monotonic() - started, 3),
        events=events,
    )
