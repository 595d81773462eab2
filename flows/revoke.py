"""Emergency revoke: the Prefect shell of `tenant_keys.revocation`, with its incident record.

Triggered by the `security.key.compromised` event through the `emergency-revoke` deployment
(prefect.yaml; `python -m flows.revoke serve` serves it with the same trigger), or by
`tenant-keys revoke`. The suspect keys die first, without waiting for the tenant's lock; only
the replacement takes it. Every run writes a markdown incident artifact and emits
`tenant-keys.key.revoked`; ids and short keys only, never keys.
"""

from __future__ import annotations

import sys
import uuid
from contextlib import suppress

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from tasks.events import emit
from tasks.locks import tenant_locks
from tasks.revoke_listener import start_listener
from tenant_keys.events import COMPROMISED, LEAK_RESOURCE_PREFIX
from tenant_keys.incident import Incident, IncidentDetails
from tenant_keys.models import utcnow
from tenant_keys.revocation import RevokeOutcome, RevokeRequest, request_from, revoke
from tenant_keys.services import get_services

DEPLOYMENT_NAME = "emergency-revoke"
# The served runner asks the server for new runs this often (Prefect's default is 10 s,
# which alone would break the 5 s goal; see docs/revoke.md).
SERVE_POLL_SECONDS = 0.5


