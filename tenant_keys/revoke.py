"""The steps of an emergency revoke: find the suspect keys, kill them, prove them dead, replace.

Security before availability: every suspect key is deleted at LangSmith and
shown to be rejected before anything else happens; only then is a replacement
minted and stored as AWSCURRENT. If the replacement fails, the tenant keeps a
dead key in AWSCURRENT (apps get 401, tracing stops) and the secret is tagged
`tenant-keys:status=revoked-no-key`. The order of the steps and the handling
of failures live in `flows/revoke.py`; every step here is safe to repeat.

Which keys are suspect:
- scope `current`: the key that was AWSCURRENT when the leak was reported, and
  whatever replaced it since (a rotation that held the lock while the revoke
  waited): a compromised key never survives by being moved to RETIRE_PENDING,
  and a fresh key minted in the compromised window is not left alive.
- scope `all`: also every other labelled version's key (AWSPENDING,
  AWSPREVIOUS, RETIRE_PENDING) and every key LangSmith lists with this
  tenant's description, whether the secret still knows it or not.
- an explicit key id: that key (it must belong to the tenant); if it was the
  current key, scope `current` applies.
Keys minted for this very incident are never suspect, so a repeated event or
a rerun does not revoke the replacement it already made.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tenant_keys.errors import BadInput, CorruptSecret, TenantKeysError
from tenant_keys.keys import (
    PROJECT_SCOPE,
    KeyScope,
    check_key,
    delete_keys_described,
    mint_and_store,
    tenant_scope,
)
from tenant_keys.langsmith import LangSmithAdmin, LangSmithError
from tenant_keys.models import (
    TenantKeyRecord,
    key_description,
    parse_key_description,
    validate_tenant_id,
)
from tenant_keys.secret_store import CURRENT, PENDING, RETIRE_PENDING, SecretState
from tenant_keys.services import Services

log = logging.getLogger(__name__)

Scope = Literal["current", "all"]
SCOPES: tuple[Scope, ...] = ("current", "all")

# The secret's mark for "the emergency replacement failed: this tenant has no working key".
# It names the dead key it is about, so it goes stale by itself once anything (a retried
# revoke, a rotation) puts another key in AWSCURRENT.
TAG_STATUS = "tenant-keys:status"
TAG_STATUS_KEY = "tenant-keys:status-key-id"
STATUS_NO_KEY = "revoked-no-key"
STATUS_ACTIVE = "active"

# Deleting the key is the point of the flow: keep trying transient failures this long
# (each attempt is the client's own retry ladder of up to 5 calls), then give up loudly.
DELETE_DEADLINE_SECONDS = 60.0
_DELETE_PAUSE_SECONDS = 0.2
# The label a replacement version carries between its write and its promotion to AWSCURRENT.
REPLACEMENT = "REVOKE_REPLACEMENT"
_INCIDENT_NAMESPACE = uuid.UUID("0d8f6c1e-7a2b-5c4d-9e3f-2b1a0c9d8e7f")

RESOURCE_PREFIX = "tenant."


class RevokeFailed(TenantKeysError):
    """A suspect key could not be shown dead; nothing else was changed."""

    def __init__(self, tenant_id: str, key_id: str, cause: str) -> None:
        super().__init__(
            f"RevokeFailed: key {key_id} of tenant {tenant_id!r} may still work ({cause}): "
            "rerun `tenant-keys revoke`, or delete it in LangSmith's UI at once"
        )
        self.tenant_id = tenant_id
        self.key_id = key_id


class ReplacementFailed(TenantKeysError):
    """The suspect keys are dead but no working replacement is stored: tracing is off."""

    def __init__(self, tenant_id: str, cause: str) -> None:
        super().__init__(
            f"ReplacementFailed: tenant {tenant_id!r} has no working key ({cause}); its tracing "
            f"is off and its secret is tagged {TAG_STATUS}={STATUS_NO_KEY}: rerun `tenant-keys "
            f"revoke {tenant_id}` or `tenant-keys rotate {tenant_id}` once the cause is fixed"
        )
        self.tenant_id = tenant_id


class Holding(BaseModel):
    """A labelled version of the tenant secret and the key it holds (ids only)."""

    model_config = ConfigDict(frozen=True)

    version_id: str
    key_id: str
    rotation_id: str
    labels: list[str]


class RevokeRequest(BaseModel):
    """A checked request, resolved before the lock: which keys were suspect when it came in."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    scope: Scope
    incident_id: str
    suspect_key_ids: list[str]
    suspect_was_current: bool


class RevokedKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: str
    short_key: str | None = None
    labels: list[str] = []  # where the secret held it; empty: known to LangSmith only
    deleted: bool  # False: it was already gone (404)


# -- input -------------------------------------------------------------------------------------


def tenant_from(value: str) -> str:
    """A tenant id, given plainly or as the event resource id `tenant.<id>`."""
    return validate_tenant_id(value.strip().removeprefix(RESOURCE_PREFIX))


