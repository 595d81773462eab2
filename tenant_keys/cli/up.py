"""`tenant-keys up`: the local stack running the production deployments, until Ctrl-C.

Why a worker and not `prefect.serve`: `prefect deploy --all` registers exactly what
prefect.yaml says (schedules, the revoke trigger, concurrency limits, the pull step) and a
process worker on the `tenant-keys` pool runs it, as in production. A served copy would be a
second definition of every deployment, free to drift from the file.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Annotated

import typer

from tenant_keys.cli.app import app, console, run
from tenant_keys.cli.devstack import (
    DEMO_TENANTS,
    _ui,
    _wait_for_interrupt,
    local_stack,
)
from tenant_keys.errors import ConfigError


@app.command()
def up(
    env_file: Annotated[Path, typer.Option(help="Where to write the stack's environment.")] = Path(
        ".devstack/env"
    ),
    tenants: Annotated[
        list[str] | None, typer.Option("--tenant", help="Demo tenants to onboard (repeatable).")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Servers' data and logs (default: .devstack in the clone).")
    ] = None,
) -> None:
    """Local stack + every deployment of prefect.yaml on a local worker + notifications printed
    here. Then fire `tenant-keys report-compromise acme --reason test` and watch the UI."""
    LocalStack = run(local_stack)
    from devstack.deployments import (
        deploy_all,
        ensure_work_pool,
        process_worker,
        repo_root,
        revoke_listener,
    )
    from devstack.notify_receiver import Notification, NotificationReceiver
    from tenant_keys.services import reset_services

    state_dir = state_dir or run(repo_root) / ".devstack"

    def show(notification: Notification) -> None:
        console.print(f"[yellow]notification:[/yellow] {notification.get('text', '')}")

    with LocalStack(state_dir=state_dir) as stack, NotificationReceiver(show) as receiver:
        env = stack.env()
        os.environ.update(env)
        reset_services()
        # Prefect reads PREFECT_API_URL once, when first imported: only now, or its flows and
        # client would go to a throwaway server of their own.
        from tasks.automations import apply_automations
        from tenant_keys.cli.onboard import onboard

        _write_env(env_file, env)
        ui = _ui(stack)
        console.print(f"Local stack up; Prefect UI at [bold]{ui}[/bold]")

        console.rule("deployments")
        run(lambda: ensure_work_pool(env))
        run(lambda: deploy_all(env))
        console.print("prefect.yaml deployed to the work pool 'tenant-keys'")
        for name, change in run(lambda: apply_automations(receiver.url)):
            console.print(f"automation {change}: {name}")

        console.rule("onboarding")
        onboard(tenants or DEMO_TENANTS, None, None)

        with (
            process_worker(env, state_dir / "worker.log") as worker,
            revoke_listener(env, state_dir / "listener.log"),
        ):
            _wait_for_worker(worker, state_dir / "worker.log")
            console.rule("ready")
            console.print(f"Prefect UI: [bold]{ui}[/bold] (runs, deployments, events, artifacts)")
            console.print(f"Worker log: {state_dir / 'worker.log'}")
            console.print(f"Kill-on-report listener log: {state_dir / 'listener.log'}")
            console.print(f"In another shell: [bold]source {env_file}[/bold], then")
            console.print("  [bold]tenant-keys report-compromise acme --reason test[/bold]")
            console.print(
                "  fires security.key.compromised: the emergency-revoke deployment runs, "
                "and its notification prints here."
            )
            console.print("Press Ctrl-C to stop everything.")
            _wait_for_interrupt()
        from tasks.events import flush

        flush()  # the flows' buffered logs and events, while the server still listens


def _write_env(env_file: Path, env: dict[str, str]) -> None:
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)  # it holds the emulator's admin key


def _wait_for_worker(worker: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Until the pool shows a worker online (its first heartbeat), or the worker exits."""
    from prefect.client.orchestration import get_client

    from devstack.deployments import POOL

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise typer.Exit(_fail(f"the worker exited at start: see {log}"))
        with get_client(sync_client=True) as client:
            if client.read_workers_for_work_pool(POOL):
                return
        time.sleep(0.5)
    raise typer.Exit(_fail(f"the worker did not start within a minute: see {log}"))


def _fail(message: str) -> int:
    from tenant_keys.cli.app import err

    err.print(f"[red]error:[/red] {ConfigError(message)}", highlight=False)
    return 2
