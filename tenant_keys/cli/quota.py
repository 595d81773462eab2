"""`tenant-keys quota` and `tenant-keys budget set`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from tenant_keys.cli.app import app, console, print_state, print_table, run

budget_app = typer.Typer(help="Trace budgets per tenant (kept in the tenant secret's tags).")
app.add_typer(budget_app, name="budget")


@app.command()
def quota(
    warning_share: Annotated[
        float, typer.Option(help="Share of the budget from which a tenant is in warning.")
    ] = 0.8,
    billing_day: Annotated[
        int, typer.Option(help="Day of the month (1-28, UTC) the billing window starts.")
    ] = 1,
    since: Annotated[
        datetime | None, typer.Option(help="Count traces since this time instead.")
    ] = None,
    enforce: Annotated[
        bool,
        typer.Option(
            "--enforce", help="Set a LangSmith usage limit for tenants with their own workspace."
        ),
    ] = False,
) -> None:
    """Each tenant's traces in the billing window against its budget, most used first."""

    def action() -> None:
        from flows.quota import QuotaReport, check_quotas
        from tenant_keys.quota import table_rows, validate_warning_share, window_start

        validate_warning_share(warning_share)
        window_start(datetime.now(), billing_day)  # a bad day fails here, before the flow
        state = check_quotas(
            warning_share=warning_share,
            billing_day=billing_day,
            since=since,
            enforce=enforce,
            return_state=True,
        )
        report = state.result(raise_on_failure=False)
        if isinstance(report, QuotaReport):
            print_quota_table(table_rows(report.rows))
        print_state(state)

    run(action, needs_settings=True)


def print_quota_table(rows: list[dict[str, str | int | None]]) -> None:
    columns = list(rows[0]) if rows else ["tenant", "project", "traces", "budget", "%", "status"]
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    print_table(table)


@budget_app.command(name="set", context_settings={"ignore_unknown_options": True})
def budget_set(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    traces: Annotated[str, typer.Argument(help="Traces per billing window (a whole number ≥ 0).")],
) -> None:
    """Set a tenant's trace budget; the next quota check compares against it."""

    def action() -> None:
        from tenant_keys.quota import parse_budget, set_budget
        from tenant_keys.services import get_services

        budget = parse_budget(traces)
        set_budget(get_services().store, tenant, budget)
        console.print(f"budget of {tenant}: {budget} traces per billing window")

    run(action, needs_settings=True)
