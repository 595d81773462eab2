"""The outside systems, built once per process from the settings and shared by every thread.

httpx and boto3 clients are thread-safe; sharing them also shares the rate limiters, which is
the point: one budget per outside system per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.lifetime import KeyLifetime
from tenant_keys.ownership import Ownership
from tenant_keys.secret_store import SecretStore
from tenant_keys.settings import Settings, load_settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    langsmith: LangSmithAdmin
    store: SecretStore
    ownership: Ownership
    key_lifetime: KeyLifetime

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        connections = settings.max_concurrency + 8
        langsmith = LangSmithAdmin(
            settings.langsmith_url,
            settings.langsmith_admin_key,
            workspace_id=settings.langsmith_workspace_id,
            org_id=settings.langsmith_org_id,
            timeout=settings.langsmith_timeout_seconds,
            calls_per_second=settings.langsmith_rate_limit.per_second,
            fanout_share=settings.fanout_rate_share,
            max_connections=connections,
        )
        return cls(
            settings=settings,
            langsmith=langsmith,
            ownership=Ownership(langsmith),
            key_lifetime=KeyLifetime(langsmith, settings.key_lifetime_days),
            store=SecretStore(
                prefix=settings.secret_prefix,
                region=settings.aws_region,
                endpoint_url=settings.aws_endpoint_url,
                writes_per_second=settings.secret_writes_per_second,
                max_connections=connections,
            ),
        )

    def urgent(self) -> Services:
        """The same services on LangSmith's urgent lane: the share of the rate limit that
        fan-outs leave free, so an emergency revoke never queues behind a rotation."""
        return replace(self, langsmith=self.langsmith.urgent())

    def close(self) -> None:
        self.langsmith.close()


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The process's services, built from the environment on first use."""
    global _services
    with _lock:
        if _services is None:
            _services = Services.from_settings(load_settings())
        return _services


def reset_services() -> None:
    """Forget the services (after the settings changed, e.g. between test stacks)."""
    global _services
    with _lock:
        if _services is not None:
            _services.close()
        _services = None
