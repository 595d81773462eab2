"""`tenant-keys migrate`: move a tenant to workspace or tagged isolation (docs/isolation.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tenant_keys.cli.app import app, print_table, run


@app.command()
def migrate(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    to: Annotated[str, typer.Option("--to", help="Target isolation mode: workspace or tagged.")],
) -> None:
    """Move a tenant to a workspace of its own with a key scoped to it, or to tagged isolation
    (its project tagged, a key confined to it); revoke its old key."""

    def action() -> None:
        from flows.migrate import migrate_tenant
        from tenant_keys.migration import check_migratable
        from tenant_keys.models import validate_tenant_id
        from tenant_keys.services import get_services
        from tenant_keys.workspaces import isolation_for

        services = get_services()
        isolation_for(services.settings, to)
        check_migratable(services.store.describe(validate_tenant_id(tenant)), to)
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

    run(action, takes_locks=True)
