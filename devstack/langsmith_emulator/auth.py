"""Authentication and workspace/organization scoping, as LangSmith Cloud does it.

* 401: missing, unknown, deleted or expired ``X-API-Key``.
* Workspace keys act on the workspace they were created in; ``X-Tenant-Id`` naming another
  workspace is a 403.
* Org service keys must send ``X-Tenant-Id`` on workspace resources (403 with error code
  ``org_scoped_key_requires_workspace`` otherwise) and reach only the workspaces they are scoped
  to (all of the organization's when org-wide).
* Organization-scoped paths need ``X-Organization-Id`` equal to the key's organization (403 when
  missing or different; the emulator is strict here so a client that forgets it fails locally).
* ``X-Organization-Id``, when sent on a workspace path, must also match the key's organization.
* On a workspace path the key's role must hold the route's permission (rbac.py), else 403;
  on the routes where access policies decide per project, the handler decides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property

from fastapi import Request

from .abac import AccessPolicy, decide, may_grant
from .errors import ApiError
from .rbac import PER_PROJECT, ROUTE_PERMISSIONS, builtin_roles, reader_permissions
from .state import WORKSPACE_READER, ApiKey, Project, Role, Store, Workspace

ORG_SCOPED_KEY_REQUIRES_WORKSPACE = "org_scoped_key_requires_workspace"


@dataclass
class Principal:
    key: ApiKey
    store: Store
    workspace: Workspace | None = None

    @cached_property
    def role(self) -> Role | None:
        """The key's workspace role: a fixed one or a custom role of its org (None if deleted)."""
        role_id = self.key.role_id
        fixed = builtin_roles().get(role_id)
        if fixed is not None:
            return fixed
        org = self.store.orgs.get(self.key.org_id)
        return org.roles.get(role_id) if org else None

    @cached_property
    def permissions(self) -> frozenset[str]:
        """The workspace permissions of the key's role (RBAC)."""
        if self.key.read_only:
            return reader_permissions()
        role = self.role
        if role is None or role.access_scope != "workspace":
            return frozenset()
        return frozenset(role.permissions)

    @cached_property
    def policies(self) -> list[AccessPolicy]:
        """The access policies attached to the key's role, when the org enforces ABAC."""
        org = self.store.orgs.get(self.key.org_id)
        if org is None or not org.abac.enabled:
            return []
        return org.policies_of(self.key.role_id)

    def may_some(self, permission: str) -> bool:
        """Whether the key may have ``permission`` on at least one project: its role holds it,
        or an allow policy of its role may grant it."""
        return permission in self.permissions or may_grant(self.policies, permission, "project")

    def uniform(self, permission: str) -> bool | None:
        """The answer for every project when no policy of the role speaks of ``permission`` on
        projects (RBAC alone), else None: it depends on each project's tags."""
        for policy in self.policies:
            for group in policy.condition_groups:
                if group.permission == permission and group.resource_type == "project":
                    return None
        return permission in self.permissions

    def may(self, permission: str, project: Project) -> bool:
        """Whether the key has ``permission`` on ``project`` (a project of its workspace): the
        role's permissions and access policies against the project's tags (abac.py)."""
        rbac = permission in self.permissions
        if not self.policies:
            return rbac
        assert self.workspace is not None
        org = self.store.orgs[self.key.org_id]
        tags = self.workspace.tags.resource_tags("project", project.id)
        return decide(
            self.policies, permission, "project", tags, rbac=rbac, unmatched=org.abac.unmatched
        )

    def check(self, permission: str, project: Project) -> None:
        """403 unless the key has ``permission`` on ``project``."""
        if not self.may(permission, project):
            raise ApiError(
                403, f"API key does not have the permission {permission} on project {project.id}"
            )

    def scope(self, permission: str, projects: list[Project]) -> list[Project]:
        """The projects of a read that names none (a project list, runs across the workspace)
        the key has ``permission`` on. The others are left out, or, when the org's
        ``project_list`` reading is "forbid", the request is refused with a 403."""
        same = self.uniform(permission)
        if same is not None:
            if not same:
                raise ApiError(403, f"API key role does not have the permission {permission}")
            return projects
        allowed = [p for p in projects if self.may(permission, p)]
        org = self.store.orgs[self.key.org_id]
        if len(allowed) < len(projects) and org.abac.project_list == "forbid":
            raise ApiError(
                403, f"API key does not have the permission {permission} on every project"
            )
        return allowed

    def visible_workspaces(self) -> list[Workspace]:
        """Workspaces this key can reach in its organization (not deleted)."""
        out = []
        for ws in self.store.workspaces.values():
            if ws.org_id != self.key.org_id or ws.is_deleted:
                continue
            if self.key.kind == "workspace" and ws.id != self.key.workspace_id:
                continue
            scope = self.key.workspaces
            if self.key.kind == "org" and scope is not None and ws.id not in scope:
                continue
            out.append(ws)
        return out


