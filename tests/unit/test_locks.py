"""The lock's own retries: a busy Prefect server (503) or a dropped connection is retried
within milliseconds, not after the Prefect client's 2 s backoff; a held lock waits, then fails.

A mock transport stands in for the server here, under Prefect's real client: SQLite's
"database is locked" (which the server answers with 503) cannot be provoked on demand.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient

from tasks import locks
from tenant_keys.errors import LockUnavailable

LEASE = {"id": "8b6e7c8e-0000-4000-8000-000000000001", "limits": [{"name": "x"}]}


def _record_sleeps(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    """This thread's sleeps are recorded, not slept; other threads sleep as ever."""
    me, real_sleep = threading.current_thread(), time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is me:
            sleeps.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)


def _server(monkeypatch: pytest.MonkeyPatch, handler: Any) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/csrf-token"):  # as a server without CSRF protection
            return httpx.Response(422, json={"detail": "CSRF protection is disabled."})
        return handler(request)

    client = SyncPrefectClient(
        "http://prefect.test/api", httpx_settings={"transport": httpx.MockTransport(serve)}
    )
    monkeypatch.setattr(locks, "_shared_client", lambda: client)


def _lease(request: httpx.Request) -> httpx.Response:
    """A lease of every limit asked for (the tenants' and the admin key's)."""
    names = json.loads(request.content)["names"]
    return httpx.Response(
        200, json={"lease_id": LEASE["id"], "limits": [{"name": n} for n in names]}
    )


def test_a_busy_server_is_retried_at_once_until_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps: list[float] = []
    _record_sleeps(monkeypatch, sleeps)
    answers = iter([503, 503, 503])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/increment-with-lease"):
            status = next(answers, 200)
            return _lease(request) if status == 200 else httpx.Response(status)
        return httpx.Response(204)

    _server(monkeypatch, handler)
    with locks.PrefectLocks(wait_seconds=5).hold(["acme"]):
        pass

    assert seen.count("/api/v2/concurrency_limits/increment-with-lease") == 4
    assert seen[-1] == "/api/v2/concurrency_limits/decrement-with-lease"
    assert len(sleeps) == 3 and max(sleeps) <= 0.05, "retries come within ms, not seconds"


def test_a_dropped_connection_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return _lease(request) if "increment" in request.url.path else httpx.Response(204)

    _server(monkeypatch, handler)
    with locks.PrefectLocks(wait_seconds=5).hold(["acme"]):
        pass

    assert calls == 3  # the dropped acquire, its retry, the release


def test_a_held_lock_waits_out_its_retry_after_then_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps: list[float] = []
    _record_sleeps(monkeypatch, sleeps)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(423, headers={"Retry-After": "1"})

    _server(monkeypatch, handler)
    with (
        pytest.raises(LockUnavailable, match="still held after 3 s"),
        locks.PrefectLocks(wait_seconds=3).hold(["acme"]),
    ):
        pass
    assert sleeps and all(0.5 <= s <= 1.0 for s in sleeps)


def test_a_missing_lock_fails_rather_than_skips_and_frees_the_others_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server leases the limits that exist: the batch fails, and its lease is released
    then, not when it lapses a minute later."""
    released: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/decrement-with-lease"):
            released.append(json.loads(request.content)["lease_id"])
            return httpx.Response(204)
        names = json.loads(request.content)["names"]
        return httpx.Response(
            200, json={"lease_id": LEASE["id"], "limits": [{"name": n} for n in names[1:]]}
        )

    _server(monkeypatch, handler)
    with (
        pytest.raises(LockUnavailable, match="does not exist: onboard the tenant"),
        locks.PrefectLocks(wait_seconds=3).hold(["acme", "globex"]),
    ):
        pass
    assert released == [LEASE["id"]]


def _limit(name: str, slots: int = 1) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": name, "limit": slots, "active_slots": 0}


def test_a_fan_out_creates_the_locks_its_lease_missed_and_leases_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a listing of every lock first: the first lease shows which are missing (one
    tenant's and the admin key's), those are created as onboarding would, and the second
    lease holds them all."""
    on_server = {locks.lock_name("acme")}
    created: dict[str, int] = {}
    released: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path, body = request.url.path, json.loads(request.content or b"{}")
        if path.endswith("/increment-with-lease"):
            held = [{"name": n} for n in body["names"] if n in on_server]
            return httpx.Response(200, json={"lease_id": str(uuid.uuid4()), "limits": held})
        if path.endswith("/decrement-with-lease"):
            released.append(body["lease_id"])
            return httpx.Response(204)
        if path.endswith("/v2/concurrency_limits/"):
            created[body["name"]] = body["limit"]
            on_server.add(body["name"])
            return httpx.Response(201, json=_limit(body["name"], body["limit"]))
        return httpx.Response(500)

    _server(monkeypatch, handler)
    with locks.PrefectLocks(wait_seconds=3).hold(["acme", "globex"], create_missing=True):
        assert len(released) == 1  # the first, partial lease: freed at once

    assert created == {locks.lock_name("globex"): 1, locks.ADMIN_KEY_LOCK: 10_000}
    assert len(released) == 2


