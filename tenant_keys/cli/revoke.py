"""`tenant-keys revoke` (run the emergency revoke here, now), `tenant-keys report-compromise`
(emit the `security.key.compromised` event that triggers the deployment) and `tenant-keys
incidents sync` (replay break-glass incident records into Prefect)."""

from __future__ import annotations

import getpass
import socket
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr

from tenant_keys.cli.app import app, console, err, print_state, run
from tenant_keys.errors import BadInput, ConfigError
from tenant_keys.models import key_fingerprint, utcnow
from tenant_keys.redact import looks_like_key

if TYPE_CHECKING:
    from tenant_keys.events import KeyCompromisedEvent
    from tenant_keys.revocation import RevokeRequest

ScopeOption = Annotated[
    str, typer.Option(help="'current' (default): the current key; 'all': every key minted for it.")
]
KeyIdOption = Annotated[
    str | None,
    typer.Option("--key-id", help="Revoke this key of the tenant, by id (default: the current)."),
]
LeakedKeyOption = Annotated[
    str | None,
    typer.Option(
        "--leaked-key",
        help="'-': read the leaked key itself from standard input and revoke it (the tenant is "
        "found from it). It never leaves this process.",
    ),
]
LeakedKeyFileOption = Annotated[
    Path | None,
    typer.Option("--leaked-key-file", help="Read the leaked key from this file instead."),
]
ReasonOption = Annotated[
    str, typer.Option(help="Why: the alert, ticket or report. Recorded in the incident.")
]

