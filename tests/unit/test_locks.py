"""The lock client's own retries: a busy Prefect server (503) or a dropped connection is
retried within milliseconds, not after the Prefect client's 2 s backoff.

A mock transport stands in for the server here: SQLite's "database is locked" (which the
server answers with 503) cannot be provoked on demand.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prefect.client.base import PrefectHttpxSyncClient

from tasks import locks


def _record_sleeps(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    """This thread's sleeps are recorded, not slept; other threads (servers) sleep as ever."""
    me, real_sleep = threading.current_thread(), time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is me:
            sleeps.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)


class _FakeClient:
    """What `_send` uses of a SyncPrefectClient: its configured HTTP client, Prefect's own."""

    def __init__(self, handler: Any) -> None:
        self._client = PrefectHttpxSyncClient(
            base_url="http://prefect.test/api", transport=httpx.MockTransport(handler)
        )


def test_a_busy_server_is_retried_at_once_until_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps: list[float] = []
    _record_sleeps(monkeypatch, sleeps)
    answers = iter([503, 503, 503, 200])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(next(answers), json={"lease_id": "l-1", "limits": []})

    response = locks._send(_FakeClient(handler), "/v2/concurrency_limits/renew", {})  # type: ignore[arg-type]

    assert response.status_code == 200
    assert seen == ["/api/v2/concurrency_limits/renew"] * 4
    assert len(sleeps) == 3 and max(sleeps) <= 0.05, "retries come within ms, not seconds"


def test_a_dropped_connection_is_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(204)

    response = locks._send(_FakeClient(handler), "/v2/concurrency_limits/decrement-with-lease", {})  # type: ignore[arg-type]

    assert response.status_code == 204 and calls == 2


def test_a_server_that_stays_busy_returns_its_answer_in_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _record_sleeps(monkeypatch, [])
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    response = locks._send(_FakeClient(handler), "/v2/concurrency_limits/renew", {})  # type: ignore[arg-type]

    assert response.status_code == 503 and calls == locks._RETRIES + 1


def test_a_lease_the_server_fails_to_release_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/increment-with-lease"):
            return httpx.Response(200, json={"lease_id": "l-1", "limits": [{"name": "x"}]})
        return httpx.Response(500)  # the release

    monkeypatch.setattr(locks, "_shared_client", lambda: _FakeClient(handler))
    services = SimpleNamespace(settings=SimpleNamespace(lock_wait_seconds=1.0))
    monkeypatch.setattr(locks, "get_services", lambda: services)

    with caplog.at_level("WARNING", logger=locks.__name__), locks.tenant_locks(["acme"]):
        pass

    [record] = [r for r in caplog.records if r.name == locks.__name__]
    assert "tenant-keys-tenant-acme not released (HTTP 500)" in record.getMessage()
