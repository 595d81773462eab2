"""`tenant-keys onboard` and `tenant-keys list`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tenant_keys.cli.app import app, print_table, run
from tenant_keys.errors import BadInput, TenantKeysError
from tenant_keys.models import utcnow

if TYPE_CHECKING:
    from tenant_keys.layout import SecretState, TenantKeyRecord
    from tenant_keys.secret_store import SecretStore


def read_tenant_file(path: Path) -> list[tuple[str, int | None]]:
    """Lines of `tenant[,budget]`; blank lines and # comments are skipped."""
    if not path.is_file():
        raise BadInput(
            f"tenant file {path} does not exist: give a file with one tenant id per line"
        )
    rows: list[tuple[str, int | None]] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tenant, _, budget = (part.strip() for part in line.partition(","))
        if budget and not budget.isdigit():
            raise BadInput(f"{path}:{number}: budget {budget!r} is not a whole number")
        rows.append((tenant, int(budget) if budget else None))
    return rows


@app.command()
def onboard(
    tenants: Annotated[
        list[str] | None, typer.Argument(help="Tenant ids (lowercase slugs).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="File of `tenant[,budget]` lines.")
    ] = None,
    budget: Annotated[int | None, typer.Option(help="Trace budget per billing window.")] = None,
    isolation: Annotated[
        str | None,
        typer.Option(help="'project', 'workspace' or 'tagged' (default: TENANT_KEYS_ISOLATION)."),
    ] = None,
) -> None:
    """Give each tenant its own LangSmith project, key and secret (existing tenants are left alone)."""

    def action() -> None:
        from flows.onboarding import onboard_tenants
        from tenant_keys.onboarding import validate_budget, validate_tenants
        from tenant_keys.services import get_services
        from tenant_keys.workspaces import isolation_for

        isolation_for(get_services().settings, isolation)  # before any flow run
        validate_budget(budget)
        rows = [(t, budget) for t in tenants or []] + (read_tenant_file(file) if file else [])
        validate_tenants([t for t, _ in rows])
        results = []
        # One flow run per budget value (a file may give tenants different budgets).
        for value in dict.fromkeys(b for _, b in rows):
            results += onboard_tenants([t for t, b in rows if b == value], value, isolation)
        table = Table("tenant", "outcome", "project id", "key id", "budget")
        for r in results:
            table.add_row(r.tenant_id, r.outcome, r.project_id, r.key_id, str(r.trace_budget or ""))
        print_table(table)

    run(action, takes_locks=True)


@app.command(name="list")
def list_tenants() -> None:
    """Tenants with their project, current key id, key age and rotation state; a key or project
    that two tenants' secrets name is shown as a conflict."""

    def action() -> None:
        from tenant_keys.services import get_services

        store = get_services().store
        read = {tenant_id: _read(store, tenant_id) for tenant_id in sorted(store.iter_tenants())}
        shared = _named_twice(r[1] for r in read.values() if r[1] is not None)
        table = Table("tenant", "project", "isolation", "key id", "key age", "state", "budget")
        for tenant_id, (state, record, problem) in read.items():
            table.add_row(*_row(tenant_id, state, record, problem, shared))
        print_table(table)

    run(action, needs_settings=True)


def _read(
    store: SecretStore, tenant_id: str
) -> tuple[SecretState | None, TenantKeyRecord | None, str | None]:
    """The tenant's secret and current record; a tenant the tool cannot read gives why
    instead of hiding the rest."""
    try:
        state = store.describe(tenant_id)
        if state.scheduled_for_deletion:
            return state, None, None
        return state, store.read(tenant_id), None
    except TenantKeysError as exc:
        return None, None, type(exc).__name__


def _named_twice(records: Iterable[TenantKeyRecord]) -> set[str]:
    """Key ids and project ids that more than one tenant's secret names."""
    counts = Counter(i for r in records for i in (r.key_id, r.project_id))
    return {item for item, n in counts.items() if n > 1}


def _row(
    tenant_id: str,
    state: SecretState | None,
    record: TenantKeyRecord | None,
    problem: str | None,
    shared: set[str],
) -> list[str]:
    from tenant_keys.keys import KeyHome
    from tenant_keys.layout import PENDING, RETIRE_PENDING, STATUS_NO_KEY, TAG_BUDGET

    if state is None or record is None:
        why = f"[red]{problem}[/red]" if problem else "offboarded"
        return [tenant_id, "", "", "", "", why, ""]
    flags = [label for label in (PENDING, RETIRE_PENDING) if state.version_with(label)]
    flags += [STATUS_NO_KEY] if state.has_no_key(record.key_id) else []
    if {record.key_id, record.project_id} & shared:
        flags.append("[red]CONFLICT[/red]: its key or project is named by another tenant too")
    age = utcnow() - record.issued_at
    return [
        tenant_id,
        record.project_name,
        KeyHome.of(state.tags).mode,
        record.key_id,
        f"{age.days}d {age.seconds // 3600}h",
        ", ".join(flags) or "ok",
        state.tags.get(TAG_BUDGET, ""),
    ]