def get_store(request: Request) -> Store:
    store = request.app.state.store  # set by app.create_app
    assert isinstance(store, Store)
    return store


def _norm_uuid(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return "invalid"


def authenticate(request: Request) -> ApiKey:
    store = get_store(request)
    secret = request.headers.get("x-api-key")
    if not secret:
        raise ApiError(401, "Missing API key (X-API-Key header)")
    with store.lock:
        key = store.find_key(secret.strip())
        now = store.clock.now()
        if key is None:
            raise ApiError(401, "Invalid API key")
        if key.deleted_at is not None:
            raise ApiError(401, "API key has been revoked")
        if key.is_expired(now):
            raise ApiError(401, "API key has expired")
        key.last_used_at = now
    # For the audit record of this request (testing_controls.py writes it once answered).
    request.state.emu_auth_key_id = key.id
    request.state.emu_org_id = key.org_id
    return key


def _check_org_header(request: Request, key: ApiKey, required: bool) -> None:
    raw = request.headers.get("x-organization-id")
    org = _norm_uuid(raw)
    if org is None:
        if required:
            raise ApiError(403, "X-Organization-Id header is required for organization endpoints")
        return
    if org != key.org_id:
        raise ApiError(403, "API key does not belong to the organization in X-Organization-Id")


def route_permission(request: Request) -> tuple[str, str]:
    """The request's normalised route (set by the middleware) and the permission it needs."""
    route: str = getattr(request.state, "emu_route", "")
    method, _, template = route.partition(" ")
    if method == "HEAD":
        route = f"GET {template}"
    return route, ROUTE_PERMISSIONS[route]  # every workspace route has one (a test checks)


def check_permission(request: Request, principal: Principal) -> None:
    """403 unless the key's role holds the route's permission (on some project, for the routes
    where the handler decides per project)."""
    route, permission = route_permission(request)
    allowed = (
        principal.may_some(permission)
        if route in PER_PROJECT
        else permission in principal.permissions
    )
    if allowed:
        return
    if principal.key.read_only or principal.key.role_id == WORKSPACE_READER:
        raise ApiError(403, "API key role is read-only (WORKSPACE_READER)")
    raise ApiError(403, f"API key role does not have the permission {permission}")


def resolve_workspace(request: Request) -> Principal:
    key = authenticate(request)
    store = get_store(request)
    _check_org_header(request, key, required=False)
    tenant = _norm_uuid(request.headers.get("x-tenant-id"))
    with store.lock:
        if key.kind == "workspace":
            if tenant is not None and tenant != key.workspace_id:
                raise ApiError(403, "API key does not have access to the workspace in X-Tenant-Id")
            ws = store.workspaces.get(key.workspace_id or "")
            if ws is None or ws.is_deleted:
                raise ApiError(401, "API key's workspace has been deleted")
        else:
            if tenant is None:
                raise ApiError(
                    403,
                    "This API key is org-scoped and requires workspace specification: "
                    "send the X-Tenant-Id header",
                    code=ORG_SCOPED_KEY_REQUIRES_WORKSPACE,
                )
            ws = store.workspaces.get(tenant)
            if ws is None or ws.is_deleted or ws.org_id != key.org_id:
                raise ApiError(403, "API key does not have access to the workspace in X-Tenant-Id")
            if key.workspaces is not None and ws.id not in key.workspaces:
                raise ApiError(403, "API key does not have access to the workspace in X-Tenant-Id")
    principal = Principal(key=key, store=store, workspace=ws)
    request.state.emu_workspace_id = ws.id
    check_permission(request, principal)
    return principal


def resolve_org(request: Request, *, admin: bool) -> Principal:
    key = authenticate(request)
    _check_org_header(request, key, required=True)
    if admin and not key.is_org_admin:
        raise ApiError(403, "Requires an org-wide service key with the Organization Admin role")
    return Principal(key=key, store=get_store(request))


# FastAPI dependencies ---------------------------------------------------------------------


# Both check the route's permission (rbac.ROUTE_PERMISSIONS); the name says which kind it is, and
# a test checks that ws_read routes need a ":read" permission and ws_write routes another.


async def ws_read(request: Request) -> Principal:
    return resolve_workspace(request)


async def ws_write(request: Request) -> Principal:
    return resolve_workspace(request)


async def org_member(request: Request) -> Principal:
    return resolve_org(request, admin=False)


async def org_admin(request: Request) -> Principal:
    return resolve_org(request, admin=True)
