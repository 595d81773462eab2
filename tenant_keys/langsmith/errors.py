"""One exception per LangSmith failure that matters. Messages name the call, never a key."""

from __future__ import annotations

from tenant_keys.errors import TenantKeysError

# LangSmith's error code for an org-scoped key sent without X-Tenant-Id on a workspace path.
ORG_SCOPED_KEY_REQUIRES_WORKSPACE = "org_scoped_key_requires_workspace"


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
    hint = "check the admin key (TENANT_KEYS_LANGSMITH_ADMIN_KEY) and the LangSmith URL/region"


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

    def __init__(self, route: str, retry_after: float | None, detail: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(route, detail)

    transient = True


class ServerError(LangSmithError):
    transient = True
    maybe_applied = True


class Timeout(LangSmithError):
    hint = "LangSmith did not answer in time"
    transient = True
    maybe_applied = True


class ConnectionFailed(LangSmithError):
    """The connection failed. `maybe_applied` is False only when it was never established."""

    transient = True

    def __init__(self, route: str, detail: str, *, request_sent: bool) -> None:
        self.maybe_applied = request_sent
        super().__init__(route, detail)


def error_for_status(
    route: str, status: int, detail: str, retry_after: float | None
) -> LangSmithError:
    if status == 429:
        return RateLimited(route, retry_after, detail)
    if status >= 500:
        return ServerError(route, detail, status)
    if status == 403 and ORG_SCOPED_KEY_REQUIRES_WORKSPACE in detail:
        return OrgKeyNeedsWorkspace(route, detail, status)
    cls = {401: AuthError, 403: Forbidden, 404: NotFound, 409: Conflict, 422: ValidationFailed}
    return cls.get(status, LangSmithError)(route, detail, status)
