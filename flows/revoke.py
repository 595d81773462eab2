"""Emergency revoke: a leaked tenant key is dead within seconds, with an incident record.

Per tenant, under the tenant's lock (the same one rotation takes; the flow body takes it
before the task run starts, see docs/revoke.md, "Time to revoke"):
plan the suspect keys → delete them at LangSmith (hard, fast retries) →
prove them rejected → drop labels that point at dead keys → mint and store a
replacement as AWSCURRENT → verify it. Security before availability: nothing
is replaced before the suspects are dead, and a failed replacement leaves the
tenant with no working key (tracing stops), marked on its secret, loudly.

Triggered by the `security.key.compromised` event through the
`emergency-revoke` deployment (prefect.yaml; `python -m flows.revoke serve`
serves it with the same trigger), or by `tenant-keys revoke`.
Every run writes a markdown incident artifact and emits
`tenant-keys.key.revoked`; ids and short keys only, never keys.
"""

from __future__ import annotations

import logging
import sys
import uuid
from datetime import datetime
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from tasks.events import emit_tenant_event
from tasks.locks import ensure_tenant_locks, tenant_lock
from tenant_keys.errors import TenantKeysError
from tenant_keys.keys import KeyScope
from tenant_keys.models import utcnow
from tenant_keys.redact import redact
from tenant_keys.revoke import (
    ReplacementFailed,
    RevokedKey,
    RevokeRequest,
    Scope,
    clear_no_key,
    confirm_rejected,
    current_holding,
    delete_hard,
    drop_dead_labels,
    mark_no_key,
    parse_reported_at,
    plan_targets,
    resolve_request,
    scope_from,
    secret_holdings,
    store_replacement,
    tenant_from,
    verify_replacement,
)
from tenant_keys.services import get_services

log = logging.getLogger(__name__)

COMPROMISED_EVENT = "security.key.compromised"
REVOKED_EVENT = "tenant-keys.key.revoked"
NO_KEY_EVENT = "tenant-keys.tenant.no-key"
REVOKE_FAILED_EVENT = "tenant-keys.revoke.failed"
DEPLOYMENT_NAME = "emergency-revoke"
# The served runner asks the server for new runs this often (Prefect's default is 10 s,
# which alone would break the 5 s goal; see docs/revoke.md).
SERVE_POLL_SECONDS = 0.5

Outcome = Literal["revoked", "revoked-no-key", "not-revoked"]


class RevokeOutcome(BaseModel):
    """What happened to one tenant: ids, short keys and times only."""

    tenant_id: str
    incident_id: str
    scope: Scope
    outcome: Outcome
    revoked: list[RevokedKey] = []
    replacement_key_id: str | None = None
    replacement_short_key: str | None = None
    error: str | None = None
    lock_acquired_at: datetime | None = None
    rejected_at: datetime | None = None  # every revoked key shown refused
    replaced_at: datetime | None = None
    verified_at: datetime | None = None


