"""`tenant-keys`: the command line. Flows run in this process, against the Prefect API in
PREFECT_API_URL, so their runs, logs and artifacts land in that server's history.

Each command group lives in its own module and registers itself on `app`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from tenant_keys.errors import BadInput, ConfigError, TenantKeysError

app = typer.Typer(
    help="Per-tenant LangSmith keys: onboard, rotate, revoke; kept in AWS Secrets Manager.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def run(action: Callable[[], T], *, needs_settings: bool = False, takes_locks: bool = False) -> T:
    """Run `action`; a TenantKeysError becomes one line on stderr, exit code 2 for bad input
    or a bad setting (nothing was done), 1 for a failure while acting.

    `needs_settings`: read and check the settings first, so a missing or bad one is that
    one line before any flow run starts (inside a flow it would be a failed run and a
    traceback in its log). `takes_locks`: the command takes tenant locks, so it needs the
    Prefect server of PREFECT_API_URL (not a temporary one of its own).
    """
    try:
        if needs_settings or takes_locks:
            from tenant_keys.services import get_services

            settings = get_services().settings
            if takes_locks:
                from tasks.server import require_api_url

                require_api_url(settings.allow_temporary_prefect)
        return action()
    except TenantKeysError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        # 2: refused before any side effect; 1: it failed while doing it (the line says how).
        raise typer.Exit(2 if isinstance(exc, BadInput | ConfigError) else 1) from None


def print_table(table: Table) -> None:
    """Print a table at its natural width, so ids are never cut, on a narrow terminal or a pipe."""
    natural = Measurement.get(console, console.options.update_width(100_000), table).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(table)
    finally:
        console.width = width


def print_state(state: Any) -> None:
    """A flow's final state message; a failed run exits 1."""
    console.print(state.message or state.name)
    if state.is_failed():
        raise typer.Exit(1)
