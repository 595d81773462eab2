"""A typed HTTP client for LangSmith's admin API: projects, keys, workspaces, stats.

Paths and bodies follow LangSmith's OpenAPI spec (the `/api/v1/...` forms).
Every call is paced by a token bucket (LangSmith limits calls per key), and
retried with backoff when the failure is transient and the call is safe to
repeat. There are two lanes: fan-outs pace themselves at a share of the limit
(`fanout_share`), and the urgent lane (`urgent()`, the emergency revoke) uses
the rest, so a weekly rotation at full speed never delays a revoke. A call that creates something is retried
only when the server surely did not act on it (a refused connection or a
429); otherwise the caller gets the error and decides, since a lost response
to "create key" may mean the key exists.

The HTTP layer is httpx2 (an httpx fork the langsmith SDK brings): a fan-out
shares one client among 64 threads, and httpx's connection pool rescans its
connections under one lock for every request. 64 threads against 50 ms of
latency got ~480 calls/s at 2 ms of CPU each through httpx, ~1,040 at 0.7 ms
through httpx2 (the ideal is 1,280).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx2 as httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from tenant_keys.admin_key import AdminKeySource, StaticAdminKey
from tenant_keys.errors import (
    ORG_SCOPED_KEY_REQUIRES_WORKSPACE,
    AuthError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    LangSmithError,
    MalformedResponse,
    NotFound,
    OrgKeyNeedsWorkspace,
    RateLimited,
    ServerError,
    Timeout,
    ValidationFailed,
)
from tenant_keys.langsmith.audit import AuditLogPage
from tenant_keys.langsmith.models import (
    AccessPolicy,
    AccessPolicyList,
    ApiKeyInfo,
    Created,
    CreatedApiKey,
    OrgInfo,
    Project,
    Role,
    Tagging,
    TaggingsResponse,
    TagKeyWithTaggings,
    TagKeyWithValues,
    TagValue,
    UsageLimit,
    Workspace,
)
from tenant_keys.ratelimit import TokenBucket
from tenant_keys.redact import redact

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # the API's maximum `limit`
# The spec lists the access-policy paths under `/v1/platform`, beside `/api/v1`: where LangSmith
# is served under `/api` (self-hosted), they are too.
ACCESS_POLICIES = "/v1/platform/orgs/current/access-policies"
# What a tenant key's request showed: the read was served, refused (403, or 404: hidden), or
# the key itself was not accepted (401).
TenantRead = Literal["readable", "refused", "unauthenticated"]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def normalize_base_url(url: str) -> str:
    """Strip a trailing `/api/v1` or `/api`, so appending `/api/v1/...` never doubles it."""
    url = url.rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


class LangSmithAdmin:
    def __init__(
        self,
        base_url: str,
        admin_key: SecretStr | AdminKeySource,
        *,
        workspace_id: str | None = None,
        org_id: str | None = None,
        timeout: float = 10.0,
        calls_per_second: float = 100.0,
        fanout_share: float = 1.0,
        max_attempts: int = 5,
        max_connections: int = 100,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self._platform = "/api" if base_url.rstrip("/") != self.base_url else ""
        # Asked on every call (`_headers`), so a rotated admin key is picked up without a restart.
        self._admin_key: AdminKeySource = (
            StaticAdminKey(admin_key) if isinstance(admin_key, SecretStr) else admin_key
        )
        self.workspace_id = workspace_id
        self.org_id = org_id
        self.max_attempts = max_attempts
        # Pace a little under the server's limit: its window slides, ours must not touch it.
        per_second = calls_per_second * 0.98
        self.bucket = TokenBucket(per_second * fanout_share)
        # The urgent lane: what fan-outs leave free, with a small burst, so a revoke's few
        # calls go out at once instead of being paced.
        headroom = max(per_second * (1.0 - fanout_share), per_second * 0.02)
        self._urgent_bucket = TokenBucket(headroom, burst=10.0)
        # Deleting a project is a class of its own at LangSmith: 10 per 60 s per key.
        self._project_deletes = TokenBucket(10 * 0.98 / 60.0)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def urgent(self) -> LangSmithAdmin:
        """This client on the urgent lane: the same connections, the headroom's bucket."""
        twin = copy.copy(self)
        twin.bucket = self._urgent_bucket
        return twin

    def with_key(self, admin_key: SecretStr | AdminKeySource) -> LangSmithAdmin:
        """This client acting with another admin key (the admin rotation tests and uses a new
        key before anyone else does): the same connections and pacing."""
        twin = copy.copy(self)
        twin._admin_key = (
            StaticAdminKey(admin_key) if isinstance(admin_key, SecretStr) else admin_key
        )
        return twin

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LangSmithAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- projects ---------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        *,
        description: str | None = None,
        extra: Mapping[str, Any] | None = None,
        workspace_id: str | None = None,
    ) -> Project:
        """Create a project; a name that exists raises `Conflict` (409)."""
        body: dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        if extra is not None:
            body["extra"] = dict(extra)
        return self._call(
            Project, "POST", "/api/v1/sessions", json=body, creates=True, workspace_id=workspace_id
        )

    def find_project(self, name: str, *, workspace_id: str | None = None) -> Project | None:
        found = self._call_list(
            Project,
            "GET",
            "/api/v1/sessions",
            params={"name": name, "limit": 1},
            workspace_id=workspace_id,
        )
        return found[0] if found else None

    def ensure_project(
        self,
        name: str,
        *,
        description: str | None = None,
        extra: Mapping[str, Any] | None = None,
        workspace_id: str | None = None,
    ) -> Project:
        """The project named `name`, created if missing (a 409 means someone made it first)."""
        existing = self.find_project(name, workspace_id=workspace_id)
        if existing is not None:
            return existing
        try:
            return self.create_project(
                name, description=description, extra=extra, workspace_id=workspace_id
            )
        except LangSmithError as exc:
            if exc.status != 409 and not exc.maybe_applied:
                raise
            # Created by a racer, or by our own call whose response was lost.
            found = self.find_project(name, workspace_id=workspace_id)
            if found is None:
                raise
            return found

    def get_project(self, project_id: str) -> Project:
        return self._call(Project, "GET", "/api/v1/sessions/{id}", path_args={"id": project_id})

    def delete_project(self, project_id: str, *, workspace_id: str | None = None) -> bool:
        """Delete a project; False if it was already gone."""
        self._project_deletes.acquire()
        return self._delete("/api/v1/sessions/{id}", project_id, workspace_id=workspace_id)

    def iter_projects(
        self,
        *,
        name_contains: str | None = None,
        include_stats: bool = False,
        stats_start_time: datetime | None = None,
        workspace_id: str | None = None,
    ) -> Iterator[Project]:
        """Every project of the workspace (or of `workspace_id`), 100 per call (offset/limit)."""
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if name_contains:
            params["name_contains"] = name_contains
        if include_stats:
            params["include_stats"] = "true"
            if stats_start_time is not None:
                params["stats_start_time"] = stats_start_time.isoformat()
        offset = 0
        while True:
            page = self._call_list(
                Project,
                "GET",
                "/api/v1/sessions",
                params={**params, "offset": offset},
                workspace_id=workspace_id,
            )
            yield from page
            if len(page) < PAGE_SIZE:
                return
            offset += PAGE_SIZE

    # -- workspace API keys ---------------------------------------------------------------------

    def create_key(
        self,
        description: str,
        *,
        expires_at: datetime | None,
        workspace_id: str | None = None,
        role_id: str | None = None,
    ) -> CreatedApiKey:
        """Mint a workspace service key (with the workspace role `role_id`; LangSmith's default
        is Workspace Admin). Its secret is in `.key` (a SecretStr) and nowhere else."""
        body: dict[str, Any] = {
            "description": description,
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
        if role_id is not None:
            body["role_id"] = role_id
        return self._call(
            CreatedApiKey,
            "POST",
            "/api/v1/api-key",
            json=body,
            creates=True,
            workspace_id=workspace_id,
        )

    def list_keys(self, *, workspace_id: str | None = None) -> list[ApiKeyInfo]:
        return self._call_list(ApiKeyInfo, "GET", "/api/v1/api-key", workspace_id=workspace_id)

    def delete_key(self, key_id: str, *, workspace_id: str | None = None) -> bool:
        """Revoke a key; False if it was already gone (404)."""
        return self._delete("/api/v1/api-key/{id}", key_id, workspace_id=workspace_id)

    # -- organization: workspaces and org service keys --------------------------------------

    def create_workspace(self, display_name: str) -> Workspace:
        return self._call(
            Workspace,
            "POST",
            "/api/v1/workspaces",
            json={"display_name": display_name},
            creates=True,
            org=True,
        )

    def list_workspaces(self) -> list[Workspace]:
        return self._call_list(Workspace, "GET", "/api/v1/workspaces", org=True)

    def delete_workspace(self, workspace_id: str) -> bool:
        return self._delete("/api/v1/workspaces/{id}", workspace_id, workspace_id=workspace_id)

    def create_service_key(
        self,
        description: str,
        *,
        expires_at: datetime | None,
        workspaces: list[str] | None,
        org_role_id: str | None = None,
    ) -> CreatedApiKey:
        """An org service key; `workspaces=None` makes it org-wide, and `org_role_id` (org-wide
        keys only; None: LangSmith's default, Organization User) gives it its role."""
        body: dict[str, Any] = {
            "description": description,
            "workspaces": workspaces,
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
        if org_role_id is not None:
            body["org_role_id"] = org_role_id
        return self._call(
            CreatedApiKey,
            "POST",
            "/api/v1/orgs/current/service-keys",
            json=body,
            creates=True,
            org=True,
        )

    def list_service_keys(self) -> list[ApiKeyInfo]:
        return self._call_list(ApiKeyInfo, "GET", "/api/v1/orgs/current/service-keys", org=True)

    def delete_service_key(self, key_id: str) -> bool:
        return self._delete("/api/v1/orgs/current/service-keys/{id}", key_id, org=True)

    def org_info(self) -> OrgInfo:
        """The organization's settings (the key-lifetime caps among them)."""
        return self._call(OrgInfo, "GET", "/api/v1/orgs/current/info", org=True)

    def audit_logs(
        self, start: datetime, end: datetime, *, cursor: str | None = None
    ) -> AuditLogPage:
        """One page (100 records, oldest first) of the organization's audit log in
        [start, end]; `cursor` continues from the previous page. Org admin keys only (403)."""
        params: dict[str, Any] = {
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
            "limit": PAGE_SIZE,
        }
        if cursor:
            params["cursor"] = cursor
        return self._call(AuditLogPage, "GET", "/api/v1/audit-logs", params=params, org=True)

    # -- usage limits -----------------------------------------------------------------------------

    def list_usage_limits(self, *, workspace_id: str | None = None) -> list[UsageLimit]:
        return self._call_list(UsageLimit, "GET", "/api/v1/usage-limits", workspace_id=workspace_id)

    def set_usage_limit(
        self, limit_type: str, limit_value: int, *, workspace_id: str | None = None
    ) -> UsageLimit:
        body = {"limit_type": limit_type, "limit_value": limit_value}
        return self._call(
            UsageLimit, "PUT", "/api/v1/usage-limits", json=body, workspace_id=workspace_id
        )

    # -- tagged isolation: resource tags (workspace), roles and access policies (org) -------

    def list_tags(self) -> list[TagKeyWithValues]:
        """Every tag key of the workspace with its values."""
        return self._call_list(TagKeyWithValues, "GET", "/api/v1/workspaces/current/tags")

    def create_tag_key(self, key: str, *, description: str) -> TagKeyWithValues:
        body = {"key": key, "description": description}
        return self._call(
            TagKeyWithValues,
            "POST",
            "/api/v1/workspaces/current/tag-keys",
            json=body,
            creates=True,
        )

    def create_tag_value(self, tag_key_id: str, value: str, *, description: str) -> TagValue:
        return self._call(
            TagValue,
            "POST",
            "/api/v1/workspaces/current/tag-keys/{key}/tag-values",
            path_args={"key": tag_key_id},
            json={"value": value, "description": description},
            creates=True,
        )

    def delete_tag_value(self, tag_key_id: str, tag_value_id: str) -> bool:
        """Delete a tag value, and with it its taggings; False if it was already gone."""
        try:
            self._request(
                "DELETE",
                "/api/v1/workspaces/current/tag-keys/{key}/tag-values/{value}",
                path_args={"key": tag_key_id, "value": tag_value_id},
            )
        except NotFound:
            return False
        return True

    def list_taggings(self) -> list[TaggingsResponse]:
        """Every tag value of the workspace with the resources it tags."""
        return self._call_list(TaggingsResponse, "GET", "/api/v1/workspaces/current/taggings")

    def project_tags(self, project_id: str) -> list[TagKeyWithTaggings]:
        """The tag keys on a project, each with its values there and their taggings."""
        return self._call_list(
            TagKeyWithTaggings,
            "GET",
            "/api/v1/workspaces/current/tags/resource",
            params={"resource_type": "project", "resource_id": project_id},
        )

    def tag_project(self, tag_value_id: str, project_id: str) -> Tagging:
        body = {"tag_value_id": tag_value_id, "resource_type": "project", "resource_id": project_id}
        return self._call(
            Tagging, "POST", "/api/v1/workspaces/current/taggings", json=body, creates=True
        )

    def delete_tagging(self, tagging_id: str) -> bool:
        return self._delete("/api/v1/workspaces/current/taggings/{id}", tagging_id)

    def list_roles(self) -> list[Role]:
        """The organization's roles: the fixed ones and its custom roles."""
        return self._call_list(Role, "GET", "/api/v1/orgs/current/roles", org=True)

    def create_role(self, display_name: str, *, description: str, permissions: list[str]) -> Role:
        body = {
            "display_name": display_name,
            "description": description,
            "permissions": permissions,
        }
        return self._call(
            Role, "POST", "/api/v1/orgs/current/roles", json=body, creates=True, org=True
        )

    def update_role(
        self, role_id: str, display_name: str, *, description: str, permissions: list[str]
    ) -> Role:
        body = {
            "display_name": display_name,
            "description": description,
            "permissions": permissions,
        }
        return self._call(
            Role,
            "PATCH",
            "/api/v1/orgs/current/roles/{id}",
            path_args={"id": role_id},
            json=body,
            org=True,
        )

    def delete_role(self, role_id: str) -> bool:
        return self._delete("/api/v1/orgs/current/roles/{id}", role_id, org=True)

    def list_access_policies(self) -> list[AccessPolicy]:
        found = self._call(AccessPolicyList, "GET", self._platform + ACCESS_POLICIES, org=True)
        return found.access_policies

    def create_access_policy(
        self,
        name: str,
        *,
        description: str,
        effect: str,
        condition_groups: list[dict[str, Any]],
        role_ids: list[str],
    ) -> str:
        """Create an access policy attached to `role_ids`; returns its id."""
        body = {
            "name": name,
            "description": description,
            "effect": effect,
            "condition_groups": condition_groups,
            "role_ids": role_ids,
        }
        path = self._platform + ACCESS_POLICIES
        return self._call(Created, "POST", path, json=body, creates=True, org=True).id

    def attach_access_policies(self, role_id: str, policy_ids: list[str]) -> None:
        self._request(
            "POST",
            self._platform + ACCESS_POLICIES + "/roles/{id}/access-policies",
            path_args={"id": role_id},
            json={"access_policy_ids": policy_ids},
            org=True,
        )

    def delete_access_policy(self, policy_id: str) -> bool:
        return self._delete(self._platform + ACCESS_POLICIES + "/{id}", policy_id, org=True)

    # -- a tenant key's own view ------------------------------------------------------------------

    def authenticates(
        self, api_key: SecretStr, *, workspace_id: str | None = None, project_id: str | None = None
    ) -> bool:
        """Whether `api_key` is accepted: True on 200, False on 401; anything else raises.

        Sent with the tenant's key, so it does not spend the admin key's rate limit. With
        `project_id` the list asks for that project only: a key that may read no other project
        (tagged isolation) is then not refused for the projects it may not see.
        """
        headers = {"X-API-Key": api_key.get_secret_value()}
        if workspace_id:
            headers["X-Tenant-Id"] = workspace_id
        route = "GET /api/v1/sessions (tenant key)"
        params: dict[str, Any] = {"limit": 1}
        if project_id:
            params["id"] = project_id
        try:
            response = self._http.get("/api/v1/sessions", params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise _transport_error(route, exc) from None
        if response.status_code == 401:
            return False
        if response.is_success:
            return True
        raise _status_error(route, response)

    def reads_project_as(
        self, api_key: SecretStr, project_id: str, *, workspace_id: str | None
    ) -> TenantRead:
        """What `api_key` gets when it reads the project by id."""
        return self._as_tenant(
            api_key, "GET", "/api/v1/sessions/{id}", project_id, workspace_id=workspace_id
        )

    def reads_runs_as(
        self, api_key: SecretStr, project_id: str, *, workspace_id: str | None
    ) -> TenantRead:
        """What `api_key` gets when it queries the project's runs (the runs query, one run)."""
        body = {"project_ids": [project_id], "page_size": 1}
        return self._as_tenant(
            api_key, "POST", "/api/v2/runs/query", project_id, workspace_id=workspace_id, json=body
        )

    def _as_tenant(
        self,
        api_key: SecretStr,
        method: str,
        template: str,
        project_id: str,
        *,
        workspace_id: str | None,
        json: Any = None,
    ) -> TenantRead:
        headers = {"X-API-Key": api_key.get_secret_value()}
        if workspace_id:
            headers["X-Tenant-Id"] = workspace_id
        route = f"{method} {template} (tenant key)"
        path = template.format(id=project_id)
        try:
            response = self._http.request(method, path, headers=headers, json=json)
        except httpx.HTTPError as exc:
            raise _transport_error(route, exc) from None
        if response.is_success:
            return "readable"
        if response.status_code == 401:
            return "unauthenticated"
        if response.status_code in (403, 404):
            return "refused"
        raise _status_error(route, response)

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self, *, workspace_id: str | None, org: bool) -> dict[str, str]:
        headers = {"X-API-Key": self._admin_key.get().get_secret_value()}
        workspace = workspace_id or self.workspace_id
        if workspace:
            headers["X-Tenant-Id"] = workspace
        if org and self.org_id:
            headers["X-Organization-Id"] = self.org_id
        return headers

    def _delete(
        self, template: str, object_id: str, *, workspace_id: str | None = None, org: bool = False
    ) -> bool:
        try:
            self._request(
                "DELETE", template, path_args={"id": object_id}, workspace_id=workspace_id, org=org
            )
        except NotFound:
            return False
        return True

    def _call(self, model: type[M], method: str, template: str, **kwargs: Any) -> M:
        response = self._request(method, template, **kwargs)
        return _parse(
            f"{method} {template}", lambda: model.model_validate_json(response.content), kwargs
        )

    def _call_list(self, model: type[M], method: str, template: str, **kwargs: Any) -> list[M]:
        response = self._request(method, template, **kwargs)
        return _parse(
            f"{method} {template}",
            lambda: TypeAdapter(list[model]).validate_json(response.content),  # type: ignore[valid-type]
            kwargs,
        )

    def _request(
        self,
        method: str,
        template: str,
        *,
        path_args: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        creates: bool = False,
        workspace_id: str | None = None,
        org: bool = False,
    ) -> httpx.Response:
        route = f"{method} {template}"
        path = template.format(**path_args) if path_args else template
        headers = self._headers(workspace_id=workspace_id, org=org)

        def attempt() -> httpx.Response:
            self.bucket.acquire()
            try:
                response = self._http.request(
                    method, path, params=params, json=json, headers=headers
                )
            except httpx.HTTPError as exc:
                raise _transport_error(route, exc) from None
            if response.is_success:
                return response
            error = _status_error(route, response)
            if isinstance(error, RateLimited) and error.retry_after:
                self.bucket.pause(error.retry_after)
            raise error

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, LangSmithError) or not exc.transient:
                return False
            # A create is repeated only if the server surely did not act on it.
            return not (creates and exc.maybe_applied)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait_retry_after,
            retry=retry_if_exception(retryable),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "retrying %s after %s (attempt %d)",
                route,
                type(state.outcome.exception()).__name__ if state.outcome else "?",
                state.attempt_number,
            ),
        )
        try:
            return retrying(attempt)
        except AuthError:
            # The admin key may have been rotated (its old value deleted) since it was read: a
            # 401 is answered before LangSmith acts, so even a create is safe to send again.
            fresh = self._admin_key.refresh(SecretStr(headers["X-API-Key"]))
            if fresh is None:
                raise
            headers["X-API-Key"] = fresh.get_secret_value()
            return retrying(attempt)


