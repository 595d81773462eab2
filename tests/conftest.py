"""One local stack per test session: LangSmith emulator and moto's server for every test that
touches an outside system (`backends`), plus a Prefect server for those that check what
Prefect does or records (`stack`), started only if such a test runs.

Each test uses its own tenant ids, so tests share the servers without resetting them.
`make test` runs two pytest-xdist workers: each is a session of its own, with its own stack.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack, free_port

# Prefect reads its settings once, at import: point it at the session's server (started
# by the `stack` fixture on this port) before any test module imports prefect.
PREFECT_PORT = free_port()
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{PREFECT_PORT}/api"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The LangSmith emulator and moto, with the environment pointing tenant-keys at them."""
    from tenant_keys.services import reset_services

    saved = dict(os.environ)
    local = LocalStack(state_dir=tmp_path_factory.mktemp("devstack"), prefect_port=PREFECT_PORT)
    try:
        local.langsmith.start()
        local.moto.start()
        local.store_admin_key()
        os.environ.update(local.env())
        # Short enough that the hang faults cost seconds, not minutes.
        os.environ["TENANT_KEYS_LANGSMITH_TIMEOUT_SECONDS"] = "2"
        os.environ["TENANT_KEYS_INCIDENT_DIR"] = str(tmp_path_factory.mktemp("incidents"))
        reset_services()
        yield local
    finally:
        if local.prefect is not None and local.prefect.running:
            from tasks.events import flush

            flush()  # buffered logs and events, while the server still listens
        local.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_services()


@pytest.fixture(scope="session")
def stack(backends: LocalStack) -> LocalStack:
    """The backends plus a Prefect server (SQLite), started once for the session."""
    assert backends.prefect is not None
    if not backends.prefect.running:
        backends.prefect.start()
    return backends


@pytest.fixture
def tenant_id() -> str:
    """A fresh tenant id per test, so tests never see each other's tenants."""
    return f"t-{uuid.uuid4().hex[:10]}"