def test_a_lock_still_missing_after_it_was_created_fails_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that takes the create but leases without it (another run deleting locks, a
    filter on names): the second lease fails too, and is freed too; no third try."""
    leases: list[str] = []
    released: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path, body = request.url.path, json.loads(request.content or b"{}")
        if path.endswith("/increment-with-lease"):
            leases.append(str(uuid.uuid4()))
            held = [{"name": n} for n in body["names"] if "globex" not in n]
            return httpx.Response(200, json={"lease_id": leases[-1], "limits": held})
        if path.endswith("/decrement-with-lease"):
            released.append(body["lease_id"])
            return httpx.Response(204)
        if path.endswith("/v2/concurrency_limits/"):
            return httpx.Response(201, json=_limit(body["name"]))
        return httpx.Response(500)

    _server(monkeypatch, handler)
    with (
        pytest.raises(LockUnavailable, match="does not exist: onboard the tenant"),
        locks.PrefectLocks(wait_seconds=3).hold(["acme", "globex"], create_missing=True),
    ):
        pass
    assert len(leases) == 2
    assert released == leases


def test_a_missing_admin_key_lock_fails_with_its_own_remedy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    released: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/decrement-with-lease"):
            released.append(json.loads(request.content)["lease_id"])
            return httpx.Response(204)
        names = json.loads(request.content)["names"]
        held = [{"name": n} for n in names if n != locks.ADMIN_KEY_LOCK]
        return httpx.Response(200, json={"lease_id": LEASE["id"], "limits": held})

    _server(monkeypatch, handler)
    with (
        pytest.raises(LockUnavailable, match="tenant-keys-admin-key does not exist: any flow's"),
        locks.PrefectLocks(wait_seconds=3).hold(["acme"]),
    ):
        pass
    assert released == [LEASE["id"]]


def test_a_lease_the_server_fails_to_release_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/increment-with-lease"):
            return _lease(request)
        return httpx.Response(500)  # the release

    _server(monkeypatch, handler)
    with caplog.at_level("WARNING", logger=locks.__name__), locks.PrefectLocks(1.0).hold(["acme"]):
        pass

    [record] = [r for r in caplog.records if r.name == locks.__name__]
    assert "tenant-keys-tenant-acme not released (HTTP 500)" in record.getMessage()


def test_on_an_unchecked_prefect_version_the_public_call_is_used_with_its_slow_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why the shim: the public call sleeps about 2 s per 503 (and once more before it gives
    up), where the shim retries within milliseconds."""
    sleeps: list[float] = []
    _record_sleeps(monkeypatch, sleeps)
    monkeypatch.setattr(locks, "_SHIM_CHECKED_ON", "no-such-version")
    answers = iter([503])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/increment-with-lease"):
            return _lease(request) if next(answers, 200) == 200 else httpx.Response(503)
        return httpx.Response(204)

    _server(monkeypatch, handler)
    with locks.PrefectLocks(wait_seconds=5).hold(["acme"]):
        pass

    assert sleeps and max(sleeps) >= 1.0, sleeps


def test_a_fan_out_lists_the_locks_once_then_creates_only_the_missing_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fan-out ensures its tenants' locks a page at a time: the server's locks are listed on
    the first page only (at 10,000 locks a listing took 2 s, once per page), and a lock that
    is missing is created. One or two tenants are read by name, never by listing."""
    from tasks.admin_lock import ADMIN_LOCK_NAMES

    tenants = [f"t{i:04d}" for i in range(400)]
    on_server = {*ADMIN_LOCK_NAMES, *(locks.lock_name(t) for t in tenants[:200])}
    calls: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/v2/concurrency_limits/filter"):
            calls["list"] += 1
            body = json.loads(request.content)
            page = sorted(on_server)[body["offset"] : body["offset"] + body["limit"]]
            return httpx.Response(200, json=[_limit(n) for n in page])
        if request.method == "POST" and path.endswith("/v2/concurrency_limits/"):
            calls["create"] += 1
            name = json.loads(request.content)["name"]
            on_server.add(name)
            return httpx.Response(201, json=_limit(name))
        if request.method == "GET":
            calls["read"] += 1
            name = path.rsplit("/", 1)[-1]
            return (
                httpx.Response(200, json=_limit(name)) if name in on_server else httpx.Response(404)
            )
        return httpx.Response(500)

    _server(monkeypatch, handler)
    fan_out = locks.PrefectLocks(wait_seconds=3)
    fan_out.ensure(tenants[:200])
    fan_out.ensure(tenants[200:])
    assert calls == {"list": 2, "create": 200}  # 202 locks: two pages, on the first ensure only
    assert all(locks.lock_name(t) in on_server for t in tenants)

    calls.clear()
    locks.PrefectLocks(wait_seconds=3).ensure(["newcomer"])
    assert calls == {"read": 3, "create": 1}  # its lock and the admin key's two, by name
