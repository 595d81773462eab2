"""One local stack per test session: LangSmith emulator, moto's server and a Prefect server.

Tests that touch an outside system take the `stack` fixture; each test uses its own
tenant ids, so tests share the servers without resetting them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack, free_port

# Prefect reads its settings once, at import: point it at the session's server (started
# by the fixture on this port) before any test module imports prefect.
PREFECT_PORT = free_port()
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{PREFECT_PORT}/api"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    from tenant_keys.services import reset_services

    saved = dict(os.environ)
    with LocalStack(
        state_dir=tmp_path_factory.mktemp("devstack"), prefect_port=PREFECT_PORT
    ) as local:
        os.environ.update(local.env())
        # Short enough that the hang faults cost seconds, not minutes.
        os.environ["TENANT_KEYS_LANGSMITH_TIMEOUT_SECONDS"] = "2"
        reset_services()
        yield local
        _flush_prefect_clients()
    os.environ.clear()
    os.environ.update(saved)
    reset_services()


def _flush_prefect_clients() -> None:
    """Send buffered logs and events while the server still listens."""
    from prefect._internal.concurrency.services import QueueService

    QueueService.drain_all(timeout=10)  # the log and event workers are QueueServices


@pytest.fixture
def tenant_id() -> str:
    """A fresh tenant id per test, so tests never see each other's tenants."""
    return f"t-{uuid.uuid4().hex[:10]}"
