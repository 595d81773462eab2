"""The admin key's lock on Prefect: every run that holds tenant locks shares it, the admin
rotation takes it whole (`tenant_keys.admin_rotation.AdminLock`).

A global concurrency limit, `tenant-keys-admin-key`, of `ADMIN_LOCK_SLOTS` slots. Each lease of
tenant locks (`tasks.locks.PrefectLocks.hold`: a fan-out's batch, a reconcile repair, a revoke's
replacement, an onboarding, offboarding or migration) takes one slot of it in the same server
call, so the fan-outs pay nothing for it. The admin rotation holds every slot while it changes
the key: no such run works meanwhile, and one that would start waits for it (up to
TENANT_KEYS_LOCK_WAIT_SECONDS), then goes on with the new key.

Writer preference: a running fan-out has a batch in flight at almost every moment (the next one
takes its slot milliseconds after the last one frees it), so asking for all the slots at once
would wait for the whole fan-out. The rotation instead takes every free slot in one lease, then
closes the door: it lowers the limit to the slots it holds, so no new batch can take one, and
waits for the batches in flight to finish (seconds). It has the key to itself between two
batches of a fan-out, which then carries on; the limit is restored when it is done. A second
limit of one slot, `tenant-keys-admin-rotation`, keeps two rotations apart.

A rotation that dies frees its slots when its leases lapse (60 s, plus up to 15 s); the lowered
limit it leaves is still thousands of slots, and the next rotation restores it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.exceptions import ObjectAlreadyExists

from tasks.locks import ADMIN_KEY_LOCK, LEASE_SECONDS, _post, _shared_client
from tenant_keys.errors import LockUnavailable
from tenant_keys.services import get_services

log = logging.getLogger(__name__)

ADMIN_ROTATION_LOCK = "tenant-keys-admin-rotation"
# More than the leases of tenant locks that could ever be held at once (a fan-out holds one
# per batch in flight: 4 at the default concurrency, per worker).
ADMIN_LOCK_SLOTS = 10_000
_LOCKED = 423
# How often the rotation looks whether the runs inside have left.
POLL_SECONDS = 0.1


def admin_lock() -> PrefectAdminLock:
    """The lock, waiting as long as the settings say (`TENANT_KEYS_LOCK_WAIT_SECONDS`)."""
    return PrefectAdminLock(get_services().settings.lock_wait_seconds)


def _set_slots(client: SyncPrefectClient, slots: int) -> None:
    client.update_global_concurrency_limit(
        ADMIN_KEY_LOCK, GlobalConcurrencyLimitUpdate(limit=slots)
    )


ADMIN_LOCK_NAMES = (ADMIN_KEY_LOCK, ADMIN_ROTATION_LOCK)


def ensure_admin_locks(client: SyncPrefectClient, existing: set[str]) -> None:
    """Create the admin key's two limits unless `existing` (the limits' names) has them (or
    another run made them first)."""
    for name, slots in ((ADMIN_KEY_LOCK, ADMIN_LOCK_SLOTS), (ADMIN_ROTATION_LOCK, 1)):
        if name not in existing:
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=slots)
                )


class PrefectAdminLock:
    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Every slot of the admin key's lock for the `with` block (see the module doc)."""
        client = _shared_client()
        ensure_admin_locks(client, existing=set())
        deadline = time.monotonic() + self.wait_seconds
        leases: list[str] = []
        guard = threading.Lock()
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(client, leases, guard, stop), daemon=True
        )
        renewer.start()
        mutex_held = False
        try:
            with guard:
                leases.append(self._take(client, ADMIN_ROTATION_LOCK, 1, deadline))
            _set_slots(client, ADMIN_LOCK_SLOTS)  # a rotation that died may have left it lowered
            mutex_held = True
            held = 0
            while held == 0:
                limit = client.read_global_concurrency_limit_by_name(ADMIN_KEY_LOCK)
                free = limit.limit - limit.active_slots
                lease = self._try(client, ADMIN_KEY_LOCK, free) if free > 0 else None
                if lease is not None:
                    with guard:
                        leases.append(lease)
                    held = free
                else:
                    self._wait(deadline)
            # Close the door, then wait for the runs inside to leave.
            _set_slots(client, held)
            while client.read_global_concurrency_limit_by_name(ADMIN_KEY_LOCK).active_slots > held:
                self._wait(deadline)
            log.info("admin key lock %s held whole", ADMIN_KEY_LOCK)
            yield
        finally:
            if mutex_held:  # only the holder of the mutex may have lowered it
                with suppress(Exception):  # it must not hide the error that brought us here
                    _set_slots(client, ADMIN_LOCK_SLOTS)
            stop.set()
            renewer.join()
            for lease_id in leases:
                released = _post(
                    client, "/v2/concurrency_limits/decrement-with-lease", {"lease_id": lease_id}
                )
                if released.is_error and released.status_code != 404:
                    log.warning(
                        "admin key lock lease not released (HTTP %s): it frees itself when it "
                        "lapses (~75 s)",
                        released.status_code,
                    )

    def _wait(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise LockUnavailable(
                f"the admin key's lock {ADMIN_KEY_LOCK} is still shared after "
                f"{self.wait_seconds:.0f} s: runs that hold tenant locks are still working; rerun "
                "`tenant-keys rotate-admin` when they are done"
            )
        time.sleep(POLL_SECONDS)

    def _take(self, client: SyncPrefectClient, name: str, slots: int, deadline: float) -> str:
        """A lease of `slots` slots of `name`, waiting for them until the deadline."""
        while True:
            lease = self._try(client, name, slots)
            if lease is not None:
                return lease
            if time.monotonic() > deadline:
                raise LockUnavailable(
                    f"lock {name} still held after {self.wait_seconds:.0f} s: another "
                    "`rotate-admin` is running; wait for it"
                )
            time.sleep(0.5)

    def _try(self, client: SyncPrefectClient, name: str, slots: int) -> str | None:
        """A lease of `slots` slots of `name` now, or None if they are not free."""
        body = {
            "names": [name],
            "slots": slots,
            "mode": "concurrency",
            "lease_duration": LEASE_SECONDS,
        }
        response = _post(client, "/v2/concurrency_limits/increment-with-lease", body)
        if response.status_code == _LOCKED:
            return None
        response.raise_for_status()
        lease = response.json()
        if not lease.get("limits"):
            raise LockUnavailable(
                f"lock {name} does not exist: it is created by every flow's start"
            )
        return str(lease["lease_id"])

    def _renew(
        self,
        client: SyncPrefectClient,
        leases: list[str],
        guard: threading.Lock,
        stop: threading.Event,
    ) -> None:
        body = {"lease_duration": LEASE_SECONDS}
        while not stop.wait(LEASE_SECONDS / 3):
            with guard:
                current = list(leases)
            for lease_id in current:
                with suppress(httpx.HTTPError):  # a missed renewal is retried at the next tick
                    _post(client, f"/v2/concurrency_limits/leases/{lease_id}/renew", body)
