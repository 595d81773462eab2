"""`tenant-keys`: the command line. Flows run in this process, against the Prefect API in
PREFECT_API_URL, so their runs, logs and artifacts land in that server's history.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tenant_keys.errors import BadInput, TenantKeysError
from tenant_keys.models import utcnow, validate_tenant_id

app = typer.Typer(
    help="Per-tenant LangSmith keys: onboard, rotate, revoke; kept in AWS Secrets Manager.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

DEMO_TENANTS = ["acme", "globex", "initech"]


def run(action: Callable[[], T]) -> T:
    """Run `action`; a TenantKeysError becomes one line on stderr and exit code 2."""
    try:
        return action()
    except TenantKeysError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _read_tenant_file(path: Path) -> list[tuple[str, int | None]]:
    """Lines of `tenant[,budget]`; blank lines and # comments are skipped."""
    if not path.is_file():
        raise BadInput(
            f"tenant file {path} does not exist: give a file with one tenant id per line"
        )
    rows: list[tuple[str, int | None]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
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
) -> None:
    """Give each tenant its own LangSmith project, key and secret (existing tenants are left alone)."""

    def action() -> None:
        from flows.onboarding import onboard_tenants, validate_tenants

        rows = [(t, budget) for t in tenants or []] + (_read_tenant_file(file) if file else [])
        ids = validate_tenants([t for t, _ in rows])
        budgets = {b for _, b in rows}
        if len(budgets) == 1:
            results = onboard_tenants(ids, budgets.pop())
        else:  # per-tenant budgets from a file: one flow run per budget value
            results = []
            for value in budgets:
                results += onboard_tenants([t for t, b in rows if b == value], value)
        table = Table("tenant", "outcome", "project id", "key id", "budget")
        for r in results:
            table.add_row(r.tenant_id, r.outcome, r.project_id, r.key_id, str(r.trace_budget or ""))
        console.print(table)

    run(action)


@app.command(name="list")
def list_tenants() -> None:
    """Tenants with their project, current key id, key age and rotation state."""

    def action() -> None:
        from tenant_keys.secret_store import PENDING, RETIRE_PENDING, TAG_BUDGET
        from tenant_keys.services import get_services

        store = get_services().store
        table = Table("tenant", "project", "key id", "key age", "state", "budget")
        for tenant_id in sorted(store.iter_tenants()):
            state = store.describe(tenant_id)
            record = store.read(tenant_id)
            flags = [label for label in (PENDING, RETIRE_PENDING) if state.version_with(label)]
            age = utcnow() - record.issued_at
            table.add_row(
                tenant_id,
                record.project_name,
                record.key_id,
                f"{age.days}d {age.seconds // 3600}h",
                ", ".join(flags) or "ok",
                state.tags.get(TAG_BUDGET, ""),
            )
        console.print(table)

    run(action)


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

        if bool(tenants) == all_tenants:
            raise BadInput("name tenants or pass --all (not both)")
        target: Any = "all" if all_tenants else [validate_tenant_id(t) for t in tenants or []]
        state = rotate_keys(target, rotation_id=rotation_id, dry_run=dry_run, return_state=True)
        _print_state(state)

    run(action)


def _print_state(state: Any) -> None:
    console.print(state.message or state.name)
    if state.is_failed():
        raise typer.Exit(1)


@app.command()
def devstack(
    env_file: Annotated[Path, typer.Option(help="Where to write the stack's environment.")] = Path(
        ".devstack/env"
    ),
) -> None:
    """Start the local stack (LangSmith emulator, moto, Prefect server) until Ctrl-C."""
    from tenant_keys.devstack.stack import LocalStack

    with LocalStack() as stack:
        env = stack.env()
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
        env_file.chmod(0o600)
        console.print(
            f"Local stack up. Prefect UI: [bold]{stack.prefect.ui_url if stack.prefect else '-'}[/bold]"
        )
        console.print(
            f"In another shell: [bold]source {env_file}[/bold], then e.g. `tenant-keys onboard acme`."
        )
        _wait_for_interrupt()


@app.command()
def demo(
    wait: Annotated[
        bool | None,
        typer.Option(help="Keep the stack up afterwards (default: when on a terminal)."),
    ] = None,
) -> None:
    """Start the local stack, onboard and rotate a few tenants through Prefect, and show the result."""
    from tenant_keys.devstack.stack import LocalStack
    from tenant_keys.services import reset_services

    with LocalStack() as stack:
        os.environ.update(stack.env())
        reset_services()
        console.print(
            f"Local stack up; Prefect UI at [bold]{stack.prefect.ui_url if stack.prefect else '-'}[/bold]"
        )
        console.rule("onboarding")
        onboard(DEMO_TENANTS, None, None)
        console.rule("rotation")
        rotate(DEMO_TENANTS, False, None, False)
        console.rule("tenants")
        list_tenants()
        if stack.prefect:
            console.print(
                f"Run history, logs and artifacts: [bold]{stack.prefect.ui_url}/runs[/bold]"
            )
        if wait if wait is not None else sys.stdin.isatty():
            console.print("Press Ctrl-C to stop the stack.")
            _wait_for_interrupt()


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")


if __name__ == "__main__":
    app()
