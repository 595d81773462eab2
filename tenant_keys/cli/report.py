"""`tenant-keys report`: the key posture of every tenant and of the admin key (README, Posture
report), as a table, or as JSON or CSV for an auditor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tenant_keys.cli.app import app, console, err, print_table, run
from tenant_keys.errors import BadInput

if TYPE_CHECKING:
    from tenant_keys.posture_model import PostureReport

FORMATS = ("table", "json", "csv")
# The columns the terminal table shows; JSON and CSV carry every field.
COLUMNS = (
    "subject",
    "status",
    "current_key_id",
    "key_age_days",
    "last_rotated_at",
    "retire_pending_key_id",
    "orphan_key_ids",
    "incidents",
    "quota_status",
    "violations",
)


@app.command()
def report(
    output: Annotated[
        str, typer.Option("--format", help="table (default), json or csv.")
    ] = "table",
    window_days: Annotated[
        float, typer.Option(help="Incidents (and audit-log look-ups) of the last N days.")
    ] = 30.0,
    orphan_min_age_seconds: Annotated[
        float, typer.Option(help="A key no secret holds counts as an orphan once this old.")
    ] = 600.0,
) -> None:
    """Per tenant and for the admin key: key id and age, last rotation, overdue keys, old keys
    still alive, orphans, incidents, budget status. Ids, dates and ages only. With the Prefect
    server up it runs the `posture-report` flow (artifacts, and an event per violation); else it
    reads the break-glass incident records. Exit code 1 when there is a violation."""

    def action() -> None:
        from tasks.server import reachable

        if output not in FORMATS:
            raise BadInput(f"--format {output!r} is not one of {', '.join(FORMATS)}")
        if not window_days > 0:
            raise BadInput(f"--window-days {window_days:g} is out of range: give days above 0")
        if reachable():
            found = _through_prefect(window_days, orphan_min_age_seconds)
        else:
            err.print(
                "[yellow]warning:[/yellow] the Prefect server is unreachable: incidents come from "
                "the break-glass records only, and no artifact or event is written",
                highlight=False,
                soft_wrap=True,
            )
            found = _here(window_days, orphan_min_age_seconds)
        _print(found, output)
        if found.violations:
            raise typer.Exit(1)

    run(action, needs_settings=True)


def _through_prefect(window_days: float, orphan_min_age_seconds: float) -> PostureReport:
    from flows.posture import posture_report
    from tenant_keys.posture_model import PostureReport

    state = posture_report(window_days, orphan_min_age_seconds, return_state=True)
    found = state.result(raise_on_failure=False)
    if not isinstance(found, PostureReport):
        raise RuntimeError(f"the posture-report run failed: {state.message}")
    return found


def _here(window_days: float, orphan_min_age_seconds: float) -> PostureReport:
    from tenant_keys.posture import break_glass_incidents, build_report
    from tenant_keys.services import get_services

    services = get_services()
    return build_report(
        services,
        incidents=break_glass_incidents(services.settings.incident_dir),
        incident_source="break-glass incident records (Prefect was unreachable)",
        window_days=window_days,
        orphan_min_age_seconds=orphan_min_age_seconds,
    )


def _print(found: PostureReport, output: str) -> None:
    if output == "json":
        typer.echo(found.model_dump_json(indent=2))
        return
    if output == "csv":
        typer.echo(found.csv(), nl=False)
        return
    table = Table(*COLUMNS)
    for row in found.rows():
        table.add_row(*("" if row[c] is None else str(row[c]) for c in COLUMNS))
    print_table(table)
    for violation in found.violations:
        console.print(f"[red]{violation.kind}[/red] {violation.subject}: {violation.detail}")
    console.print(found.summary())
