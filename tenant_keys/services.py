"""The outside systems, built once per process from the settings and shared by every thread.

httpx and boto3 clients are thread-safe; sharing them also shares the rate limiters, which is
the point: one budget per outside system per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from tenant_keys.admin_key import AdminKeySource, SecretAdminKey, StaticAdminKey
from tenant_keys.admin_secret import AdminSecretStore
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
    # The admin key secret, if one is configured (the key itself may still come from
    # TENANT_KEYS_LANGSMITH_ADMIN_KEY, which wins: see `admin_key_source`).
    admin_secret: AdminSecretStore | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        connections = settings.max_concurrency + 8
        admin_secret, admin_key = admin_key_source(settings)
        langsmith = LangSmithAdmin(
            settings.langsmith_url,
            admin_key,
            workspace_id=settings.langsmith_workspace_id,
            org_id=settings.langsmith_org_id,
            timeout=settings.langsmith_timeout_seconds,
            calls_per_second=settings.langsmith_rate_limit.per_second,
            fanout_share=settings.fanout_rate_share,
            max_connections=connections,
        )
        return cls(
            settings=settings,
            admin_secret=admin_secret,
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


def admin_key_source(settings: Settings) -> tuple[AdminSecretStore | None, AdminKeySource]:
    """The admin key's secret (if configured) and the provider the LangSmith client asks for the
    key: the plain variable when set (a quick experiment), else the secret's AWSCURRENT, read
    when first used and again on a 401."""
    secret = None
    if settings.langsmith_admin_key_secret is not None:
        secret = AdminSecretStore(
            settings.langsmith_admin_key_secret,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            writes_per_second=settings.secret_writes_per_second,
        )
    if settings.langsmith_admin_key is not None:
        return secret, StaticAdminKey(settings.langsmith_admin_key)
    assert secret is not None  # the settings require one of the two
    read = secret.read_admin
    return secret, SecretAdminKey(
        lambda: read().api_key, ttl_seconds=settings.admin_key_cache_seconds
    )


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
