"""Errors a user can act on.

Every message is one line that says what to do, and none ever holds a key:
callers pass key ids and secret names, never key material.
"""

from __future__ import annotations


class TenantKeysError(Exception):
    """Base class: a failure the tool explains in one line."""


class ConfigError(TenantKeysError):
    """A setting is missing or invalid; nothing was touched."""


class BadInput(TenantKeysError):
    """A caller gave input the tool refuses before any side effect."""


class TenantNotFound(BadInput):
    def __init__(self, tenant_id: str, secret_name: str) -> None:
        super().__init__(
            f"tenant {tenant_id!r} is not onboarded (no secret {secret_name}): "
            f"run `tenant-keys onboard {tenant_id}` first"
        )
        self.tenant_id = tenant_id


class TenantExists(BadInput):
    def __init__(self, tenant_id: str, secret_name: str) -> None:
        super().__init__(
            f"tenant {tenant_id!r} is already onboarded (secret {secret_name} exists): "
            "nothing to do; use `tenant-keys rotate` for a new key"
        )
        self.tenant_id = tenant_id


class TenantOffboarded(BadInput):
    """The id belongs to a tenant whose secret is being deleted (or whose offboarding is unfinished)."""

    def __init__(self, tenant_id: str, secret_name: str) -> None:
        super().__init__(
            f"tenant {tenant_id!r} was offboarded (secret {secret_name} is scheduled for deletion "
            "or being offboarded): onboard it again after the recovery window, or run "
            f"`tenant-keys offboard {tenant_id} --force` first to delete the secret now"
        )
        self.tenant_id = tenant_id


class CorruptSecret(TenantKeysError):
    """A tenant secret that someone edited into something the tool cannot read."""

    def __init__(self, secret_name: str, stage: str, problem: str) -> None:
        super().__init__(
            f"secret {secret_name} ({stage}) is not a tenant-keys record ({problem}): "
            "restore the previous version in Secrets Manager or run `tenant-keys reconcile`"
        )
        self.secret_name = secret_name


class SecretStoreError(TenantKeysError):
    """Secrets Manager refused or failed a call (the message names the call and the code)."""

    def __init__(self, operation: str, secret_name: str, code: str, hint: str = "") -> None:
        text = f"Secrets Manager {operation} on {secret_name} failed: {code}"
        super().__init__(f"{text}; {hint}" if hint else text)
        self.operation = operation
        self.secret_name = secret_name
        self.code = code


class KeyTestFailed(TenantKeysError):
    """A freshly minted key did not authenticate at LangSmith within the bounded retries."""

    def __init__(self, tenant_id: str, key_id: str, reason: str) -> None:
        super().__init__(
            f"new key {key_id} of tenant {tenant_id!r} did not authenticate ({reason}); "
            "it was not promoted"
        )
        self.tenant_id = tenant_id
        self.key_id = key_id


class RetireFailed(TenantKeysError):
    """The old key survived its retire; the RETIRE_PENDING label stays as the durable record."""

    def __init__(self, tenant_id: str, key_id: str | None, cause: str) -> None:
        super().__init__(
            f"RetireFailed: old key {key_id} of tenant {tenant_id!r} was not deleted ({cause}); it keeps "
            "its RETIRE_PENDING label, `tenant-keys reconcile` retries, and its expiry bounds the exposure"
        )
        self.tenant_id = tenant_id
        self.key_id = key_id
