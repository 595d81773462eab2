"""Emergency revoke: kill the suspect keys first, prove them dead, then replace the current key.

Security before availability, and kill first, lock later:
1. **resolve** (no side effect): check the request and name the suspect keys.
2. **kill**, without the tenant's lock: delete every suspect key at LangSmith, after proving
   it was minted for this tenant (its description). A deleted key cannot come back, so this
   is safe whatever a concurrent rotation is doing, and never waits for a lock that a
   crashed run still holds.
3. **confirm**: every killed key is refused, proven by its own 401 where the secret holds
   it, else by its absence from LangSmith's key list.
4. **replace**, under the tenant's lock: if AWSCURRENT's key is dead, mint a replacement,
   store it and move AWSCURRENT to it (compare-and-swap), then verify it. If a rotation
   already put a live, unsuspected key in AWSCURRENT, there is nothing to replace. If the
   replacement fails, the tenant keeps a dead key in AWSCURRENT (apps get 401, tracing
   stops) and the secret is tagged `revoked-no-key`: missing traces beat mixed ones.

Which keys are suspect:
- scope `current`: the key that is AWSCURRENT when the request is resolved;
- scope `all`: also every other labelled version's key and every key LangSmith lists with
  this tenant's description, whether the secret still knows it or not;
- an explicit key id (or a leaked key, matched to its id): that key.
A suspect that fails the ownership proof is not touched; the revoke then widens to every key
LangSmith lists for this tenant (the secret was edited: trust only LangSmith) and reports it.
Keys minted for this very incident are never suspect, so a repeated event or a rerun does
not revoke the replacement it already made.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tenant_keys import minting
from tenant_keys.errors import (
    BadInput,
    CorruptSecret,
    ReplacementFailed,
    RevokeFailed,
    TenantNotFound,
    error_text,
)
from tenant_keys.keys import (
    KeyHome,
    check_key,
    delete_hard,
    key_works,
    keys_by_mode,
    mint_and_store,
)
from tenant_keys.langsmith import ApiKeyInfo
from tenant_keys.layout import (
    CURRENT,
    PENDING,
    RETIRE_PENDING,
    REVOKE_REPLACEMENT,
    STATUS_ACTIVE,
    STATUS_NO_KEY,
    TAG_STATUS,
    TAG_STATUS_KEY,
    SecretState,
    TenantKeyRecord,
)
from tenant_keys.locks import TenantLocks
from tenant_keys.models import (
    key_description,
    key_fingerprint,
    parse_key_description,
    utcnow,
    validate_tenant_id,
)
from tenant_keys.services import Services

log = logging.getLogger(__name__)

RevokeScope = Literal["current", "all"]
REVOKE_SCOPES: tuple[RevokeScope, ...] = ("current", "all")
RevokeStatus = Literal["revoked", "revoked-no-key", "not-revoked"]
_INCIDENT_NAMESPACE = uuid.UUID("0d8f6c1e-7a2b-5c4d-9e3f-2b1a0c9d8e7f")


class Holding(BaseModel):
    """A labelled version of the tenant secret and the key it holds (ids only)."""

    model_config = ConfigDict(frozen=True)

    version_id: str
    key_id: str
    rotation_id: str
    labels: list[str]

    @property
    def stage(self) -> str:
        return CURRENT if CURRENT in self.labels else self.labels[0]


class RevokeRequest(BaseModel):
    """A checked request: which keys were suspect when it was resolved."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    scope: RevokeScope
    incident_id: str
    suspect_key_ids: list[str]

    @property
    def replacement_rotation_id(self) -> str:
        """The rotation id of the incident's replacement key: the same on every rerun."""
        return replacement_rotation_id(self.incident_id)


class RevokedKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: str
    short_key: str | None = None
    labels: list[str] = []  # where the secret held it; empty: known to LangSmith only
    deleted: bool  # False: it was already gone


