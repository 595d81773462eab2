"""The per-tenant lock as the protocols see it: one rotation (or repair, or replacement) of a
tenant at a time. The Prefect shells pass `tasks.locks.PrefectLocks` (a global concurrency
limit per tenant, held across processes and workers)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class TenantLocks(Protocol):
    def hold(self, tenant_ids: Sequence[str]) -> AbstractContextManager[None]:
        """Hold every named tenant's lock for the `with` block (all or nothing); raises
        `LockUnavailable` if one is missing or not free in time."""
        ...


class NoLocks:
    """Holds nothing. Only for the break-glass revoke with Prefect down: its replacement then
    relies on the compare-and-swap of AWSCURRENT alone (a rotation racing it fails its own
    promotion and is finished by reconcile)."""

    @contextmanager
    def hold(self, tenant_ids: Sequence[str]) -> Iterator[None]:
        yield