def revoke_one(request: RevokeRequest, lock_acquired_at: datetime) -> RevokeOutcome:
    """The protocol for one tenant; the caller holds the tenant's lock. Failures become the
    outcome, never a leak: the caller records the incident whatever happened."""
    services = get_services()
    tenant_id = request.tenant_id
    outcome = RevokeOutcome(
        tenant_id=tenant_id,
        incident_id=request.incident_id,
        scope=request.scope,
        outcome="not-revoked",
        lock_acquired_at=lock_acquired_at,
    )
    try:
        state = services.store.describe(tenant_id)
        scope = KeyScope.of(state.tags)  # workspace keys or org service keys, by the tenant's mode
        holdings = secret_holdings(services, tenant_id, state)
        targets = plan_targets(services, request, holdings)
        short_keys = {k.id: k.short_key for k in scope.list_keys(services.langsmith)}
        for key_id in targets:
            deleted = delete_hard(services.langsmith, tenant_id, key_id, scope=scope)
            held = holdings.get(key_id)
            outcome.revoked.append(
                RevokedKey(
                    key_id=key_id,
                    short_key=short_keys.get(key_id),
                    labels=held.labels if held else [],
                    deleted=deleted,
                )
            )
        confirm_rejected(services, tenant_id, targets, holdings)
        outcome.rejected_at = utcnow()
        outcome.outcome = "revoked-no-key"  # from here on, the suspects are dead

        try:
            drop_dead_labels(services, tenant_id, targets, holdings)
            if current_holding(holdings).key_id in targets:
                key_id, short_key = store_replacement(services, tenant_id, request.incident_id)
                outcome.replaced_at = utcnow()
                outcome.replacement_key_id, outcome.replacement_short_key = key_id, short_key
            verify_replacement(services, tenant_id)
        except Exception as exc:
            _mark_if_no_key(tenant_id)
            raise ReplacementFailed(tenant_id, _why(exc)) from exc
        outcome.verified_at = utcnow()
        clear_no_key(services, tenant_id, state)
        outcome.outcome = "revoked"
    except Exception as exc:
        if any(k.deleted for k in outcome.revoked) and outcome.outcome == "not-revoked":
            _mark_if_no_key(tenant_id)  # a later suspect survived, but the current key may be dead
        error = str(exc) if isinstance(exc, TenantKeysError) else f"{type(exc).__name__}: {exc}"
        outcome.error = redact(error.splitlines()[0] if error else type(exc).__name__)
    return outcome


def _mark_if_no_key(tenant_id: str) -> None:
    """After a failed replacement: if AWSCURRENT's key does not work, tag the secret so apps and
    `tenant-keys list` see that the tenant has no key. Best effort: the run fails loudly anyway."""
    services = get_services()
    try:
        record = services.store.read(tenant_id)
        if not services.langsmith.authenticates(record.api_key, workspace_id=record.workspace_id):
            mark_no_key(services, tenant_id, record.key_id)
    except Exception as exc:
        get_run_logger().error(
            "tenant=%s could not mark the secret no-key: %s", tenant_id, _why(exc)
        )


def _why(exc: Exception) -> str:
    return redact(f"{type(exc).__name__}: {exc}".splitlines()[0])


