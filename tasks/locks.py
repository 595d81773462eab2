"""The per-tenant lock: a Prefect global concurrency limit of 1 slot per tenant.

A server object, so it holds across processes and workers. Limits are created
before use (at onboarding) and acquiring a missing one fails, never skips.

Why not `prefect.concurrency.sync.concurrency`: it builds a new API client for
every acquisition, which measured ~0.2 s of serialised client-side work per
call on a 2-core machine, 200 s for a thousand tenants. The same server calls
through one shared client take ~19 ms for an acquire and release; this module
makes them (`increment-with-lease`, `renew`, `decrement-with-lease`) and keeps
the lease alive while the lock is held.

On SQLite the server answers 503 when its database is locked (by design:
PrefectHQ/prefect#9938), and the Prefect client waits 2 s before it retries (and before it gives up, retries off): in a
rotation fan-out that stalled one lock call in five by 2 s, and a revoke waits
on the same lock. So these calls go past the client's retry loop, on its
configured HTTP client, and retry a 503 here within tens of milliseconds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists

from tenant_keys.errors import TenantKeysError
from tenant_keys.services import get_services

log = logging.getLogger(__name__)

LOCK_PREFIX = "tenant-keys-tenant-"
# The server's minimum. A run that dies holding the lock blocks its tenant until the
# lease lapses (this long, plus up to 15 s for the server's repossessor); a live run
# renews its lease in the background however long it holds it.
LEASE_SECONDS = 60.0
_LOCKED = 423  # the server's answer while the slot is taken; it sends Retry-After
_BUSY = 503  # the server's database is busy (SQLite: "database is locked")
_RETRIES = 100


class LockUnavailable(TenantKeysError):
    pass


def lock_name(tenant_id: str) -> str:
    return f"{LOCK_PREFIX}{tenant_id}"


_client_lock = threading.Lock()
_client: SyncPrefectClient | None = None
# Lease writes contend on the server's database: 32 at once took ~0.35 s each on
# SQLite, one at a time ~12 ms. Queueing them here keeps the total low.
_server_calls = threading.Lock()


def _shared_client() -> SyncPrefectClient:
    global _client
    with _client_lock:
        if _client is None:
            client = get_client(sync_client=True)
            client.__enter__()
            _client = client
        return _client


def ensure_tenant_locks(tenant_ids: list[str]) -> None:
    """Create the tenants' locks that do not exist yet (one list call per 200 limits)."""
    client = _shared_client()
    existing: set[str] = set()
    offset = 0
    while True:
        page = client.read_global_concurrency_limits(limit=200, offset=offset)
        existing.update(limit.name for limit in page)
        if len(page) < 200:
            break
        offset += 200
    for tenant_id in tenant_ids:
        name = lock_name(tenant_id)
        if name not in existing:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


@contextmanager
def tenant_lock(tenant_id: str) -> Iterator[None]:
    """Hold the tenant's lock; raises `LockUnavailable` if it is missing or not free in time
    (`TENANT_KEYS_LOCK_WAIT_SECONDS`)."""
    with tenant_locks([tenant_id]):
        yield


@contextmanager
def tenant_locks(tenant_ids: list[str]) -> Iterator[None]:
    """Hold the locks of several tenants at once: one lease, taken all or nothing.

    A fan-out takes its tenants' locks a batch at a time: a lease per tenant would queue a
    thousand writes on the server's database, which measured ~6 s of waiting per tenant.
    """
    client = _shared_client()
    names = [lock_name(t) for t in tenant_ids]
    lease_id = _acquire(client, names, get_services().settings.lock_wait_seconds)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(client, lease_id, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        released = _send(
            client, "/v2/concurrency_limits/decrement-with-lease", {"lease_id": lease_id}
        )
        if released.is_error and released.status_code != 404:  # 404: it expired, it is free
            log.warning(
                "lock %s not released (HTTP %s): it frees itself when its lease lapses (~75 s)",
                _names(names),
                released.status_code,
            )


def _acquire(client: SyncPrefectClient, names: list[str], wait_seconds: float) -> str:
    deadline = time.monotonic() + wait_seconds
    body = {"names": names, "slots": 1, "mode": "concurrency", "lease_duration": LEASE_SECONDS}
    while True:
        response = _send(client, "/v2/concurrency_limits/increment-with-lease", body)
        if response.status_code == _LOCKED:
            retry_after = float(response.headers.get("Retry-After") or 1.0)
            if time.monotonic() + retry_after > deadline:
                raise LockUnavailable(
                    f"lock {_names(names)} still held after {wait_seconds:.0f} s: another run works "
                    "on this tenant; wait for it, or see the runbook if a run died holding it"
                )
            time.sleep(retry_after * random.uniform(0.5, 1.0))  # jitter: waiters don't stampede
            continue
        response.raise_for_status()
        lease = response.json()
        if len(lease.get("limits") or []) < len(names):
            raise LockUnavailable(
                f"lock {_names(names)} does not exist: onboard the tenant (it creates the lock)"
            )
        return str(lease["lease_id"])


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} more)"


def _renew(client: SyncPrefectClient, lease_id: str, stop: threading.Event) -> None:
    body = {"lease_duration": LEASE_SECONDS}
    while not stop.wait(LEASE_SECONDS / 3):
        with suppress(httpx.HTTPError):  # a missed renewal is retried at the next tick
            _send(client, f"/v2/concurrency_limits/leases/{lease_id}/renew", body)


def _send(client: SyncPrefectClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST to the server's concurrency API, one call at a time; a busy server (503) or a
    failed connection is retried every few ms, up to ~3 s."""
    http = client._client  # the configured httpx client: API URL, auth headers, TLS settings
    request = http.build_request("POST", path, json=body)
    http._add_csrf_headers(request)  # a no-op unless the server enforces CSRF tokens
    attempt = 0
    while True:
        try:
            with _server_calls:
                # httpx's own send: past the Prefect client's retry loop and its 2 s sleeps.
                response = httpx.Client.send(http, request)
        except httpx.TransportError:
            if attempt == _RETRIES:
                raise
        else:
            if response.status_code != _BUSY or attempt == _RETRIES:
                return response
        attempt += 1
        time.sleep(random.uniform(0.01, 0.05))
