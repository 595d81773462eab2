"""The per-tenant lock on Prefect: a global concurrency limit of 1 slot per tenant.

A server object, so it holds across processes and workers. Limits are created before use
(at onboarding, `PrefectLocks.ensure`) and acquiring a missing one fails, never skips; a
fan-out instead creates the ones its lease missed and leases again (`create_missing`), which
spares it listing every lock before its first batch.

Why not `prefect.concurrency.sync.concurrency`: it builds a new API client for every
acquisition, which measured ~0.2 s of serialised client-side work per call on a 2-core
machine, 200 s for a thousand tenants. The same server calls through one shared client take
~19 ms for an acquire and release; this module makes them with the client's public lease
calls and keeps the lease alive while the lock is held.

On SQLite the server answers 503 when its database is locked (by design:
PrefectHQ/prefect#9938), and the Prefect client sleeps ~2 s before each retry of one, and
once more before it gives up even with its retries off (it sends no Retry-After): in a
rotation fan-out that stalled one lock call in five by 2 s, and tests/unit/test_locks.py
shows the sleeps. So on the Prefect versions it was checked against, `_post` sends the lease
calls past that loop, through the client's own configured HTTP client (API URL, auth, TLS,
CSRF), and they are retried here within tens of milliseconds; on any other version it falls
back to the client's public lease calls.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, cast

import httpx
import prefect
from prefect.client.base import PrefectHttpxSyncClient
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random,
)

from tenant_keys.errors import LockUnavailable
from tenant_keys.services import get_services

log = logging.getLogger(__name__)

LOCK_PREFIX = "tenant-keys-tenant-"
# The admin key's lock: every lease of tenant locks also takes one of its slots, in the same call,
# so the admin rotation (which takes every slot, `tasks.admin_lock`) never runs beside one.
ADMIN_KEY_LOCK = "tenant-keys-admin-key"
# The server's minimum. A run that dies holding the lock blocks its tenant until the
# lease lapses (this long, plus up to 15 s for the server's repossessor); a live run
# renews its lease in the background however long it holds it.
LEASE_SECONDS = 60.0
_LOCKED = 423  # the server's answer while the slot is taken; it sends Retry-After
_BUSY = 503  # the server's database is busy (SQLite: "database is locked")
# The Prefect versions whose client internals `_send_once` uses were read and tested.
_SHIM_CHECKED_ON = "3.9."
_READ_BY_NAME_UP_TO = 12


def lock_name(tenant_id: str) -> str:
    return f"{LOCK_PREFIX}{tenant_id}"


_client_guard = threading.Lock()
_client: SyncPrefectClient | None = None
# Lease writes contend on the server's database: 32 at once took ~0.35 s each on SQLite, one
# at a time ~12 ms. Queueing them here keeps the total low.
_server_calls = threading.Lock()


def _shared_client() -> SyncPrefectClient:
    """One Prefect client for every lock call of the process."""
    global _client
    with _client_guard:
        if _client is None:
            client = get_client(sync_client=True)
            client.__enter__()
            _client = client
        return _client


def tenant_locks() -> PrefectLocks:
    """The locks, waiting as long as the settings say (`TENANT_KEYS_LOCK_WAIT_SECONDS`)."""
    return PrefectLocks(get_services().settings.lock_wait_seconds)


class PrefectLocks:
    """`tenant_keys.locks.TenantLocks` on Prefect global concurrency limits."""

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        # Every lock on the server, once listed: a later `ensure` on this object reuses it
        # rather than listing them all again.
        self._listed: set[str] | None = None

    def ensure(self, tenant_ids: Sequence[str]) -> None:
        """Create the tenants' locks, and the admin key's, that do not exist yet."""
        from tasks.admin_lock import ADMIN_LOCK_NAMES  # it imports this module

        client = _shared_client()
        names = [*ADMIN_LOCK_NAMES, *map(lock_name, tenant_ids)]
        existing = self._listed
        if existing is None:
            existing = _existing(client, names)
            if len(names) > _READ_BY_NAME_UP_TO:
                self._listed = existing
        _create(client, set(names) - existing)
        existing.update(names)

    @contextmanager
    def hold(self, tenant_ids: Sequence[str], *, create_missing: bool = False) -> Iterator[None]:
        """Hold the locks of several tenants at once: one lease, taken all or nothing.

        A fan-out takes its tenants' locks a batch at a time: a lease per tenant would queue a
        thousand writes on the server's database (~6 s of waiting per tenant, measured). With
        `create_missing`, locks the lease missed are created and the lease taken once more."""
        client = _shared_client()
        names = [lock_name(t) for t in tenant_ids]
        try:
            lease_id = self._acquire(client, names)
        except _LocksMissing as missed:
            if not create_missing:
                raise
            _create(client, missed.names)
            lease_id = self._acquire(client, names)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(client, lease_id, stop), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            _release(client, lease_id, names)

    def _acquire(self, client: SyncPrefectClient, names: list[str]) -> str:
        deadline = time.monotonic() + self.wait_seconds
        body = {
            "names": [*names, ADMIN_KEY_LOCK],
            "slots": 1,
            "mode": "concurrency",
            "lease_duration": LEASE_SECONDS,
        }
        while True:
            response = _post(client, "/v2/concurrency_limits/increment-with-lease", body)
            if response.status_code == _LOCKED:
                retry_after = float(response.headers.get("Retry-After") or 1.0)
                if time.monotonic() + retry_after > deadline:
                    raise LockUnavailable(
                        f"lock {_names(names)} still held after {self.wait_seconds:.0f} s: another "
                        "run works on this tenant (or `rotate-admin` holds the admin key); wait for "
                        "it, or see the runbook if a run died holding it"
                    )
                time.sleep(retry_after * random.uniform(0.5, 1.0))  # jitter: waiters don't stampede
                continue
            response.raise_for_status()
            lease = response.json()
            found = {limit.get("name") for limit in lease.get("limits") or []}
            missing = {*names, ADMIN_KEY_LOCK} - found
            if not missing:
                return str(lease["lease_id"])
            # The lease holds the locks that exist (and an admin key slot): free them now,
            # not when the lease lapses.
            _release(client, str(lease["lease_id"]), names)
            if missing - {ADMIN_KEY_LOCK}:
                raise _LocksMissing(
                    f"lock {_names(names)} does not exist: onboard the tenant (it creates the lock)",
                    missing,
                )
            raise _LocksMissing(
                f"lock {ADMIN_KEY_LOCK} does not exist: any flow's start creates it (or "
                "`tenant-keys rotate` once)",
                missing,
            )

    def _renew(self, client: SyncPrefectClient, lease_id: str, stop: threading.Event) -> None:
        body = {"lease_duration": LEASE_SECONDS}
        while not stop.wait(LEASE_SECONDS / 3):
            with suppress(httpx.HTTPError):  # a missed renewal is retried at the next tick
                _post(client, f"/v2/concurrency_limits/leases/{lease_id}/renew", body)


class _LocksMissing(LockUnavailable):
    """Some limits of a lease do not exist on the server (`names`)."""

    def __init__(self, message: str, names: set[str]) -> None:
        super().__init__(message)
        self.names = names


def _create(client: SyncPrefectClient, names: set[str]) -> None:
    """Create the named locks: the admin key's as `tasks.admin_lock` sizes them, a tenant's
    with one slot."""
    from tasks.admin_lock import ADMIN_LOCK_NAMES, ensure_admin_locks  # it imports this module

    ensure_admin_locks(client, existing=set(ADMIN_LOCK_NAMES) - names)
    for name in sorted(names - set(ADMIN_LOCK_NAMES)):
        with suppress(ObjectAlreadyExists):  # another run created it first
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def _release(client: SyncPrefectClient, lease_id: str, names: list[str]) -> None:
    released = _post(client, "/v2/concurrency_limits/decrement-with-lease", {"lease_id": lease_id})
    if released.is_error and released.status_code != 404:  # 404: it expired, it is free
        log.warning(
            "lock %s not released (HTTP %s): it frees itself when its lease lapses (~75 s)",
            _names(names),
            released.status_code,
        )


def _existing(client: SyncPrefectClient, names: list[str]) -> set[str]:
    """Which of `names` the server has: a read by name each for a few (a revoke must not read
    a fan-out's thousands of locks before its kill), else one list call per 200 limits."""
    if len(names) <= _READ_BY_NAME_UP_TO:
        found: set[str] = set()
        for name in names:
            with suppress(ObjectNotFound):
                found.add(client.read_global_concurrency_limit_by_name(name).name)
        return found
    listed: set[str] = set()
    offset = 0
    while True:
        page = client.read_global_concurrency_limits(limit=200, offset=offset)
        listed.update(limit.name for limit in page)
        if len(page) < 200:
            return listed
        offset += 200


def _post(client: SyncPrefectClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST a lease call, one at a time; a busy server (503) or a failed connection is retried
    every few ms, up to ~3 s. Returns the last answer."""
    retrying = Retrying(
        stop=stop_after_attempt(100),
        wait=wait_random(0.01, 0.05),
        retry=retry_if_exception_type(httpx.TransportError)
        | retry_if_result(lambda response: response.status_code == _BUSY),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    return retrying(_send_once, client, path, body)


def _send_once(client: SyncPrefectClient, path: str, body: dict[str, Any]) -> httpx.Response:
    with _server_calls:
        if prefect.__version__.startswith(_SHIM_CHECKED_ON):
            # The configured HTTP client: API URL, auth, TLS settings.
            http = cast(PrefectHttpxSyncClient, client._client)
            request = http.build_request("POST", path, json=body)
            http._add_csrf_headers(request)  # a no-op unless the server enforces CSRF tokens
            return httpx.Client.send(http, request)  # httpx's own send: past the retry loop
        try:
            return client.request("POST", path, json=body)  # type: ignore[arg-type]
        except httpx.HTTPStatusError as exc:
            return exc.response


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} more)"
