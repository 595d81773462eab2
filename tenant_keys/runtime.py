"""The app side: trace each request to its tenant's project with the tenant's current key.

Importable without Prefect. One `TenantTracing` per process:

    tracing = TenantTracing.from_settings()
    with tracing.context(tenant_id):      # wraps langsmith.tracing_context
        answer = my_traceable_chain(question)

- Keys come from Secrets Manager (AWSCURRENT) and are cached for `ttl_seconds`, so a
  rotation is picked up within the TTL without a restart (keep the rotation's grace
  window above the TTL: an app may use the old key until its cache entry expires).
- One `langsmith.Client` per key version; the one it replaces is flushed and closed.
- A 401 from LangSmith on a tenant's key drops that tenant's cache entry at once, so the
  next request re-reads the store (a revoked key stops being used immediately).
- Fail closed: when the store cannot be read or the tenant has no usable key, tracing
  is off for that request (the request itself goes on) and a warning is logged once per
  interval. No other tenant's key, nor any process-wide key, is ever used instead.
- The routing lives in `contextvars` (langsmith's `tracing_context`), so concurrent
  async requests for different tenants never cross.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import langsmith
from langsmith.utils import LangSmithAuthError

from tenant_keys.secret_store import SecretStore

if TYPE_CHECKING:
    from langchain_core.tracers import LangChainTracer

log = logging.getLogger(__name__)


@dataclass
class TenantHandle:
    """What one request needs to trace: the tenant's client and project."""

    tenant_id: str
    key_id: str
    project_name: str
    client: langsmith.Client
    fetched_at: float = field(default_factory=time.monotonic)


class TenantTracing:
    def __init__(
        self,
        store: SecretStore,
        api_url: str,
        *,
        ttl_seconds: float = 60.0,
        warn_interval_seconds: float = 60.0,
        client_factory: Callable[..., langsmith.Client] = langsmith.Client,
    ) -> None:
        self.store = store
        self.api_url = api_url
        self.ttl_seconds = ttl_seconds
        self.warn_interval_seconds = warn_interval_seconds
        self._client_factory = client_factory
        self._handles: dict[str, TenantHandle] = {}
        self._lock = threading.Lock()
        self._last_warning: dict[str, float] = {}

    @classmethod
    def from_settings(cls, **kwargs: Any) -> TenantTracing:
        from tenant_keys.settings import load_settings

        settings = load_settings()
        store = SecretStore(
            prefix=settings.secret_prefix,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )
        return cls(store, settings.langsmith_url, **kwargs)

    # -- what apps call --------------------------------------------------------------------

    def handle(self, tenant_id: str) -> TenantHandle | None:
        """The tenant's current client and project, or None: trace nothing for this request."""
        with self._lock:
            cached = self._handles.get(tenant_id)
        if cached and time.monotonic() - cached.fetched_at < self.ttl_seconds:
            return cached
        try:
            record = self.store.read(tenant_id)
        except Exception as exc:  # whatever the store's failure: fail closed
            self._drop(tenant_id)
            self._warn(
                tenant_id, f"tracing off for tenant {tenant_id!r}: {type(exc).__name__}: {exc}"
            )
            return None
        with self._lock:
            cached = self._handles.get(tenant_id)
            if cached and cached.key_id == record.key_id:
                cached.fetched_at = time.monotonic()  # same key: keep the client, renew the TTL
                return cached
            handle = TenantHandle(
                tenant_id=tenant_id,
                key_id=record.key_id,
                project_name=record.project_name,
                client=self._client_factory(
                    api_url=self.api_url,
                    api_key=record.api_key.get_secret_value(),
                    # An org service key (workspace isolation) must name its workspace.
                    workspace_id=record.workspace_id,
                    tracing_error_callback=self._on_tracing_error(tenant_id, record.key_id),
                ),
            )
            self._handles[tenant_id] = handle
        if cached:
            _retire_client(cached.client)
        return handle

    @contextmanager
    def context(self, tenant_id: str) -> Iterator[TenantHandle | None]:
        """Trace the block to the tenant's project with its key; or not at all (fail closed)."""
        handle = self.handle(tenant_id)
        if handle is None:
            with langsmith.tracing_context(enabled=False):
                yield None
            return
        with langsmith.tracing_context(
            enabled=True, client=handle.client, project_name=handle.project_name
        ):
            yield handle

    def langchain_tracer(self, tenant_id: str) -> LangChainTracer | None:
        """A LangChain callback for the tenant (needs the `langchain` extra), or None."""
        from langchain_core.tracers import LangChainTracer

        handle = self.handle(tenant_id)
        if handle is None:
            return None
        return LangChainTracer(project_name=handle.project_name, client=handle.client)

    def invalidate(self, tenant_id: str) -> None:
        """Forget the tenant's key: the next request reads the store again."""
        self._drop(tenant_id)

    def close(self) -> None:
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for handle in handles:
            _retire_client(handle.client)

    # -- internals --------------------------------------------------------------------------

    def _on_tracing_error(self, tenant_id: str, key_id: str) -> Callable[[Exception], None]:
        def on_error(exc: Exception) -> None:
            if isinstance(exc, LangSmithAuthError):
                with self._lock:
                    current = self._handles.get(tenant_id)
                    if current and current.key_id == key_id:
                        # Don't close here: this runs on that client's own tracing thread.
                        del self._handles[tenant_id]
                self._warn(
                    tenant_id,
                    f"LangSmith rejected key {key_id} of tenant {tenant_id!r}; re-reading",
                )

        return on_error

    def _drop(self, tenant_id: str) -> None:
        with self._lock:
            handle = self._handles.pop(tenant_id, None)
        if handle:
            _retire_client(handle.client)

    def _warn(self, tenant_id: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last_warning.get(tenant_id)
            if last is not None and now - last < self.warn_interval_seconds:
                return
            self._last_warning[tenant_id] = now
        log.warning(message)


def _retire_client(client: langsmith.Client) -> None:
    """Send what the client still holds, then close it, off the request's path."""

    def retire() -> None:
        try:
            client.flush()
        finally:
            client.close()

    threading.Thread(target=retire, daemon=True, name="tenant-keys-client-retire").start()