class RevokeOutcome(BaseModel):
    """What happened to one tenant: ids, short keys and times only."""

    tenant_id: str
    incident_id: str
    scope: RevokeScope
    status: RevokeStatus = "not-revoked"
    revoked: list[RevokedKey] = Field(default_factory=list)
    # Suspects whose LangSmith record names another tenant (or none): never touched.
    not_owned: list[str] = Field(default_factory=list)
    replacement_key_id: str | None = None
    replacement_short_key: str | None = None
    error: str | None = None
    killed_at: datetime | None = None
    rejected_at: datetime | None = None  # every revoked key shown refused
    lock_acquired_at: datetime | None = None
    replaced_at: datetime | None = None
    verified_at: datetime | None = None


# -- 1. resolve --------------------------------------------------------------------------------


def tenant_from(value: str) -> str:
    """A tenant id, given plainly or as the event resource id `tenant.<id>`."""
    return validate_tenant_id(value.strip().removeprefix("tenant."))


def scope_from(value: str | None) -> RevokeScope:
    scope = (value or "current").strip().lower()
    if scope not in REVOKE_SCOPES:
        raise BadInput(f"scope {value!r} is invalid: use 'current' (the default) or 'all'")
    return scope


def key_id_from(value: str | None) -> str | None:
    """A key id as LangSmith gives it (a UUID), or None; anything else is refused, so a key
    pasted by mistake never goes further."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise BadInput(
            "--key-id must be a key id (a UUID, as `tenant-keys list` shows); to revoke from a "
            "leaked key itself, pipe it to `tenant-keys revoke --leaked-key -`"
        ) from None


def replacement_rotation_id(incident_id: str) -> str:
    return f"revoke-{uuid.uuid5(_INCIDENT_NAMESPACE, incident_id).hex[:12]}"


def request_from(
    services: Services,
    *,
    tenant: str | None,
    scope: str | None,
    key_id: str | None,
    fingerprint: str | None,
    incident_id: str,
) -> RevokeRequest:
    """A revoke request from what a caller or an event gave; raises `BadInput` before any side
    effect. With a leaked key's fingerprint, the tenant (if not given) and the key id are found
    by matching it (`find_leaked_key`)."""
    chosen = scope_from(scope)
    tenant_id = tenant_from(tenant) if tenant else None
    key = key_id_from(key_id)
    if fingerprint:
        match = find_leaked_key(services, fingerprint_from(fingerprint), tenant_id=tenant_id)
        tenant_id, key = match.tenant_id, match.key_id
    if tenant_id is None:
        raise BadInput("no tenant given: name the tenant, or give the leaked key to find it by")
    return resolve_request(services, tenant_id, chosen, key, incident_id)


def fingerprint_from(value: str) -> str:
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise BadInput("key_fingerprint must be the SHA-256 of the key, 64 hex characters")
    return text


def resolve_request(
    services: Services,
    tenant_id: str,
    scope: RevokeScope,
    key_id: str | None,
    incident_id: str,
) -> RevokeRequest:
    """Check the request and name the suspect keys; raises `BadInput` before any side effect."""
    store = services.store
    state = store.describe(tenant_id)  # TenantNotFound: a one-line BadInput
    if state.scheduled_for_deletion:
        raise BadInput(
            f"tenant {tenant_id!r} is being offboarded (secret {state.name} is scheduled for "
            "deletion): restore the secret first if its keys still need revoking"
        )
    holdings = secret_holdings(services, tenant_id, state)
    home = KeyHome.of(state.tags)
    ours = replacement_rotation_id(incident_id)
    if key_id:
        listed = {k.id: k for k in home.list_keys(services.langsmith)}
        if key_id not in holdings and not _minted_for(listed.get(key_id), tenant_id):
            raise BadInput(
                f"key {key_id} is not a key of tenant {tenant_id!r} (neither in its secret nor "
                "minted for it at LangSmith): check the id; `tenant-keys list` shows key ids"
            )
        suspects = [key_id]
    else:
        suspects = [current_holding(holdings).key_id]
    if scope == "all":
        suspects += list(holdings)
        suspects += [k.id for k in home.list_keys(services.langsmith) if _minted_for(k, tenant_id)]
    spared = {h.key_id for h in holdings.values() if h.rotation_id == ours}
    return RevokeRequest(
        tenant_id=tenant_id,
        scope=scope,
        incident_id=incident_id,
        suspect_key_ids=[k for k in dict.fromkeys(suspects) if k not in spared],
    )


def _minted_for(key: ApiKeyInfo | None, tenant_id: str) -> bool:
    """LangSmith's record of the key says the tool minted it for this tenant."""
    parsed = parse_key_description(key.description) if key else None
    return parsed is not None and parsed[0] == tenant_id


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