def _parse(route: str, parse: Callable[[], T], request: Mapping[str, Any]) -> T:
    """A response body as the model; a body that does not fit is `MalformedResponse`, whose
    text names the fields only: pydantic's own would quote the values, a key among them."""
    try:
        return parse()
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "<body>" for e in exc.errors()})
        raise MalformedResponse(
            route, ", ".join(fields), creates=bool(request.get("creates"))
        ) from None


_backoff = wait_exponential_jitter(multiplier=0.2, max=10.0, jitter=0.3)


def _wait_retry_after(state: RetryCallState) -> float:
    """Honour a server's Retry-After; otherwise back off exponentially with jitter."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return exc.retry_after
    return _backoff(state)


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


def _status_error(route: str, response: httpx.Response) -> LangSmithError:
    retry_after: float | None = None
    if (value := response.headers.get("retry-after")) is not None:
        try:
            retry_after = max(0.0, float(value))
        except ValueError:
            retry_after = None
    return error_for_status(route, response.status_code, _detail(response), retry_after)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        text = (
            str(body.get("detail") or body.get("error") or body)
            if isinstance(body, dict)
            else str(body)
        )
        code = body.get("error") if isinstance(body, dict) else None
        if isinstance(code, str) and code not in text:  # a machine-readable code leads
            text = f"{code}: {text}"
    return redact(text)[:200]


def _transport_error(route: str, exc: httpx.HTTPError) -> LangSmithError:
    if isinstance(exc, httpx.TimeoutException):
        # A connect timeout means the request never left; the rest may have been acted on.
        if isinstance(exc, httpx.ConnectTimeout):
            return ConnectionFailed(route, "connect timeout", request_sent=False)
        return Timeout(route, type(exc).__name__)
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(route, "connection refused or unreachable", request_sent=False)
    return ConnectionFailed(route, type(exc).__name__, request_sent=True)
