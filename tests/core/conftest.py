"""The protocols of the core, run directly (no Prefect) against the session's LangSmith
emulator and moto: what the flows do, without a flow run's overhead."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest
from pydantic import SecretStr

from devstack.stack import LocalStack
from tenant_keys.onboarding import onboard
from tenant_keys.services import Services, get_services


@pytest.fixture
def services(backends: LocalStack) -> Services:
    return get_services()


@pytest.fixture
def onboarded(services: Services) -> Callable[[str], str]:
    """Onboard a tenant through the core; returns its first key id."""

    def make(tenant_id: str) -> str:
        result = onboard(services, tenant_id)
        assert result.outcome == "created" and result.key_id
        return result.key_id

    return make


class ThreadLocks:
    """`TenantLocks` within one process (a lock per tenant), for races between threads; the
    Prefect locks across processes are tested in tests/integration."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextmanager
    def hold(self, tenant_ids: Sequence[str]) -> Iterator[None]:
        with self._guard:
            locks = [self._locks.setdefault(t, threading.Lock()) for t in sorted(tenant_ids)]
        for lock in locks:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()


@pytest.fixture(scope="session")
def tagged_services(backends: LocalStack) -> Iterator[Services]:
    """Services for tagged isolation: the org's Organization Admin key (roles and access
    policies are organization settings), in the shared workspace of the default services."""
    settings = get_services().settings.model_copy(
        update={
            "langsmith_admin_key": SecretStr(backends.langsmith.org_admin_key),
            "isolation": "tagged",
        }
    )
    services = Services.from_settings(settings)
    yield services
    services.close()