# -- a leaked key: which tenant, which key ------------------------------------------------------


class LeakMatch(BaseModel):
    """Whose key a leaked key is: ids only."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    key_id: str
    held: bool  # a version of the tenant's secret holds it (else only LangSmith knows it)


def find_leaked_key(
    services: Services,
    fingerprint: str,
    *,
    tenant_id: str | None = None,
    leaked: SecretStr | None = None,
) -> LeakMatch:
    """Match a leaked key to its tenant and key id, inside this process: by its fingerprint
    against every labelled version of the tenants' secrets (one tenant's when `tenant_id` is
    given), and, when the plaintext is at hand, by LangSmith's short form of the keys the tool
    minted (a key only LangSmith still knows). Raises `BadInput` if nothing matches."""
    candidates = _short_key_candidates(services, leaked, tenant_id) if leaked else []
    tenants = [tenant_id] if tenant_id else sorted({c.tenant_id for c in candidates})
    if not tenants and not candidates:
        tenants = sorted(services.store.iter_tenants())
    found = _match_in_store(services, fingerprint, tenants)
    if found is None and not tenant_id and candidates:
        found = _match_in_store(services, fingerprint, sorted(services.store.iter_tenants()))
    if found is not None:
        return found
    if len(candidates) == 1:
        return candidates[0]
    raise BadInput(
        "the leaked key matches no key of "
        + (f"tenant {tenant_id!r}" if tenant_id else "any tenant")
        + " (no secret version holds it and no key LangSmith lists has its short form): nothing "
        "was revoked; check that the whole key was given"
    )


def _match_in_store(services: Services, fingerprint: str, tenants: list[str]) -> LeakMatch | None:
    def scan(tenant_id: str) -> LeakMatch | None:
        try:
            state = services.store.describe(tenant_id)
            if state.scheduled_for_deletion:
                return None
            for holding in secret_holdings(services, tenant_id, state).values():
                record = _read(services, tenant_id, holding)
                if key_fingerprint(record.api_key) == fingerprint:
                    return LeakMatch(tenant_id=tenant_id, key_id=holding.key_id, held=True)
        except (TenantNotFound, CorruptSecret):
            return None
        return None

    workers = max(1, min(services.settings.max_concurrency, len(tenants)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return next((m for m in pool.map(scan, tenants) if m is not None), None)


def _short_key_candidates(
    services: Services, leaked: SecretStr, tenant_id: str | None
) -> list[LeakMatch]:
    """Keys the tool minted whose short form (LangSmith shows e.g. `lsv2_sk_...1a2b`) fits the
    leaked key. The short form's format is not documented: a form without `...` matches
    nothing, and the store comparison decides."""
    text = leaked.get_secret_value().strip()
    found = []
    for keys in keys_by_mode(services).values():
        for key in keys:
            parsed = parse_key_description(key.description)
            if parsed is None or (tenant_id is not None and parsed[0] != tenant_id):
                continue
            head, dots, tail = key.short_key.partition("...")
            if dots and head and len(tail) >= 4 and text.startswith(head) and text.endswith(tail):
                found.append(LeakMatch(tenant_id=parsed[0], key_id=key.id, held=False))
    return found


# -- 2-3. kill and confirm (no lock) -------------------------------------------------------------


def kill_suspects(
    services: Services, request: RevokeRequest, outcome: RevokeOutcome
) -> dict[str, Holding]:
    """Delete every suspect key the tool can prove is this tenant's; returns the holdings the
    proof of death reads. Raises `RevokeFailed` if a delete keeps failing."""
    tenant_id = request.tenant_id
    state = services.store.describe(tenant_id)
    home = KeyHome.of(state.tags)
    holdings = secret_holdings(services, tenant_id, state)
    listed = {k.id: k for k in home.list_keys(services.langsmith)}
    targets = list(request.suspect_key_ids)
    foreign = [k for k in targets if k in listed and not _minted_for(listed[k], tenant_id)]
    if foreign:
        # The secret names a key minted for someone else: it was edited. Trust only LangSmith:
        # every key minted for this tenant dies, and the foreign ones are left alone.
        outcome.not_owned = foreign
        log.error(
            "tenant=%s: key(s) %s in its secret were not minted for it: not touched; revoking "
            "every key minted for the tenant instead",
            tenant_id,
            ", ".join(foreign),
        )
        ours = request.replacement_rotation_id
        targets += [
            k.id
            for k in listed.values()
            if _minted_for(k, tenant_id)
            and parse_key_description(k.description) != (tenant_id, ours)
        ]
    deadline = services.settings.revoke_delete_deadline_seconds
    for key_id in dict.fromkeys(t for t in targets if t not in foreign):
        deleted = key_id in listed and delete_hard(
            services.langsmith, tenant_id, key_id, home=home, deadline_seconds=deadline
        )
        held = holdings.get(key_id)
        outcome.revoked.append(
            RevokedKey(
                key_id=key_id,
                short_key=listed[key_id].short_key if key_id in listed else None,
                labels=held.labels if held else [],
                deleted=deleted,
            )
        )
    outcome.killed_at = utcnow()
    return holdings


def confirm_rejected(
    services: Services, tenant_id: str, revoked: list[str], holdings: dict[str, Holding]
) -> None:
    """Every revoked key is refused: a key the secret holds must get 401 when used; any other
    must be gone from LangSmith's key list. Raises `RevokeFailed` otherwise."""
    for key_id in revoked:
        holding = holdings.get(key_id)
        if holding is not None and key_works(
            services.langsmith, _read(services, tenant_id, holding)
        ):
            raise RevokeFailed(tenant_id, key_id, "still accepted after its delete")
    unknown = {k for k in revoked if k not in holdings}
    if unknown:
        home = KeyHome.of(services.store.describe(tenant_id).tags)
        alive = unknown & {key.id for key in home.list_keys(services.langsmith)}
        if alive:
            raise RevokeFailed(tenant_id, sorted(alive)[0], "still listed after its delete")