@task(
    name="revoke-tenant-keys",
    task_run_name="revoke-{request.tenant_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def revoke_tenant(request: RevokeRequest) -> RevokeOutcome:
    outcome = revoke(get_services().urgent(), request, tenant_locks())
    get_run_logger().info(
        "tenant=%s incident=%s outcome=%s revoked=%s replacement=%s",
        outcome.tenant_id,
        outcome.incident_id,
        outcome.status,
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
    key_fingerprint: str | None = None,
    reported_by: str | None = None,
    trigger: str | None = None,
    reported_at: str | None = None,
    incident_id: str | None = None,
) -> State:
    """Revoke a tenant's suspect key(s) now, replace the current one, record the incident.

    `tenant` is an id or the event resource id `tenant.<id>` (`tenant-keys.leak.<...>` when
    the report names only a leaked key); `scope` is `current` or `all`; `key_id` names one
    suspect key instead, or `key_fingerprint` (SHA-256 of a leaked key) does; `reported_at`
    (ISO 8601) is when the leak was reported, the start of the time-to-revoke.
    """
    started = utcnow()
    services = get_services().urgent()
    incident = (incident_id or "").strip() or str(flow_run.id or uuid.uuid4())
    # Bad input (unknown tenant, foreign key id, no match) stops here, before any side effect.
    details = IncidentDetails.of(
        reason=reason,
        reported_by=reported_by,
        trigger=trigger or "flow run",
        reported_at=reported_at,
        started_at=started,
    )
    request = request_from(
        services,
        tenant=None if tenant.startswith(LEAK_RESOURCE_PREFIX) else tenant,
        scope=scope,
        key_id=key_id,
        fingerprint=key_fingerprint,
        incident_id=incident,
    )
    tenant_locks().ensure([request.tenant_id])
    outcome = revoke_tenant(request)
    record = Incident(outcome=outcome, details=details)
    record_incident(record)
    summary = record.summary()
    get_run_logger().info(summary)
    if outcome.status != "revoked":
        return Failed(message=f"{summary}: {outcome.error}")
    return Completed(message=summary)


def record_incident(incident: Incident) -> None:
    """The markdown artifact (a version per revoke under `revoke-<tenant>`) and the events."""
    outcome = incident.outcome
    create_markdown_artifact(
        markdown=incident.markdown(),
        key=f"revoke-{outcome.tenant_id}",
        description=f"Emergency revoke of {outcome.tenant_id}: {outcome.status}",
    )
    emit(incident.events(), occurred=incident.outcome.rejected_at if incident.break_glass else None)


@flow(name="record-break-glass-incident", log_prints=False)
def record_break_glass_incident(incident: Incident) -> str:
    """Replay a revoke that ran with Prefect down (`tenant-keys incidents sync`): its incident
    artifact and events, stamped with when they happened."""
    record_incident(incident)
    summary = f"break-glass {incident.summary()}"
    get_run_logger().info(summary)
    return summary


# -- the event trigger, shared by prefect.yaml and `serve` ---------------------------------------


def _text(field: str, limit: int, default: str = "") -> str:
    """A free-text payload field as a parameter: withheld whole if it looks like it holds a key
    (Prefect stores parameters in plain text), cut to `limit` characters otherwise."""
    value = f"(event.payload.{field} | default('{default}', true) | string)"
    looks_like_a_key = f"('lsv2_' in {value} or 'ls__' in {value})"
    # Parenthesised whole: Prefect appends `| tojson` to a lone expression, and a filter binds
    # tighter than `if ... else`.
    return f"{{{{ ('(withheld: it looked like a key)' if {looks_like_a_key} else {value}[:{limit}]) }}}}"


def _id(field: str, length: int) -> str:
    """An id payload field as a parameter, only if it has an id's length (a UUID, a SHA-256):
    anything else, a pasted key included, becomes null."""
    value = f"(event.payload.{field} | default('') | string)"
    return f"{{{{ ({value} if ({value} | length) == {length} else none) }}}}"


# Parameters rendered from the `security.key.compromised` event. Prefect renders a lone
# `{{ expr }}` through `| tojson`, so every value must be JSON-ready: missing payload fields
# get a default (an undefined value fails the whole run creation), ids and times become
# strings.
TRIGGER_PARAMETERS: dict[str, str] = {
    "tenant": "{{ event.resource.id }}",
    "reason": _text("reason", 500),
    "scope": "{{ event.payload.scope | default('current', true) }}",
    "key_id": _id("key_id", 36),
    "key_fingerprint": _id("key_fingerprint", 64),
    "reported_by": _text("reported_by", 200),
    "trigger": "event {{ event.event }} {{ event.id }}",
    "reported_at": "{{ event.occurred.isoformat() }}",
    "incident_id": "{{ event.id | string }}",
}
TRIGGER_RESOURCES = ["tenant.*", f"{LEAK_RESOURCE_PREFIX}*"]


def compromise_trigger() -> DeploymentEventTrigger:
    return DeploymentEventTrigger(
        name="key-compromised",
        expect={COMPROMISED},
        match={"prefect.resource.id": TRIGGER_RESOURCES},
        for_each={"prefect.resource.id"},
        parameters=TRIGGER_PARAMETERS,
    )


def serve_revoke(poll_seconds: float = SERVE_POLL_SECONDS) -> None:
    """Serve the `emergency-revoke` deployment with its event trigger, without a work pool."""
    from prefect import serve
    from prefect.deployments.runner import RunnerDeployment

    deployment = emergency_revoke.to_deployment(
        name=DEPLOYMENT_NAME,
        triggers=[compromise_trigger()],
        description="Revoke a tenant's leaked key on security.key.compromised",
    )
    assert isinstance(deployment, RunnerDeployment)  # built from sync code: the sync variant
    start_listener()  # kills on report while the runner starts the run's process
    serve(deployment, query_seconds=poll_seconds, print_starting_message=False)


def listen() -> None:
    """Only the kill-on-report listener, beside a worker that runs the deployment; until
    Ctrl-C or SIGTERM."""
    with suppress(KeyboardInterrupt):
        start_listener().wait()


def main(argv: list[str]) -> None:
    """`python -m flows.revoke serve [--poll SECONDS]` or `python -m flows.revoke listen`"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.revoke")
    parser.add_argument("command", choices=["serve", "listen"])
    parser.add_argument(
        "--poll", type=float, default=SERVE_POLL_SECONDS, help="runner poll interval (s)"
    )
    args = parser.parse_args(argv)
    if args.command == "listen":
        listen()
    else:
        serve_revoke(args.poll)


if __name__ == "__main__":
    main(sys.argv[1:])
