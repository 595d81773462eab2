"""`tenant-keys revoke` (run the emergency revoke here, now) and `tenant-keys report-compromise`
(emit the `security.key.compromised` event that triggers the served deployment)."""

from __future__ import annotations

import getpass
import socket
import uuid
from typing import Annotated

import typer

from tenant_keys.cli.app import app, console, print_state, run
from tenant_keys.errors import BadInput, ConfigError
from tenant_keys.models import utcnow
from tenant_keys.redact import redact

ScopeOption = Annotated[
    str, typer.Option(help="'current' (default): the current key; 'all': every key minted for it.")
]
KeyIdOption = Annotated[
    str | None, typer.Option("--key-id", help="Revoke this key of the tenant (default: current).")
]
ReasonOption = Annotated[
    str, typer.Option(help="Why: the alert, ticket or report. Recorded in the incident.")
]


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # getpass raises several kinds when no user name is known
        return socket.gethostname()


def _reason(reason: str) -> str:
    text = redact(reason.strip())  # someone may paste the leaked key itself into the reason
    if not text:
        raise BadInput("--reason is empty: say why (the alert, ticket or report)")
    return text


@app.command()
def revoke(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    reason: ReasonOption,
    scope: ScopeOption = "current",
    key_id: KeyIdOption = None,
) -> None:
    """Emergency revoke: delete the tenant's suspect key(s) at LangSmith now, then replace the key."""

    def action() -> None:
        from flows.revoke import emergency_revoke
        from tenant_keys.revoke import resolve_request, scope_from, tenant_from
        from tenant_keys.services import get_services

        tenant_id, chosen, why = tenant_from(tenant), scope_from(scope), _reason(reason)
        incident_id = str(uuid.uuid4())
        # Bad input gets its one line here, before any flow run or side effect.
        resolve_request(get_services(), tenant_id, chosen, key_id, incident_id)
        state = emergency_revoke(
            tenant_id,
            reason=why,
            scope=chosen,
            key_id=key_id,
            reported_by=_who(),
            trigger="cli tenant-keys revoke",
            reported_at=utcnow().isoformat(),
            incident_id=incident_id,
            return_state=True,
        )
        print_state(state)

    run(action, needs_settings=True)


@app.command(name="report-compromise")
def report_compromise(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    reason: ReasonOption,
    scope: ScopeOption = "current",
    key_id: KeyIdOption = None,
    reported_by: Annotated[
        str | None, typer.Option(help="Who or what reports it (default: user@host).")
    ] = None,
) -> None:
    """Emit `security.key.compromised` for the tenant; the served `emergency-revoke` deployment
    picks it up. For wiring alerts from elsewhere: no AWS or LangSmith access needed here."""

    def action() -> None:
        from tenant_keys.revoke import scope_from, tenant_from

        tenant_id, chosen, why = tenant_from(tenant), scope_from(scope), _reason(reason)
        event_id = emit_compromise(
            tenant_id, reason=why, scope=chosen, key_id=key_id, reported_by=reported_by or _who()
        )
        console.print(
            f"reported: security.key.compromised for tenant {tenant_id} (event {event_id}); "
            "the emergency-revoke deployment's run records the incident"
        )

    run(action)


def emit_compromise(
    tenant_id: str, *, reason: str, scope: str, key_id: str | None, reported_by: str
) -> str:
    """Emit the event and wait until it is sent; returns its id."""
    from prefect._internal.concurrency.services import QueueService
    from prefect.events import emit_event

    from flows.revoke import COMPROMISED_EVENT
    from tasks.events import tenant_resource

    payload = {"reason": reason, "scope": scope, "reported_by": reported_by}
    if key_id:
        payload["key_id"] = key_id
    event = emit_event(COMPROMISED_EVENT, resource=tenant_resource(tenant_id), payload=payload)
    if event is None:
        raise ConfigError("no Prefect API to send the event to: set PREFECT_API_URL")
    QueueService.drain_all(timeout=10)  # a short-lived process: send before exiting
    return str(event.id)
