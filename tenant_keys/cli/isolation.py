"""`tenant-keys check-isolation A [B]`."""

from __future__ import annotations

from typing import Annotated

import typer

from tenant_keys.cli.app import app, console, run


@app.command(name="check-isolation")
def check_isolation(
    tenant_a: str,
    tenant_b: Annotated[
        str | None, typer.Argument(help="Another tenant (default: the canary project).")
    ] = None,
) -> None:
    """Try each tenant's key on the other's project (one tenant: its key on the canary project,
    which no tenant key may read); exit 1 if any read succeeds."""

    def action() -> None:
        from rich.markdown import Markdown

        from flows.isolation import check_isolation as check
        from tenant_keys.isolation import check_pair
        from tenant_keys.services import get_services

        for tenant_id in check_pair(tenant_a, tenant_b):
            get_services().store.describe(tenant_id)  # not onboarded: one line, no flow run
        report = check(tenant_a, tenant_b)
        console.print(Markdown(report.markdown()))
        if not report.isolated:
            raise typer.Exit(1)

    run(action, needs_settings=True)
