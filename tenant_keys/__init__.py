"""tenant-keys: per-tenant LangSmith projects and keys, kept in AWS Secrets Manager.

The core, usable without Prefect: each protocol is a function over `Services` (and, where
it locks a tenant, `TenantLocks`) that returns what happened, events included, for the
caller to record. Apps trace with `TenantTracing`.
"""

from typing import TYPE_CHECKING

from tenant_keys import redact as _redact
from tenant_keys.errors import (
    BadInput,
    ConfigError,
    CorruptSecret,
    KeyTestFailed,
    LangSmithError,
    LockUnavailable,
    ReplacementFailed,
    RetireFailed,
    RevokeFailed,
    SecretStoreError,
    TenantExists,
    TenantKeysError,
    TenantNotFound,
    TenantOffboarded,
)
from tenant_keys.events import TenantEvent
from tenant_keys.locks import NoLocks, TenantLocks
from tenant_keys.migration import MigrationResult, migrate
from tenant_keys.offboarding import OffboardingResult, offboard
from tenant_keys.onboarding import OnboardingResult, onboard
from tenant_keys.reconcile import RepairRow, repair
from tenant_keys.revocation import (
    RevokeOutcome,
    RevokeRequest,
    find_leaked_key,
    request_from,
    revoke,
)
from tenant_keys.rotation import RotationResult, retire, rotate
from tenant_keys.services import Services, get_services
from tenant_keys.settings import Settings, load_settings

# Every log record this process creates is scrubbed of keys, whatever logs it and however
# logging is configured (Prefect's handlers included).
_redact.install()

if TYPE_CHECKING:
    from tenant_keys.runtime import TenantTracing


def __getattr__(name: str) -> object:
    # Apps' tracing brings the langsmith SDK, which no flow or command needs: imported on use.
    if name == "TenantTracing":
        from tenant_keys.runtime import TenantTracing

        return TenantTracing
    raise AttributeError(f"module 'tenant_keys' has no attribute {name!r}")


__all__ = [
    "BadInput",
    "ConfigError",
    "CorruptSecret",
    "KeyTestFailed",
    "LangSmithError",
    "LockUnavailable",
    "MigrationResult",
    "NoLocks",
    "OffboardingResult",
    "OnboardingResult",
    "RepairRow",
    "ReplacementFailed",
    "RetireFailed",
    "RevokeFailed",
    "RevokeOutcome",
    "RevokeRequest",
    "RotationResult",
    "SecretStoreError",
    "Services",
    "Settings",
    "TenantEvent",
    "TenantExists",
    "TenantKeysError",
    "TenantLocks",
    "TenantNotFound",
    "TenantOffboarded",
    "TenantTracing",
    "find_leaked_key",
    "get_services",
    "load_settings",
    "migrate",
    "offboard",
    "onboard",
    "repair",
    "request_from",
    "retire",
    "revoke",
    "rotate",
]
