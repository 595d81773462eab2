"""Offboarding: a tenant leaves. No live key, no readable secret; the project stays unless asked.

Each step is safe to repeat, so a rerun after a crash at any point finishes the job:
1. mark: tag the secret `tenant-keys:offboarding`, the durable record that an offboarding
   started. Reconcile finishes such a tenant instead of "repairing" its dead keys, and
   onboarding refuses the id meanwhile;
2. revoke every key LangSmith lists as minted for the tenant (its description), then prove
   each dead: the keys its secret holds get 401; the others are gone from the list. A key
   the secret names that LangSmith lists as someone else's is never touched (a conflict);
3. tagged isolation: remove the tenant's access policy, role and tag value (with it the tag
   on its project), each one LangSmith lists as the tool's for this tenant;
4. schedule the secret's deletion with the recovery window (`secret_recovery_days`), or,
   with force, delete it now (after restoring it if it was scheduled: AWS refuses a force
   delete of a secret scheduled for deletion);
5. delete the project only when asked: its traces are the customer's data.
Keys go first: security before tidiness. Deleting the secret first would lose the record of
which keys to revoke. `offboard` drives the steps; the caller holds the tenant's lock.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, SerializeAsAny

from tenant_keys import tagged
from tenant_keys.errors import CorruptSecret, Forbidden, RevokeFailed, TenantNotFound
from tenant_keys.events import TenantEvent, TenantOffboardedEvent
from tenant_keys.keys import PROJECT_HOME, KeyHome, key_works, keys_by_mode
from tenant_keys.layout import TAG_OFFBOARDING, TAG_PROJECT, SecretState, TenantKeyRecord
from tenant_keys.models import IsolationMode, parse_key_description, project_name, utcnow
from tenant_keys.services import Services

SecretOutcome = Literal["scheduled", "deleted", "already-scheduled", "absent"]
ProjectOutcome = Literal["kept", "deleted", "absent"]


class OffboardingResult(BaseModel):
    tenant_id: str
    outcome: Literal["offboarded", "already-offboarded", "nothing-found"]
    revoked_key_ids: list[str] = []
    # Keys its secret held that LangSmith lists as someone else's: left alone (a conflict).
    not_owned: list[str] = []
    # Tagged isolation: ids of the policy, role and tag value removed.
    removed_access: list[str] = []
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


class TenantKeys(BaseModel):
    """The tenant's keys as offboarding sees them: ids and kinds; the records the secret holds
    are kept for the proof of death (their keys must get 401), never shown."""

    # Listed at LangSmith with this tenant's description: the keys to revoke.
    minted: dict[str, IsolationMode] = {}
    # Key id -> the record of a labelled version holding it.
    held: dict[str, TenantKeyRecord] = {}
    # Held, but LangSmith lists them as someone else's (the secret was edited): left alone.
    not_owned: list[str] = []


def find_tenant_keys(services: Services, tenant_id: str, state: SecretState | None) -> TenantKeys:
    """Every key minted for the tenant (one listing per key kind), and the records its secret's
    labelled versions hold."""
    listed = keys_by_mode(services)
    owners = {
        key.id: parse_key_description(key.description) for keys in listed.values() for key in keys
    }
    minted = {
        key.id: mode
        for mode, keys in listed.items()
        for key in keys
        if (owner := owners[key.id]) is not None and owner[0] == tenant_id
    }
    held: dict[str, TenantKeyRecord] = {}
    if state is not None and not state.scheduled_for_deletion:  # AWS refuses to read those
        for version, labels in state.versions.items():
            try:
                record = services.store.read(tenant_id, stage=labels[0], version_id=version)
            except CorruptSecret:
                continue  # an edited version names no key; the description sweep finds ours
            held[record.key_id] = record
    not_owned = sorted(k for k in held if k in owners and k not in minted)
    return TenantKeys(minted=minted, held=held, not_owned=not_owned)


def revoke_keys(services: Services, keys: TenantKeys) -> list[str]:
    """Delete every key minted for the tenant, each at the endpoint of its kind; returns those
    deleted now (the rest were already gone)."""
    return [
        key_id
        for key_id, mode in sorted(keys.minted.items())
        if KeyHome(mode=mode).delete(services.langsmith, key_id)
    ]


def confirm_dead(services: Services, tenant_id: str, keys: TenantKeys) -> None:
    """Every key of the tenant is refused: a key its secret holds gets 401 when used (a 404 from
    the admin API alone is no proof: it may be the wrong workspace); any other is gone from
    LangSmith's list. Raises `RevokeFailed` otherwise, before the secret is touched."""
    for key_id, record in sorted(keys.held.items()):
        if key_id not in keys.not_owned and key_works(services.langsmith, record):
            raise RevokeFailed(tenant_id, key_id, "still accepted after offboarding deleted it")
    alive = set(keys.minted) & {
        key.id for listed in keys_by_mode(services).values() for key in listed
    }
    if alive:
        raise RevokeFailed(tenant_id, sorted(alive)[0], "still listed after its delete")