incidents_app = typer.Typer(help="Incident records of break-glass revokes.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # getpass raises several kinds when no user name is known
        return socket.gethostname()


def _text(option: str, value: str, *, required: bool) -> str:
    """Free text for the incident record; refused if it holds something shaped like a key
    (someone pasted the leaked key into the wrong field)."""
    text = value.strip()
    if looks_like_key(text):
        raise BadInput(
            f"{option} looks like it holds an API key: leave the key out (pipe it to "
            "`--leaked-key -` if it is the leaked key)"
        )
    if required and not text:
        raise BadInput(f"{option} is empty: say why (the alert, ticket or report)")
    return text


def _leaked_key(option: str | None, path: Path | None) -> SecretStr | None:
    """The leaked key from standard input (`-`) or a file; never from the command line, where
    it would land in the shell's history and the process list."""
    if option is not None and option != "-":
        raise BadInput(
            "--leaked-key takes '-' (the key on standard input), never the key itself: "
            "e.g. `pbpaste | tenant-keys revoke --leaked-key - --reason R`"
        )
    if option == "-":
        text = sys.stdin.readline().strip()
    elif path is not None:
        if not path.is_file():
            raise BadInput(f"--leaked-key-file {path} does not exist")
        text = path.read_text().strip()
    else:
        return None
    if not text:
        raise BadInput("the leaked key is empty: give the whole key on standard input")
    return SecretStr(text)


@app.command()
def revoke(
    tenant: Annotated[
        str | None, typer.Argument(help="Tenant id (optional with a leaked key).")
    ] = None,
    reason: ReasonOption = "",
    scope: ScopeOption = "current",
    key_id: KeyIdOption = None,
    leaked_key: LeakedKeyOption = None,
    leaked_key_file: LeakedKeyFileOption = None,
) -> None:
    """Emergency revoke: delete the tenant's suspect key(s) at LangSmith now, then replace the
    current key. With the Prefect server unreachable it runs here without it (break-glass) and
    keeps the incident record for `tenant-keys incidents sync`."""

    def action() -> None:
        from tasks.server import reachable
        from tenant_keys.revocation import find_leaked_key, request_from
        from tenant_keys.services import get_services

        why = _text("--reason", reason, required=True)
        leaked = _leaked_key(leaked_key, leaked_key_file)
        services = get_services().urgent()
        started = utcnow()
        suspect, tenant_id = key_id, tenant
        if leaked is not None:
            match = find_leaked_key(
                services, key_fingerprint(leaked), tenant_id=tenant, leaked=leaked
            )
            tenant_id, suspect = match.tenant_id, match.key_id
        # Bad input gets its one line here, before any flow run or side effect.
        request = request_from(
            services,
            tenant=tenant_id,
            scope=scope,
            key_id=suspect,
            fingerprint=None,
            incident_id=str(uuid.uuid4()),
        )
        if reachable():
            from flows.revoke import emergency_revoke

            state = emergency_revoke(
                request.tenant_id,
                reason=why,
                scope=request.scope,
                key_id=suspect,
                reported_by=_who(),
                trigger="cli tenant-keys revoke",
                reported_at=started.isoformat(),
                incident_id=request.incident_id,
                return_state=True,
            )
            dead = _leaked_key_dead(leaked, request.tenant_id)
            print_state(state)
        else:
            dead = _break_glass(request, why, started)
            _leaked_key_dead(leaked, request.tenant_id)
        if not dead:
            raise typer.Exit(1)

    run(action, needs_settings=True)


def _break_glass(request: RevokeRequest, reason: str, started: datetime) -> bool:
    """The revoke protocol run here, Prefect down: no tenant lock (the replacement relies on
    AWSCURRENT's compare-and-swap), the incident kept in a local file. Returns whether the
    suspects are dead."""
    from tenant_keys.incident import Incident, IncidentDetails, IncidentLog
    from tenant_keys.locks import NoLocks
    from tenant_keys.revocation import revoke
    from tenant_keys.services import get_services

    err.print(
        "[yellow]warning:[/yellow] the Prefect server is unreachable: revoking without it "
        "(break-glass); run `tenant-keys incidents sync` once it is back",
        highlight=False,
        soft_wrap=True,
    )
    services = get_services()
    outcome = revoke(services.urgent(), request, NoLocks())
    incident = Incident(
        outcome=outcome,
        details=IncidentDetails.of(
            reason=reason,
            reported_by=_who(),
            trigger="cli tenant-keys revoke (break-glass)",
            reported_at=started.isoformat(),
            started_at=started,
        ),
        break_glass=True,
    )
    path = IncidentLog(services.settings.incident_dir).write(incident)
    console.print(incident.summary() + (f": {outcome.error}" if outcome.error else ""))
    console.print(f"incident record: {path}")
    return outcome.status == "revoked"


def _leaked_key_dead(leaked: SecretStr | None, tenant_id: str) -> bool:
    """The proof a revoke from a leaked key owes: that very key is refused now."""
    if leaked is None:
        return True
    from tenant_keys.keys import key_works
    from tenant_keys.layout import TenantKeyRecord
    from tenant_keys.services import get_services

    services = get_services()
    probe = TenantKeyRecord(
        api_key=leaked,
        key_id="leaked",
        project_id="-",
        project_name="-",
        workspace_id=services.store.read(tenant_id).workspace_id,
        issued_at=utcnow(),
        expires_at=None,
        rotation_id="-",
    )
    if key_works(services.langsmith, probe):
        err.print(
            "[red]error:[/red] the leaked key is still accepted by LangSmith", highlight=False
        )
        return False
    console.print("the leaked key is refused by LangSmith (401)")
    return True


@app.command(name="report-compromise")
def report_compromise(
    tenant: Annotated[
        str | None, typer.Argument(help="Tenant id (optional with a leaked key).")
    ] = None,
    reason: ReasonOption = "",
    scope: ScopeOption = "current",
    key_id: KeyIdOption = None,
    leaked_key: LeakedKeyOption = None,
    leaked_key_file: LeakedKeyFileOption = None,
    reported_by: Annotated[
        str | None, typer.Option(help="Who or what reports it (default: user@host).")
    ] = None,
) -> None:
    """Emit `security.key.compromised`; the `emergency-revoke` deployment picks it up. For
    wiring alerts from elsewhere: needs only the Prefect API, no AWS or LangSmith access. A
    leaked key is sent as its SHA-256 fingerprint, never itself."""

    def action() -> None:
        from tenant_keys.events import KeyCompromisedEvent
        from tenant_keys.revocation import key_id_from, scope_from, tenant_from

        why = _text("--reason", reason, required=True)
        by = _text("--reported-by", reported_by or _who(), required=False)
        leaked = _leaked_key(leaked_key, leaked_key_file)
        fingerprint = key_fingerprint(leaked) if leaked else None
        if tenant is None and fingerprint is None:
            raise BadInput("name the tenant, or give the leaked key (--leaked-key -)")
        tenant_id = tenant_from(tenant) if tenant else None
        event = KeyCompromisedEvent(
            tenant_id=tenant_id or "",
            reason=why,
            scope=scope_from(scope),
            reported_by=by,
            key_id=key_id_from(key_id),
            key_fingerprint=fingerprint,
        )
        event_id = emit_compromise(event)
        about = f"tenant {tenant_id}" if tenant_id else "a leaked key (tenant to be found)"
        console.print(
            f"reported: security.key.compromised for {about} (event {event_id}); "
            "the emergency-revoke deployment's run records the incident"
        )

    run(action)


def emit_compromise(event: KeyCompromisedEvent) -> str:
    """Emit the event and wait until it is sent; returns its id."""
    from prefect.events import emit_event

    from tasks.events import flush
    from tenant_keys.events import LEAK_RESOURCE_PREFIX, tenant_resource

    if event.tenant_id:
        resource = tenant_resource(event.tenant_id)
    else:
        assert event.key_fingerprint
        resource = {"prefect.resource.id": LEAK_RESOURCE_PREFIX + event.key_fingerprint[:16]}
    sent = emit_event(event.name, resource=resource, payload=event.payload() | {"tenant_id": None})
    if sent is None:
        raise ConfigError("no Prefect API to send the event to: set PREFECT_API_URL")
    flush()  # a short-lived process: send before exiting
    return str(sent.id)


@incidents_app.command(name="sync")
def incidents_sync() -> None:
    """Replay the incident records of break-glass revokes into Prefect (an artifact and the
    events each), once the server is back."""

    def action() -> None:
        from flows.revoke import record_break_glass_incident
        from tasks.server import reachable
        from tenant_keys.incident import IncidentLog
        from tenant_keys.settings import load_settings

        log = IncidentLog(load_settings().incident_dir)
        pending = log.pending()
        if not pending:
            console.print(f"no incident records to sync in {log.folder}")
            return
        if not reachable():
            raise ConfigError(
                "the Prefect server is unreachable: check PREFECT_API_URL, then rerun"
            )
        for path, incident in pending:
            record_break_glass_incident(incident)
            log.mark_synced(path)
            console.print(f"synced {incident.outcome.incident_id}: {incident.summary()}")

    run(action)
