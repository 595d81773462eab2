"""`tenant-keys devstack` and `tenant-keys demo`: the local stack for a fresh machine."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tenant_keys.cli.app import app, console, run
from tenant_keys.cli.onboard import list_tenants, onboard
from tenant_keys.cli.rotate import rotate
from tenant_keys.errors import ConfigError

if TYPE_CHECKING:
    from devstack.stack import LocalStack

DEMO_TENANTS = ["acme", "globex", "initech"]


@app.command()
def devstack(
    env_file: Annotated[Path, typer.Option(help="Where to write the stack's environment.")] = Path(
        ".devstack/env"
    ),
) -> None:
    """Start the local stack (LangSmith emulator, moto, Prefect server) until Ctrl-C."""
    with run(local_stack)() as stack:
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"export {k}={v}\n" for k, v in stack.env().items()))
        env_file.chmod(0o600)  # it holds the emulator's admin key
        console.print(f"Local stack up. Prefect UI: [bold]{_ui(stack)}[/bold]")
        console.print(
            f"In another shell: [bold]source {env_file}[/bold], then `tenant-keys onboard acme`."
        )
        _wait_for_interrupt()


@app.command()
def demo(
    wait: Annotated[
        bool | None, typer.Option(help="Keep the stack up afterwards (default: on a terminal).")
    ] = None,
) -> None:
    """Start the local stack, onboard and rotate a few tenants through Prefect, show the result."""
    from tenant_keys.services import reset_services

    with run(local_stack)() as stack:
        os.environ.update(stack.env())
        reset_services()
        console.print(f"Local stack up; Prefect UI at [bold]{_ui(stack)}[/bold]")
        console.rule("onboarding")
        onboard(DEMO_TENANTS, None, None)
        console.rule("rotation")
        rotate(DEMO_TENANTS, False, None, False)
        console.rule("tenants")
        list_tenants()
        console.print(f"Run history, logs and artifacts: [bold]{_ui(stack)}/runs[/bold]")
        if wait if wait is not None else sys.stdin.isatty():
            console.print("Press Ctrl-C to stop the stack.")
            _wait_for_interrupt()
        from tasks.events import flush

        flush()  # the flows' buffered logs and events, while the server still listens


def local_stack() -> type[LocalStack]:
    """The local stack's class; the product installs without it (the `devstack` extra)."""
    try:
        from devstack.stack import LocalStack
    except ImportError:
        raise ConfigError(
            "the local stack is not installed: pip install 'tenant-keys[devstack]' "
            "(make demo and make test do)"
        ) from None
    return LocalStack


def _ui(stack: object) -> str:
    prefect = getattr(stack, "prefect", None)
    return prefect.ui_url if prefect else "-"


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")