def _read(services: Services, tenant_id: str, holding: Holding) -> TenantKeyRecord:
    return services.store.read(tenant_id, stage=holding.stage, version_id=holding.version_id)


# -- 4. replace (under the lock) -----------------------------------------------------------------


def drop_dead_labels(services: Services, tenant_id: str, revoked: list[str]) -> None:
    """AWSPENDING and RETIRE_PENDING on a revoked key's version mean nothing now: drop them, so
    no rotation resumes or retires a dead key. AWSCURRENT is replaced, not dropped."""
    state = services.store.describe(tenant_id)
    holdings = secret_holdings(services, tenant_id, state)
    for key_id in revoked:
        holding = holdings.get(key_id)
        for label in (PENDING, RETIRE_PENDING):
            if holding is not None and label in holding.labels:
                services.store.remove_label(tenant_id, label, from_version=holding.version_id)


def replace_current_key(
    services: Services, request: RevokeRequest, revoked: list[str]
) -> tuple[str, str] | None:
    """Mint a key for the incident and make it AWSCURRENT, if AWSCURRENT's key is one of the
    revoked (or no longer works); returns (key id, short key), or None when a live,
    unsuspected key is already current (a rotation replaced it meanwhile).

    The new version is written under its own label, then AWSCURRENT moves to it with a
    compare-and-swap, as in a rotation's promote. A failed store deletes the key just minted;
    a rerun first deletes whatever an interrupted earlier run of the same incident minted.
    """
    store, langsmith, tenant_id = services.store, services.langsmith, request.tenant_id
    rotation_id = request.replacement_rotation_id
    state = store.describe(tenant_id)
    current = store.read(tenant_id)  # the project the replacement serves is the current one's
    if current.rotation_id == rotation_id:
        return None  # stored by an earlier run of this incident
    if current.key_id not in revoked and key_works(langsmith, current):
        return None
    home = KeyHome.of(state.tags)
    minting.delete_described(langsmith, home, key_description(tenant_id, rotation_id))
    stored = mint_and_store(
        services, tenant_id, rotation_id, base=current, stage=REVOKE_REPLACEMENT, home=home
    )
    assert stored.version_id is not None and stored.record is not None
    try:
        home.confine(langsmith, stored.record, tenant_id)
        store.move_label(
            tenant_id,
            CURRENT,
            to_version=stored.version_id,
            from_version=state.version_with(CURRENT),
        )
        store.remove_label(tenant_id, REVOKE_REPLACEMENT, from_version=stored.version_id)
    except BaseException:
        home.delete(langsmith, stored.key_id)
        raise
    return stored.key_id, stored.short_key