def remove_access(services: Services, tenant_id: str, state: SecretState | None) -> list[str]:
    """Tagged isolation: the tenant's policy, role and tag value, once its keys are dead (a
    role that keys still carry cannot go). A secret in another mode has none; without a
    secret the mode is unknown, so LangSmith is asked. Ids of what was removed."""
    if state is not None and KeyHome.of(state.tags).mode != "tagged":
        return []
    try:
        removed = tagged.remove_access(services.langsmith, tenant_id)
    except Forbidden:
        if state is not None:
            raise
        return []  # an admin key that cannot read roles and policies: no tagged tenant here
    return [*removed.policies, *removed.roles, *removed.tag_values]


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


def tenant_project(
    services: Services, tenant_id: str, state: SecretState | None
) -> tuple[str | None, str | None]:
    """(project id, workspace id) of the tenant's project: its secret's tag, else the project
    named for it; None when there is none."""
    workspace = (KeyHome.of(state.tags) if state else PROJECT_HOME).workspace_id
    project_id = state.tags.get(TAG_PROJECT) if state else None
    if project_id is None:
        found = services.langsmith.find_project(project_name(tenant_id), workspace_id=workspace)
        project_id = found.id if found else None
    return project_id, workspace


def remove_project(
    services: Services, project_id: str | None, workspace: str | None, *, delete: bool
) -> ProjectOutcome:
    """Delete the project when asked (its ownership was proven before anything was done)."""
    if project_id is None:
        return "absent"
    if not delete:
        return "kept"
    return (
        "deleted"
        if services.langsmith.delete_project(project_id, workspace_id=workspace)
        else "absent"
    )


# -- the driver ------------------------------------------------------------------------------


def offboard(
    services: Services, tenant_id: str, *, delete_project: bool = False, force: bool = False
) -> OffboardingResult:
    """Offboard one tenant; the caller holds its lock. Rerun to finish a crashed run."""
    started = time.monotonic()
    state = find_secret(services, tenant_id)
    project_id, workspace = tenant_project(services, tenant_id, state)
    if delete_project and project_id is not None:
        # Proven before anything is done: a project someone else made, or a tag edited to name
        # another tenant's, is never deleted (`NotOwned`).
        services.ownership.project(tenant_id, project_id, workspace)
    marked = mark_offboarding(services, tenant_id, state)
    keys = find_tenant_keys(services, tenant_id, state)
    revoked = revoke_keys(services, keys)
    confirm_dead(services, tenant_id, keys)
    removed = remove_access(services, tenant_id, state)
    secret = delete_secret(services, tenant_id, state, force=force)
    project = remove_project(services, project_id, workspace, delete=delete_project)

    changed = (
        marked or revoked or removed or secret in ("scheduled", "deleted") or project == "deleted"
    )
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
        not_owned=keys.not_owned,
        removed_access=removed,
        secret=secret,
        recovery_days=services.settings.secret_recovery_days if secret == "scheduled" else None,
        project=project,
        project_id=project_id,
        seconds=round(time.monotonic() - started, 3),
        events=events,
    )
