"""Run the emulator with uvicorn, in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from .app import create_app
from .control import EmulatorControl
from .state import Store
from .testing_controls import TestingControls

HOST = "127.0.0.1"


def _uvicorn_config(app: Any, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,  # never log requests (headers carry keys)
        lifespan="off",
        loop="asyncio",
        http="h11",
        ws="none",
        backlog=4096,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
        server_header=False,
    )


class EmulatorServer:
    """An in-memory LangSmith-compatible API on 127.0.0.1.

    ``EmulatorServer(admin_key=None, port=0, latency_ms=0.0)``; ``start()`` returns when it
    answers; ``stop()`` is idempotent; also a context manager.
    """

    def __init__(
        self,
        admin_key: str | None = None,
        port: int = 0,
        latency_ms: float = 0.0,
        *,
        org_admin_key: str | None = None,
        org_id: str | None = None,
        workspace_id: str | None = None,
    ) -> None:
        self.store = Store(
            admin_key=admin_key,
            org_admin_key=org_admin_key,
            org_id=org_id,
            workspace_id=workspace_id,
        )
        self.controls = TestingControls(latency_ms=latency_ms)
        self.app = create_app(self.store, self.controls)
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._control: EmulatorControl | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ identities
    @property
    def admin_key(self) -> str:
        return self.store.bootstrap.admin_key

    @property
    def org_admin_key(self) -> str:
        return self.store.bootstrap.org_admin_key

    @property
    def admin_key_id(self) -> str:
        return self.store.bootstrap.admin_key_id

    @property
    def org_admin_key_id(self) -> str:
        return self.store.bootstrap.org_admin_key_id

    @property
    def org_id(self) -> str:
        return self.store.bootstrap.org_id

    @property
    def workspace_id(self) -> str:
        return self.store.bootstrap.workspace_id

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("EmulatorServer is not started")
        return f"http://{HOST}:{self.port}"

    @property
    def control(self) -> EmulatorControl:
        if self._control is None:
            self._control = EmulatorControl(self.url)
        return self._control

    # ------------------------------------------------------------------ lifecycle
    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it: no Nagle stall between header and body writes.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((HOST, self._requested_port))
        sock.set_inheritable(True)
        return sock

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        if self._thread is not None:
            return self
        self._sock = self._bind()
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.app, self.port))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"langsmith-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("LangSmith emulator failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("LangSmith emulator did not start in time")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.port else "not started"
        return f"<EmulatorServer {where} org={self.org_id} workspace={self.workspace_id}>"


def serve_forever(server: EmulatorServer, sock: socket.socket) -> None:
    """Foreground mode (``python -m devstack.langsmith_emulator``)."""
    assert server.port is not None
    logging.getLogger("uvicorn.access").disabled = True
    uv = uvicorn.Server(_uvicorn_config(server.app, server.port))
    uv.run(sockets=[sock])
