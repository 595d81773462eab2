"""`tenant-keys migrate`: move a tenant to workspace isolation (docs/isolation.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tenant_keys.cli.app import app, print_table, run


@app.command()
def migrate(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    to: Annotated[str, typer.Option("--to", help="Target isolation mode: workspace.")],
) -> None:
    """Move a tenant to a workspace of its own with a key scoped to it; revoke its old key."""

    def action() -> None:
        from flows.migrate import migrate_tenant

        result = migrate_tenant(tenant, to)
        table = Table("tenant", "outcome", "workspace id", "project id", "key id", "revoked")
        table.add_row(
            result.tenant_id,
            result.outcome,
            result.workspace_id,
            result.project_id,
            result.key_id,
            ", ".join(result.revoked_key_ids),
        )
        print_table(table)

    run(action, needs_settings=True)