def scope_from(value: str | None) -> Scope:
    scope = (value or "current").strip().lower()
    if scope not in SCOPES:
        raise BadInput(f"scope {value!r} is invalid: use 'current' (the default) or 'all'")
    return scope  # type: ignore[return-value]  # checked against SCOPES just above


def replacement_rotation_id(incident_id: str) -> str:
    """The rotation id of an incident's replacement key: the same on every rerun."""
    return f"revoke-{uuid.uuid5(_INCIDENT_NAMESPACE, incident_id).hex[:12]}"


def resolve_request(
    services: Services, tenant_id: str, scope: Scope, key_id: str | None, incident_id: str
) -> RevokeRequest:
    """Check the request and name the suspect keys; raises `BadInput` before any side effect."""
    store = services.store
    state = store.describe(tenant_id)  # TenantNotFound: a one-line BadInput
    if state.scheduled_for_deletion:
        raise BadInput(
            f"tenant {tenant_id!r} is being offboarded (secret {state.name} is scheduled for "
            "deletion): restore the secret first if its keys still need revoking"
        )
    current = store.read(tenant_id)
    if not key_id:
        return RevokeRequest(
            tenant_id=tenant_id,
            scope=scope,
            incident_id=incident_id,
            suspect_key_ids=[current.key_id],
            suspect_was_current=True,
        )
    holdings = secret_holdings(services, tenant_id, state)
    scope = KeyScope.of(state.tags)
    if key_id not in holdings and not _minted_for(services.langsmith, scope, tenant_id, key_id):
        raise BadInput(
            f"key {key_id} is not a key of tenant {tenant_id!r} (neither in its secret nor minted "
            f"for it at LangSmith): check the id; `tenant-keys list` shows current key ids"
        )
    return RevokeRequest(
        tenant_id=tenant_id,
        scope=scope,
        incident_id=incident_id,
        suspect_key_ids=[key_id],
        suspect_was_current=key_id == current.key_id,
    )


def _minted_for(langsmith: LangSmithAdmin, scope: KeyScope, tenant_id: str, key_id: str) -> bool:
    for key in scope.list_keys(langsmith):
        if key.id == key_id:
            parsed = parse_key_description(key.description)
            return parsed is not None and parsed[0] == tenant_id
    return False


# -- planning, under the lock ------------------------------------------------------------------------


def secret_holdings(services: Services, tenant_id: str, state: SecretState) -> dict[str, Holding]:
    """Key id -> the labelled version that holds it. A corrupt non-current version is skipped."""
    holdings: dict[str, Holding] = {}
    for version_id, labels in state.versions.items():
        stage = CURRENT if CURRENT in labels else labels[0]
        try:
            record = services.store.read(tenant_id, stage=stage, version_id=version_id)
        except CorruptSecret:
            if CURRENT in labels:
                raise
            log.warning("tenant=%s version=%s is not a key record: skipped", tenant_id, version_id)
            continue
        holdings[record.key_id] = Holding(
            version_id=version_id,
            key_id=record.key_id,
            rotation_id=record.rotation_id,
            labels=sorted(labels),
        )
    return holdings


def current_holding(holdings: dict[str, Holding]) -> Holding:
    return next(h for h in holdings.values() if CURRENT in h.labels)


def plan_targets(
    services: Services, request: RevokeRequest, holdings: dict[str, Holding]
) -> list[str]:
    """The key ids to revoke now, suspects first; never a key minted for this incident."""
    targets = list(request.suspect_key_ids)
    if request.suspect_was_current:
        targets.append(current_holding(holdings).key_id)
    if request.scope == "all":
        targets += list(holdings)
        for key in tenant_scope(services, request.tenant_id).list_keys(services.langsmith):
            parsed = parse_key_description(key.description)
            if parsed is not None and parsed[0] == request.tenant_id:
                targets.append(key.id)
    ours = replacement_rotation_id(request.incident_id)
    spared = {h.key_id for h in holdings.values() if h.rotation_id == ours}
    return [key_id for key_id in dict.fromkeys(targets) if key_id not in spared]


# -- the kill ----------------------------------------------------------------------------------------


def delete_hard(
    langsmith: LangSmithAdmin,
    tenant_id: str,
    key_id: str,
    *,
    deadline_seconds: float = DELETE_DEADLINE_SECONDS,
    scope: KeyScope = PROJECT_SCOPE,
) -> bool:
    """Delete a key, retrying transient failures until the deadline; False: it was already gone."""
    give_up = time.monotonic() + deadline_seconds
    while True:
        try:
            return scope.delete(langsmith, key_id)
        except LangSmithError as exc:
            if not exc.transient or time.monotonic() >= give_up:
                raise RevokeFailed(tenant_id, key_id, type(exc).__name__) from None
            log.warning("tenant=%s delete of key %s failed (%s): retrying", tenant_id, key_id, exc)
        time.sleep(_DELETE_PAUSE_SECONDS)