@task(
    name="revoke-tenant-keys",
    task_run_name="revoke-{request.tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def revoke_tenant(request: RevokeRequest, lock_acquired_at: datetime) -> RevokeOutcome:
    outcome = revoke_one(request, lock_acquired_at)
    get_run_logger().info(
        "tenant=%s incident=%s outcome=%s revoked=%s replacement=%s",
        outcome.tenant_id,
        outcome.incident_id,
        outcome.outcome,
        ",".join(k.key_id for k in outcome.revoked),
        outcome.replacement_key_id,
    )
    return outcome


@flow(name="emergency-revoke", log_prints=False)
def emergency_revoke(
    tenant: str,
    reason: str = "",
    scope: str = "current",
    key_id: str | None = None,
    reported_by: str | None = None,
    trigger: str | None = None,
    reported_at: str | None = None,
    incident_id: str | None = None,
) -> State:
    """Revoke a tenant's suspect key(s) now, replace the current one, record the incident.

    `tenant` may be an id or the event resource id `tenant.<id>`; `scope` is `current`
    or `all`; `key_id` names one suspect key instead; `reported_at` (ISO 8601) is when the
    leak was reported, the start of the time-to-revoke.
    """
    started = utcnow()
    tenant_id = tenant_from(tenant)
    chosen = scope_from(scope)
    reported = parse_reported_at(reported_at) or started
    incident = (incident_id or "").strip() or str(flow_run.id or uuid.uuid4())
    services = get_services()
    # Bad input (unknown tenant, foreign key id, no secret) stops here, before any side effect.
    request = resolve_request(services, tenant_id, chosen, (key_id or "").strip(), incident)
    ensure_tenant_locks([tenant_id])

    try:
        # Taken here, before the task run exists: on a SQLite server the acquire collided with
        # the server recording the new task run (a 503, then Prefect's client waits 2 s).
        with tenant_lock(tenant_id):
            outcome = revoke_tenant(request, utcnow())
    except Exception as exc:  # the lock itself: missing, or not free within its wait
        error = redact(f"{type(exc).__name__}: {exc}".splitlines()[0])
        outcome = RevokeOutcome(
            tenant_id=tenant_id,
            incident_id=incident,
            scope=chosen,
            outcome="not-revoked",
            error=f"tenant lock not acquired ({error})",
        )

    details = IncidentDetails(
        reason=redact(reason.strip()) or "(no reason given)",
        reported_by=redact((reported_by or "").strip()) or "(unknown)",
        trigger=(trigger or "").strip() or "flow run",
        reported_at=reported,
        started_at=started,
    )
    record_incident(outcome, details)
    summary = _summary(outcome, details)
    get_run_logger().info(summary)
    if outcome.outcome != "revoked":
        return Failed(message=f"{summary}: {outcome.error}")
    return Completed(message=summary)


# -- the incident record ---------------------------------------------------------------------------


class IncidentDetails(BaseModel):
    reason: str
    reported_by: str
    trigger: str
    reported_at: datetime
    started_at: datetime


def seconds_to_rejected(outcome: RevokeOutcome, details: IncidentDetails) -> float | None:
    if outcome.rejected_at is None:
        return None
    return round((outcome.rejected_at - details.reported_at).total_seconds(), 3)


def record_incident(outcome: RevokeOutcome, details: IncidentDetails) -> None:
    """The markdown artifact (a version per revoke under `revoke-<tenant>`) and the events."""
    create_markdown_artifact(
        markdown=incident_markdown(outcome, details),
        key=f"revoke-{outcome.tenant_id}",
        description=f"Emergency revoke of {outcome.tenant_id}: {outcome.outcome}",
    )
    payload: dict[str, Any] = {
        "incident_id": outcome.incident_id,
        "outcome": outcome.outcome,
        "scope": outcome.scope,
        "key_ids": [k.key_id for k in outcome.revoked],
        "short_keys": [k.short_key for k in outcome.revoked if k.short_key],
        "replacement_key_id": outcome.replacement_key_id,
        "reason": details.reason,
        "reported_by": details.reported_by,
        "trigger": details.trigger,
        "seconds_to_rejected": seconds_to_rejected(outcome, details),
        "timeline": {step: since for step, _, since in _timeline(outcome, details)},
    }
    if outcome.rejected_at is not None:
        emit_tenant_event(REVOKED_EVENT, outcome.tenant_id, **payload)
    if outcome.outcome == "revoked-no-key":
        emit_tenant_event(NO_KEY_EVENT, outcome.tenant_id, **payload, error=outcome.error)
    if outcome.outcome == "not-revoked":
        emit_tenant_event(REVOKE_FAILED_EVENT, outcome.tenant_id, **payload, error=outcome.error)


_HEADLINES = {
    "revoked": "suspect key(s) dead, replacement stored and verified",
    "revoked-no-key": "suspect key(s) dead, NO WORKING KEY: the tenant's tracing is off",
    "not-revoked": "REVOKE FAILED: a suspect key may still work",
}


def incident_markdown(outcome: RevokeOutcome, details: IncidentDetails) -> str:
    seconds = seconds_to_rejected(outcome, details)
    rows = [
        ("incident", outcome.incident_id),
        ("outcome", f"**{outcome.outcome}**: {_HEADLINES[outcome.outcome]}"),
        ("reason", details.reason),
        ("reported by", details.reported_by),
        ("trigger", details.trigger),
        ("scope", outcome.scope),
        ("replacement key id", outcome.replacement_key_id or "-"),
        ("replacement short key", outcome.replacement_short_key or "-"),
        ("seconds from report to key rejected", "-" if seconds is None else f"{seconds:.3f}"),
    ]
    if outcome.error:
        rows.append(("error", outcome.error))
    lines = [f"# Emergency revoke: tenant `{outcome.tenant_id}`", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    lines += ["", "## Keys revoked", "", "| key id | short key | held as | deleted now |"]
    lines += ["|---|---|---|---|"]
    for key in outcome.revoked:
        held = ", ".join(key.labels) or "(LangSmith only)"
        deleted = "yes" if key.deleted else "already gone"
        lines.append(f"| {key.key_id} | {_cell(key.short_key or '-')} | {held} | {deleted} |")
    if not outcome.revoked:
        lines.append("| - | - | - | - |")
    lines += ["", "## Timeline (UTC)", "", "| step | at | seconds since report |", "|---|---|---|"]
    for step, at, since in _timeline(outcome, details):
        lines.append(f"| {step} | {at.isoformat(timespec='milliseconds')} | {since:.3f} |")
    return "\n".join(lines) + "\n"


def _timeline(
    outcome: RevokeOutcome, details: IncidentDetails
) -> list[tuple[str, datetime, float]]:
    """(step, time, seconds since the report) of each step the revoke reached."""
    steps = [
        ("reported", details.reported_at),
        ("flow run started", details.started_at),
        ("tenant lock acquired", outcome.lock_acquired_at),
        ("keys rejected (401)", outcome.rejected_at),
        ("replacement stored", outcome.replaced_at),
        ("replacement verified", outcome.verified_at),
    ]
    return [
        (step, at, round((at - details.reported_at).total_seconds(), 3))
        for step, at in steps
        if at is not None
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _summary(outcome: RevokeOutcome, details: IncidentDetails) -> str:
    seconds = seconds_to_rejected(outcome, details)
    dead = f", rejected {seconds:.2f} s after the report" if seconds is not None else ""
    return (
        f"revoke of {outcome.tenant_id} ({outcome.scope}): {outcome.outcome}, "
        f"{len(outcome.revoked)} key(s){dead}"
    )


# -- the event trigger, shared by prefect.yaml and `serve` --------------------------------------------

# Parameters rendered from the `security.key.compromised` event. Prefect renders a lone
# `{{ expr }}` through `| tojson`, so every such value must be JSON-ready: missing payload
# fields get a default (an undefined value fails the whole run creation), ids and times
# become strings.
TRIGGER_PARAMETERS: dict[str, str] = {
    "tenant": "{{ event.resource.id }}",
    "reason": "{{ event.payload.reason | default('') }}",
    "scope": "{{ event.payload.scope | default('current', true) }}",
    "key_id": "{{ event.payload.key_id | default(none) }}",
    "reported_by": "{{ event.payload.reported_by | default('') }}",
    "trigger": "event {{ event.event }} {{ event.id }}",
    "reported_at": "{{ event.occurred.isoformat() }}",
    "incident_id": "{{ event.id | string }}",
}


def compromise_trigger() -> DeploymentEventTrigger:
    return DeploymentEventTrigger(
        name="key-compromised",
        expect={COMPROMISED_EVENT},
        match={"prefect.resource.id": "tenant.*"},
        for_each={"prefect.resource.id"},
        parameters=TRIGGER_PARAMETERS,
    )


def serve_revoke(poll_seconds: float = SERVE_POLL_SECONDS) -> None:
    """Serve the `emergency-revoke` deployment with its event trigger, without a work pool."""
    from prefect import serve

    deployment = emergency_revoke.to_deployment(
        name=DEPLOYMENT_NAME,
        triggers=[compromise_trigger()],
        description="Revoke a tenant's leaked key on security.key.compromised",
    )
    serve(deployment, query_seconds=poll_seconds, print_starting_message=False)


def main(argv: list[str]) -> None:
    """`python -m flows.revoke serve [--poll SECONDS]`"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.revoke")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument(
        "--poll", type=float, default=SERVE_POLL_SECONDS, help="runner poll interval (s)"
    )
    args = parser.parse_args(argv)
    serve_revoke(args.poll)


if __name__ == "__main__":
    main(sys.argv[1:])
