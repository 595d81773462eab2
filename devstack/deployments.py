"""prefect.yaml on a Prefect server: the work pool, `prefect deploy --all`, a process worker.

`tenant-keys up` and the tests use these, so the local stack runs the very deployments that
production runs (schedules, trigger, concurrency limits, pull step), from the one file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from devstack.stack import child_process
from tenant_keys.errors import ConfigError

POOL = "tenant-keys"
# The worker asks for runs this often (Prefect's default is 10 s): a reported leak is picked up
# within about a second.
WORKER_POLL_SECONDS = "1"


def repo_root() -> Path:
    """The checkout holding prefect.yaml and flows/ (the package is installed editable)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "prefect.yaml").is_file():
        raise ConfigError(
            f"no prefect.yaml in {root}: run from a clone of tenant-keys, installed with "
            "`pip install -e .` (make up does this)"
        )
    return root


def _prefect(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", "--no-prompt", *args]


def ensure_work_pool(env: dict[str, str]) -> None:
    """Create the `tenant-keys` process pool unless it exists (idempotent)."""
    # --overwrite keeps a second `up` on the same server from failing on "already exists".
    _check(_prefect("work-pool", "create", POOL, "--type", "process", "--overwrite"), env)


def deploy_all(env: dict[str, str]) -> str:
    """`prefect --no-prompt deploy --all` from the repo root; returns its output."""
    return _check(_prefect("deploy", "--all"), env)


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """What a worker on this machine needs: the stack's settings, the checkout (prefect.yaml's
    pull step reads TENANT_KEYS_HOME), and a short poll."""
    return {
        **env,
        "TENANT_KEYS_HOME": str(repo_root()),
        "PREFECT_WORKER_QUERY_SECONDS": WORKER_POLL_SECONDS,
    }


def process_worker(
    env: dict[str, str], log_path: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`prefect worker start --pool tenant-keys` as a child process, stopped on exit (and never
    left polling if `up` is killed)."""
    return child_process(
        _prefect("worker", "start", "--pool", POOL, "--type", "process"),
        log_path=log_path,
        env=worker_env(env),
        cwd=repo_root(),
    )


def revoke_listener(
    env: dict[str, str], log_path: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`python -m flows.revoke listen` beside the worker: a report's kill does not wait for
    the worker to start the flow run's process."""
    return child_process(
        [sys.executable, "-m", "flows.revoke", "listen"],
        log_path=log_path,
        env=worker_env(env),
        cwd=repo_root(),
    )


def _check(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        command,
        cwd=repo_root(),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"`prefect {' '.join(command[4:])}` failed: {last[0]}")
    return done.stdout
