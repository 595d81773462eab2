"""Custom roles: ``GET/POST /api/v1/orgs/current/roles``, ``PATCH/DELETE .../roles/{role_id}``.

Org paths (``X-Organization-Id``). Listing needs any key of the org (``organization:read``);
creating, updating and deleting need an Organization Admin key (``organization:manage``).
The list has the four fixed roles (``organization_id`` null) and the org's custom roles. A
custom role is a workspace role (``access_scope: "workspace"``) whose ``permissions`` are names
of the spec's ``authz_internal.Permission`` enum, ``organization:*`` excluded (422 otherwise).
A key created with its id as ``role_id`` acts with those permissions (auth.py).
"""

from __future__ import annotations

import uuid
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from .audit import note_resources
from .auth import Principal, org_admin, org_member
from .errors import ApiError, ValidationApiError
from .models import CreateRoleRequest
from .rbac import builtin_roles, workspace_permissions
from .responses import ok
from .state import Organization, Role, Store

router = APIRouter(tags=["orgs"])


def _check_permissions(permissions: list[str]) -> list[str]:
    allowed = workspace_permissions()
    errors = [
        {
            "loc": ["body", "permissions", i],
            "msg": f"{p!r} is not a workspace permission (authz_internal.Permission, "
            "organization:* excluded)",
            "type": "value_error",
        }
        for i, p in enumerate(permissions)
        if p not in allowed
    ]
    if errors:
        raise ValidationApiError(errors)
    return list(dict.fromkeys(permissions))


def _org(principal: Principal) -> Organization:
    return principal.store.orgs[principal.key.org_id]


def _custom(principal: Principal, role_id: UUID) -> Role:
    if str(role_id) in builtin_roles():
        raise ApiError(403, "The built-in roles cannot be changed")
    role = _org(principal).roles.get(str(role_id))
    if role is None:
        raise ApiError(404, "Role not found")
    return role


def keys_using(store: Store, role_id: str) -> int:
    """Usable (not deleted, not expired) keys minted with ``role_id``."""
    now = store.clock.now()
    return sum(
        1
        for k in store.keys.values()
        if k.role_id == role_id and k.deleted_at is None and not k.is_expired(now)
    )


@router.get("/orgs/current/roles")
async def list_roles(principal: Annotated[Principal, Depends(org_member)]) -> Response:
    with principal.store.lock:
        roles = [*builtin_roles().values(), *_org(principal).roles.values()]
        return ok([r.to_json() for r in roles])


@router.post("/orgs/current/roles")
async def create_role(
    request: Request, body: CreateRoleRequest, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    permissions = _check_permissions(body.permissions)
    role_id = str(uuid.uuid4())
    role = Role(
        id=role_id,
        name=f"CUSTOM_{role_id.replace('-', '')[:12].upper()}",
        display_name=body.display_name,
        description=body.description,
        permissions=permissions,
        access_scope="workspace",
        organization_id=principal.key.org_id,
    )
    with principal.store.lock:
        _org(principal).roles[role.id] = role
    note_resources(request, role.id)
    return ok(role.to_json())


@router.patch("/orgs/current/roles/{role_id}")
async def update_role(
    role_id: UUID, body: CreateRoleRequest, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    """``UpdateRoleRequest``: the three fields replace the role's (keys using it follow)."""
    permissions = _check_permissions(body.permissions)
    with principal.store.lock:
        role = _custom(principal, role_id)
        role.display_name, role.description = body.display_name, body.description
        role.permissions = permissions
        return ok(role.to_json())


@router.delete("/orgs/current/roles/{role_id}")
async def delete_role(
    role_id: UUID, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    """Answers the deleted ``Role``. A role that usable keys carry is a 409 (a reading)."""
    store = principal.store
    with store.lock:
        role = _custom(principal, role_id)
        in_use = keys_using(store, role.id)
        if in_use:
            raise ApiError(409, f"Role is assigned to {in_use} active API key(s)")
        org = _org(principal)
        del org.roles[role.id]
        for policy in org.policies_of(role.id):  # its attachments go with it
            policy.role_ids.remove(role.id)
        return ok(role.to_json())
