"""`tenant-keys reconcile` and `tenant-keys offboard`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tenant_keys.cli.app import app, print_state, print_table, run
from tenant_keys.models import validate_tenant_id


@app.command()
def reconcile(
    tenants: Annotated[
        list[str] | None, typer.Argument(help="Tenant ids to reconcile (default: every tenant).")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Carry the repairs out (default: only show the plan).")
    ] = False,
    expiring_within_days: Annotated[
        float, typer.Option(help="Rotate keys that expire within this many days.")
    ] = 7.0,
    orphan_min_age_seconds: Annotated[
        float, typer.Option(help="Delete orphan keys only once they are this old.")
    ] = 600.0,
) -> None:
    """Compare Secrets Manager with LangSmith and repair what failures left half done."""

    def action() -> None:
        from flows.reconcile import reconcile
        from tenant_keys.reconcile import ReconcileReport

        target: Any = [validate_tenant_id(t) for t in tenants] if tenants else "all"
        state = reconcile(
            target,
            apply=apply,
            expiring_within_days=expiring_within_days,
            orphan_min_age_seconds=orphan_min_age_seconds,
            return_state=True,
        )
        report = state.result(raise_on_failure=False)
        if isinstance(report, ReconcileReport):
            _print_report(report)
        print_state(state)

    run(action, needs_settings=True, takes_locks=apply)


def _print_report(report: Any) -> None:
    table = Table("tenant", "repair", "outcome", "key id", "rotation", "reason / error")
    for row in report.rows:
        table.add_row(
            row.tenant_id,
            row.kind,
            row.outcome,
            row.key_id or "",
            row.rotation_id or "",
            row.error or row.reason,
        )
    if report.rows:
        print_table(table)


@app.command()
def offboard(
    tenant: Annotated[str, typer.Argument(help="The tenant id to offboard.")],
    delete_project: Annotated[
        bool,
        typer.Option("--delete-project", help="Also delete the project (its traces are lost)."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete the secret now, without a recovery window."),
    ] = False,
) -> None:
    """Revoke every key of a tenant and schedule its secret's deletion (rerun to finish a crash)."""

    def action() -> None:
        from flows.offboarding import offboard_tenant

        result = offboard_tenant(validate_tenant_id(tenant), delete_project, force)
        table = Table("tenant", "outcome", "revoked keys", "secret", "project")
        secret = result.secret + (f" ({result.recovery_days} days)" if result.recovery_days else "")
        table.add_row(
            result.tenant_id,
            result.outcome,
            ", ".join(result.revoked_key_ids) or "-",
            secret,
            f"{result.project} {result.project_id or ''}".strip(),
        )
        print_table(table)

    run(action, takes_locks=True)
