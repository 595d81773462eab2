"""The per-tenant lock: a Prefect global concurrency limit of 1 slot per tenant.

A server object, so it holds across processes and workers. Limits are created
before use and acquired with `strict=True`: a missing limit must fail, not be
silently skipped (Prefect's default).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

LOCK_PREFIX = "tenant-keys-tenant-"
# A rotation holds the lock for seconds; a waiter gives up after this long
# rather than queue behind a stuck run forever.
DEFAULT_WAIT_SECONDS = 600.0
# The server's minimum. A run that dies holding the lock blocks its tenant until the
# lease lapses (this long, plus up to 15 s for the server's repossessor); a live run
# renews its lease in the background however long it holds it.
LEASE_SECONDS = 60.0


def lock_name(tenant_id: str) -> str:
    return f"{LOCK_PREFIX}{tenant_id}"


def ensure_tenant_locks(tenant_ids: list[str]) -> None:
    """Create the tenants' locks that do not exist yet (one list call per 200 limits)."""
    with get_client(sync_client=True) as client:
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
            if name in existing:
                continue
            with suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


@contextmanager
def tenant_lock(tenant_id: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Iterator[None]:
    """Hold the tenant's lock; raises if it is missing or not free within `wait_seconds`."""
    with concurrency(
        lock_name(tenant_id),
        occupy=1,
        timeout_seconds=wait_seconds,
        lease_duration=LEASE_SECONDS,
        strict=True,
    ):
        yield
