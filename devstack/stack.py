"""The local stack: LangSmith emulator + moto's Secrets Manager + a Prefect server, on loopback.

One call starts all three on free ports, waits until each answers, and gives
the environment that points tenant-keys (and Prefect) at them. Used by the
demo, the tests and `tenant-keys devstack`. Stopping is idempotent and also
runs on Ctrl-C (the context manager's exit).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from devstack.langsmith_emulator import EmulatorControl, EmulatorServer
from tenant_keys.admin_layout import DEFAULT_ADMIN_SECRET_NAME

# moto accepts any credentials; these only keep boto3's chain from looking further.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DEFAULT_REGION = "us-east-1"
# The stack keeps its admin key where production does: in a secret of its Secrets Manager.
ADMIN_SECRET_NAME = DEFAULT_ADMIN_SECRET_NAME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChildServer:
    """A server in a child process of its own session, stopped with its whole process group."""

    def __init__(
        self,
        name: str,
        args: list[str],
        health_url: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        self.name = name
        self.args = args
        self.health_url = health_url
        self.log_path = log_path
        self.env = env
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = spawn(self.args, log_path=self.log_path, env=self.env)
        _wait_until(
            lambda: httpx.get(self.health_url, timeout=2).status_code < 500,
            self.startup_timeout,
            f"{self.name} (log: {self.log_path})",
            self._process,
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_group(process)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


def spawn(
    args: list[str], *, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A child in a process group of its own (Ctrl-C in the terminal reaches us, not it twice)
    that dies with its parent, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def stop_group(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def child_process(
    args: list[str], *, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`spawn` for the length of a `with` block."""
    process = spawn(args, log_path=log_path, env=env, cwd=cwd)
    try:
        yield process
    finally:
        stop_group(process)


class PrefectServer(ChildServer):
    """`prefect server start` with its own PREFECT_HOME (SQLite)."""

    def __init__(self, home: Path, port: int = 0) -> None:
        self.home = home
        self.port = port or free_port()
        super().__init__(
            "Prefect server",
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            health_url=f"{self.api_url}/health",
            log_path=home / "server.log",
            env={
                "PREFECT_HOME": str(home),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_API_URL": self.api_url,
                "PREFECT_UI_API_URL": self.api_url,
            },
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class EmulatorProcess(ChildServer):
    """The LangSmith emulator in its own process: the benchmarks' choice, so its work
    does not share a GIL with the flows it serves."""

    def __init__(self, log_dir: Path, port: int = 0) -> None:
        self.port = port or free_port()
        self.admin_key = "lsv2_sk_" + secrets.token_hex(16) + "_" + secrets.token_hex(5)
        self.org_admin_key = "lsv2_sk_" + secrets.token_hex(16) + "_" + secrets.token_hex(5)
        self.org_id, self.workspace_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            "LangSmith emulator",
            [
                sys.executable,
                "-m",
                "devstack.langsmith_emulator",
                "--port",
                str(self.port),
                "--org-id",
                self.org_id,
                "--workspace-id",
                self.workspace_id,
            ],
            health_url=f"{self.url}/api/v1/info",
            log_path=log_dir / "langsmith-emulator.log",
            env={  # not on the command line
                "LANGSMITH_EMULATOR_ADMIN_KEY": self.admin_key,
                "LANGSMITH_EMULATOR_ORG_ADMIN_KEY": self.org_admin_key,
            },
        )
        self.control = EmulatorControl(self.url)


class MotoServer:
    """moto's Secrets Manager server in a background thread."""

    def __init__(self, port: int = 0) -> None:
        from devstack import moto_secrets

        self.port = port or free_port()
        self._server = moto_secrets.make(self.port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        _wait_until(
            lambda: httpx.get(f"{self.url}/moto-api/", timeout=2).status_code < 500,
            10,
            "moto server",
        )

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.shutdown()
            self._server.server_close()
            thread.join()


class MotoProcess(ChildServer):
    """moto's Secrets Manager server in its own process."""

    def __init__(self, log_dir: Path, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            "moto server",
            [sys.executable, "-m", "devstack.moto_secrets", "--port", str(self.port)],
            health_url=f"{self.url}/moto-api/",
            log_path=log_dir / "moto.log",
        )


class LocalStack:
    """All three servers. `with LocalStack() as stack: os.environ.update(stack.env())`."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        with_prefect: bool = True,
        prefect_port: int = 0,
        separate_processes: bool = False,
    ) -> None:
        self.state_dir = state_dir or Path(".devstack")
        self.langsmith: EmulatorServer | EmulatorProcess
        self.moto: MotoServer | MotoProcess
        if separate_processes:
            self.langsmith = EmulatorProcess(self.state_dir)
            self.moto = MotoProcess(self.state_dir)
        else:
            self.langsmith = EmulatorServer()
            self.moto = MotoServer()
        self.prefect = (
            PrefectServer(self.state_dir / "prefect", port=prefect_port) if with_prefect else None
        )

    def start(self) -> LocalStack:
        try:
            self.langsmith.start()
            self.moto.start()
            self.store_admin_key()
            if self.prefect:
                self.prefect.start()
        except BaseException:
            self.stop()
            raise
        return self

    def store_admin_key(self) -> str:
        """Put the stack's admin key in its Secrets Manager, as production does
        (`tenant-keys admin-key init`): a workspace admin key minted with the emulator's
        bootstrap key, which itself stays out of every setting. Returns the new key's id."""
        from pydantic import SecretStr

        from tenant_keys.admin_bootstrap import init_admin_secret
        from tenant_keys.admin_secret import AdminSecretStore
        from tenant_keys.langsmith import LangSmithAdmin

        seed = LangSmithAdmin(self.langsmith.url, SecretStr(self.langsmith.admin_key))
        with _environ(FAKE_AWS):  # the store's boto3 client reads its credentials now
            store = AdminSecretStore(
                ADMIN_SECRET_NAME, region=DEFAULT_REGION, endpoint_url=self.moto.url
            )
        try:
            done = init_admin_secret(
                seed,
                store,
                org_id=None,  # the seed is a workspace key: no need to ask
                workspace_id=self.langsmith.workspace_id,
                org_role_id=None,
                lifetime_days=90,
            )
        finally:
            seed.close()
        return done.key_id

    def stop(self) -> None:
        if self.prefect:
            self.prefect.stop()
        self.moto.stop()
        self.langsmith.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment that points tenant-keys, boto3 and Prefect at this stack."""
        env = {
            "TENANT_KEYS_LANGSMITH_URL": self.langsmith.url,
            "TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET": ADMIN_SECRET_NAME,
            "TENANT_KEYS_LANGSMITH_WORKSPACE_ID": self.langsmith.workspace_id,
            "TENANT_KEYS_LANGSMITH_ORG_ID": self.langsmith.org_id,
            "TENANT_KEYS_AWS_ENDPOINT_URL": self.moto.url,
            "TENANT_KEYS_AWS_REGION": DEFAULT_REGION,
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
            **FAKE_AWS,
        }
        if self.prefect:
            env["PREFECT_API_URL"] = self.prefect.api_url
        return env


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """These environment variables for the `with` block, where the process has none of its own."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when the parent dies, however it dies,
    so a killed test run or demo never leaves servers behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before answering")
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s")
