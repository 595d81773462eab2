"""`tenant-keys rotate`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenant_keys.cli.app import app, print_state, run
from tenant_keys.cli.progress import with_progress
from tenant_keys.errors import BadInput


@app.command()
def rotate(
    tenants: Annotated[list[str] | None, typer.Argument(help="Tenant ids to rotate.")] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="Rotate every tenant.")] = False,
    rotation_id: Annotated[str | None, typer.Option(help="Resume or repeat this rotation.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would rotate; change nothing.")
    ] = False,
) -> None:
    """Rotate keys: create → test → promote → retire, per tenant."""

    def action() -> None:
        from flows.rotation import rotate_keys
        from tenant_keys.models import validate_rotation_id
        from tenant_keys.rotation import rotation_targets
        from tenant_keys.services import get_services

        if bool(tenants) == all_tenants:
            raise BadInput("name tenants or pass --all (not both)")
        if rotation_id is not None:
            validate_rotation_id(rotation_id)
        # Every named tenant valid and onboarded before the first flow run or lock.
        target: Any = (
            "all" if all_tenants else list(rotation_targets(get_services(), tenants or []))
        )

        def call() -> Any:
            return rotate_keys(target, rotation_id=rotation_id, dry_run=dry_run, return_state=True)

        if dry_run or (target != "all" and len(target) == 1):
            print_state(call())
        else:
            print_state(with_progress(call, artifact_key="rotation-progress", label="rotating"))

    run(action, takes_locks=True)