def confirm_rejected(
    services: Services, tenant_id: str, revoked: list[str], holdings: dict[str, Holding]
) -> None:
    """Every revoked key is refused: a key the secret holds must get 401 when used; any other
    must be gone from LangSmith's key list. Raises `RevokeFailed` otherwise."""
    for key_id in revoked:
        holding = holdings.get(key_id)
        if holding is None:
            continue
        record = _read_holding(services, tenant_id, holding)
        if _authenticates(services.langsmith, record):
            raise RevokeFailed(tenant_id, key_id, "still accepted after its delete")
    unknown = {k for k in revoked if k not in holdings}
    if unknown:
        listed = tenant_scope(services, tenant_id).list_keys(services.langsmith)
        alive = unknown & {key.id for key in listed}
        if alive:
            raise RevokeFailed(tenant_id, sorted(alive)[0], "still listed after its delete")


def _authenticates(langsmith: LangSmithAdmin, record: TenantKeyRecord) -> bool:
    for attempt in range(5):
        try:
            return langsmith.authenticates(record.api_key, workspace_id=record.workspace_id)
        except LangSmithError as exc:
            if not exc.transient or attempt == 4:
                raise
        time.sleep(_DELETE_PAUSE_SECONDS)
    raise AssertionError("unreachable")


def _read_holding(services: Services, tenant_id: str, holding: Holding) -> TenantKeyRecord:
    stage = CURRENT if CURRENT in holding.labels else holding.labels[0]
    return services.store.read(tenant_id, stage=stage, version_id=holding.version_id)


def drop_dead_labels(
    services: Services, tenant_id: str, revoked: list[str], holdings: dict[str, Holding]
) -> None:
    """AWSPENDING and RETIRE_PENDING on a revoked key's version mean nothing now: drop them, so
    no rotation resumes or retires a dead key. AWSCURRENT is replaced, not dropped."""
    for key_id in revoked:
        holding = holdings.get(key_id)
        for label in (PENDING, RETIRE_PENDING):
            if holding is not None and label in holding.labels:
                services.store.remove_label(tenant_id, label, from_version=holding.version_id)


# -- the replacement ------------------------------------------------------------------------------


def store_replacement(services: Services, tenant_id: str, incident_id: str) -> tuple[str, str]:
    """Mint a key for the incident and store it as AWSCURRENT; returns (key id, short key).

    The new version is written under its own label, then AWSCURRENT moves to it with a
    compare-and-swap, as in a rotation's promote (PutSecretValue straight to AWSCURRENT left
    two AWSCURRENT versions on moto after label edits; the two-step move is safe on both).

    A failed store deletes the key just minted. A rerun first deletes whatever an
    interrupted earlier run of the same incident minted, so no orphan is left.
    """
    store, langsmith = services.store, services.langsmith
    rotation_id = replacement_rotation_id(incident_id)
    base = store.read(tenant_id)  # the project the replacement serves is the current one's
    state = store.describe(tenant_id)
    current_version, scope = state.version_with(CURRENT), KeyScope.of(state.tags)
    if base.rotation_id == rotation_id:
        return base.key_id, ""  # stored by an earlier run of this incident
    delete_keys_described(langsmith, key_description(tenant_id, rotation_id), scope)
    stored = mint_and_store(
        services, tenant_id, rotation_id, base=base, stage=REPLACEMENT, scope=scope
    )
    try:
        store.move_label(
            tenant_id, CURRENT, to_version=stored.version_id, from_version=current_version
        )
        store.remove_label(tenant_id, REPLACEMENT, from_version=stored.version_id)
    except BaseException:
        scope.delete(langsmith, stored.key_id)
        raise
    return stored.key_id, stored.short_key


def verify_replacement(services: Services, tenant_id: str) -> None:
    """The stored AWSCURRENT key authenticates (read back as an app would), bounded retries."""
    check_key(services.langsmith, services.store.read(tenant_id), tenant_id)


# -- the no-key mark ----------------------------------------------------------------------------------


def mark_no_key(services: Services, tenant_id: str, dead_key_id: str) -> None:
    services.store.set_tags(tenant_id, {TAG_STATUS: STATUS_NO_KEY, TAG_STATUS_KEY: dead_key_id})


def clear_no_key(services: Services, tenant_id: str, state: SecretState) -> None:
    if state.tags.get(TAG_STATUS) == STATUS_NO_KEY:
        services.store.set_tags(tenant_id, {TAG_STATUS: STATUS_ACTIVE, TAG_STATUS_KEY: ""})


def has_no_key(state: SecretState, current_key_id: str) -> bool:
    """Whether an emergency revoke left this tenant without a working key (its AWSCURRENT
    key is the dead one the mark names). Apps and `tenant-keys list` read it from the tags."""
    return (
        state.tags.get(TAG_STATUS) == STATUS_NO_KEY
        and state.tags.get(TAG_STATUS_KEY) == current_key_id
    )


def parse_reported_at(value: str | None) -> datetime | None:
    """The report time of an event (`event.occurred`, rendered as text), or None."""
    if not value or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(
            f"reported_at {value!r} is not an ISO 8601 time: pass e.g. 2025-01-31T12:00:00+00:00"
        ) from None