def verify_replacement(services: Services, tenant_id: str) -> None:
    """The stored AWSCURRENT key authenticates (read back as an app would), bounded retries."""
    check_key(services.langsmith, services.store.read(tenant_id), tenant_id)


def mark_no_key_if_dead(services: Services, tenant_id: str) -> None:
    """After a failed replacement: if AWSCURRENT's key does not work, tag the secret so apps and
    `tenant-keys list` see that the tenant has no key. Best effort: the revoke fails loudly anyway."""
    try:
        record = services.store.read(tenant_id)
        if not key_works(services.langsmith, record):
            services.store.set_tags(
                tenant_id, {TAG_STATUS: STATUS_NO_KEY, TAG_STATUS_KEY: record.key_id}
            )
    except Exception as exc:
        log.error("tenant=%s could not mark the secret no-key: %s", tenant_id, error_text(exc))


def clear_no_key(services: Services, tenant_id: str) -> None:
    if services.store.describe(tenant_id).tags.get(TAG_STATUS) == STATUS_NO_KEY:
        services.store.set_tags(tenant_id, {TAG_STATUS: STATUS_ACTIVE, TAG_STATUS_KEY: ""})


# -- the driver ----------------------------------------------------------------------------------


def kill(services: Services, request: RevokeRequest) -> RevokeOutcome:
    """Steps 2 and 3 alone: kill the suspects and prove them dead, without the lock and without
    replacing. `revoke` starts with it; the served deployment's listener runs it the moment a
    report arrives, before a flow run exists, and the run that follows finds the keys dead.
    Failures become the outcome (`rejected_at` unset), never an exception."""
    outcome = RevokeOutcome(
        tenant_id=request.tenant_id, incident_id=request.incident_id, scope=request.scope
    )
    try:
        holdings = kill_suspects(services, request, outcome)
        revoked = [k.key_id for k in outcome.revoked]
        confirm_rejected(services, request.tenant_id, revoked, holdings)
    except Exception as exc:
        if any(k.deleted for k in outcome.revoked):
            # A later suspect survived; the current key may be dead.
            mark_no_key_if_dead(services, request.tenant_id)
        outcome.error = error_text(exc)
        return outcome
    outcome.rejected_at = utcnow()
    outcome.status = "revoked-no-key"  # from here on, the suspects are dead
    return outcome


def revoke(services: Services, request: RevokeRequest, locks: TenantLocks) -> RevokeOutcome:
    """Kill, confirm, then replace under the tenant's lock. Failures become the outcome, never
    an exception: the caller records the incident whatever happened. Give it the services'
    urgent lane (`Services.urgent`) so a fan-out's rate budget never delays it."""
    tenant_id = request.tenant_id
    outcome = kill(services, request)
    if outcome.rejected_at is None:
        return outcome
    revoked = [k.key_id for k in outcome.revoked]
    try:
        with locks.hold([tenant_id]):
            outcome.lock_acquired_at = utcnow()
            drop_dead_labels(services, tenant_id, revoked)
            replaced = replace_current_key(services, request, revoked)
            if replaced is not None:
                outcome.replaced_at = utcnow()
                outcome.replacement_key_id, outcome.replacement_short_key = replaced
            verify_replacement(services, tenant_id)
    except Exception as exc:
        mark_no_key_if_dead(services, tenant_id)
        outcome.error = error_text(ReplacementFailed(tenant_id, error_text(exc)))
        return outcome
    outcome.verified_at = utcnow()
    clear_no_key(services, tenant_id)
    outcome.status = "revoked"
    return outcome
