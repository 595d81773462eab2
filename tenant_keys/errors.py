"""Every error the tool raises, in one tree. Each message is one line that says what to do,
and none ever holds a key: callers pass key ids and secret names, never key material.

    TenantKeysError
    ├── ConfigError              a setting is missing or invalid; nothing was touched
    ├── BadInput                 refused before any side effect
    │   ├── TenantNotFound
    │   ├── TenantExists
    │   └── TenantOffboarded
    ├── CorruptSecret            a secret someone edited into something unreadable
    ├── SecretStoreError         Secrets Manager refused or failed a call
    ├── LockUnavailable          a tenant's lock is missing or not free in time
    ├── NotOwned                 a key or project not provably the tenant's: left alone
    ├── IsolationNotProven       a tagged key was not seen confined to its tenant's project
    ├── KeyTestFailed            a new key did not authenticate; not promoted
    ├── RetireFailed             an old key survived its retire (forward compensation)
    ├── RevokeFailed             a suspect key could not be shown dead
    ├── ReplacementFailed        suspects dead, no working key stored: tracing is off
    └── LangSmithError           a LangSmith call failed (`route`, `status`)
        ├── AuthError            401
        ├── Forbidden            403
        │   └── OrgKeyNeedsWorkspace
        ├── NotFound             404
        ├── Conflict             409
        ├── ValidationFailed     422
        ├── RateLimited          429, transient
        ├── ServerError          5xx, transient, maybe applied
        ├── Timeout              transient, maybe applied
        ├── MalformedResponse    a body the tool cannot read; maybe applied if a create
        └── ConnectionFailed     transient, maybe applied once the request was sent
"""

from __future__ import annotations

from tenant_keys.redact import redact

# LangSmith's error code for an org-scoped key sent without X-Tenant-Id on a workspace path.
ORG_SCOPED_KEY_REQUIRES_WORKSPACE = "org_scoped_key_requires_workspace"


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


class LockUnavailable(TenantKeysError):
    """A tenant's lock does not exist, or another run held it past the wait."""


class NotOwned(TenantKeysError):
    """LangSmith's record does not show the key or project as this tenant's and the tool's:
    nothing was done to it."""

    def __init__(self, tenant_id: str, what: str, why: str) -> None:
        super().__init__(
            f"NotOwned: {what} is not provably tenant {tenant_id!r}'s ({why}); it was left alone. "
            "Its secret may have been edited: check it, then `tenant-keys reconcile`"
        )
        self.tenant_id = tenant_id


class IsolationNotProven(TenantKeysError):
    """A key of tagged isolation was not seen reading its own project and refused another's
    (docs/isolation.md), or the organization refused the access policy that would confine it."""

    def __init__(self, tenant_id: str, reason: str, consequence: str) -> None:
        super().__init__(
            f"IsolationNotProven: tenant {tenant_id!r} is not isolated by tags: {reason}; "
            f"{consequence}"
        )
        self.tenant_id = tenant_id
        self.reason = reason


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
    """The old key survived its retire; the current record still names it (`previous_key_id`)."""

    def __init__(self, tenant_id: str, key_id: str | None, cause: str) -> None:
        super().__init__(
            f"RetireFailed: old key {key_id} of tenant {tenant_id!r} was not deleted ({cause}); it keeps "
            "the next rotation and `tenant-keys reconcile` retry, and its expiry bounds the exposure"
        )
        self.tenant_id = tenant_id
        self.key_id = key_id


class RevokeFailed(TenantKeysError):
    """A suspect key could not be shown dead."""

    def __init__(self, tenant_id: str, key_id: str, cause: str) -> None:
        super().__init__(
            f"RevokeFailed: key {key_id} of tenant {tenant_id!r} may still work ({cause}): "
            "rerun `tenant-keys revoke`, or delete it in LangSmith's UI at once"
        )
        self.tenant_id = tenant_id
        self.key_id = key_id


class ReplacementFailed(TenantKeysError):
    """The suspect keys are dead but no working replacement is stored: tracing is off."""

    def __init__(self, tenant_id: str, cause: str) -> None:
        super().__init__(
            f"ReplacementFailed: tenant {tenant_id!r} has no working key ({cause}); its tracing "
            "is off and its secret is tagged tenant-keys:status=revoked-no-key: rerun "
            f"`tenant-keys revoke {tenant_id}` or `tenant-keys rotate {tenant_id}` once the cause "
            "is fixed"
        )
        self.tenant_id = tenant_id


class LangSmithError(TenantKeysError):
    """A LangSmith call failed. `route` is the method and path template, e.g. `DELETE /api-key/{id}`."""

    status: int | None = None
    hint = ""
    # Worth retrying: the same call may succeed in a moment.
    transient = False
    # The request may have taken effect although no success reached us.
    maybe_applied = False

    def __init__(self, route: str, detail: str = "", status: int | None = None) -> None:
        self.route = route
        self.detail = detail
        if status is not None:
            self.status = status
        text = f"LangSmith {route} failed"
        if self.status is not None:
            text += f" with {self.status}"
        if detail:
            text += f": {detail}"
        if self.hint:
            text += f" ({self.hint})"
        super().__init__(text)


class AuthError(LangSmithError):
    status = 401
    hint = "check the admin key (its secret or TENANT_KEYS_LANGSMITH_ADMIN_KEY) and the URL/region"


class Forbidden(LangSmithError):
    status = 403
    hint = "the admin key lacks rights here: use a workspace admin key, or an org key with a workspace id"


class OrgKeyNeedsWorkspace(Forbidden):
    """403 `org_scoped_key_requires_workspace`: an org-scoped key on a workspace path."""

    hint = (
        "the admin key is org-scoped: set TENANT_KEYS_LANGSMITH_WORKSPACE_ID to the shared "
        "workspace of project-mode tenants"
    )


class NotFound(LangSmithError):
    status = 404


class Conflict(LangSmithError):
    status = 409


class ValidationFailed(LangSmithError):
    status = 422


class RateLimited(LangSmithError):
    status = 429
    transient = True

    def __init__(self, route: str, retry_after: float | None, detail: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(route, detail)


class ServerError(LangSmithError):
    transient = True
    maybe_applied = True


class Timeout(LangSmithError):
    hint = "LangSmith did not answer in time"
    transient = True
    maybe_applied = True


class MalformedResponse(LangSmithError):
    """LangSmith answered with a body the tool cannot read (the message names the fields, never
    their values). A create may have happened: its key is cleaned up by description."""

    def __init__(self, route: str, fields: str, *, creates: bool) -> None:
        self.maybe_applied = creates
        super().__init__(route, f"unreadable response ({fields})")


class ConnectionFailed(LangSmithError):
    """The connection failed. `maybe_applied` is False only when it was never established."""

    transient = True

    def __init__(self, route: str, detail: str, *, request_sent: bool) -> None:
        self.maybe_applied = request_sent
        super().__init__(route, detail)


def error_text(exc: BaseException) -> str:
    """One line about a failure, safe to store: the tool's own messages hold no key, and
    anything else passes the redactor."""
    text = str(exc) if isinstance(exc, TenantKeysError) else f"{type(exc).__name__}: {exc}"
    return redact(text.splitlines()[0] if text else type(exc).__name__)
