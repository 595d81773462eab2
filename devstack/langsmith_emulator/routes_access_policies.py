"""Access policies (ABAC): ``/v1/platform/orgs/current/access-policies`` as the spec lists them
(the platform service; the Terraform provider calls the same paths under ``/api``, which the
spec does not list and the emulator does not serve).

Org paths (``X-Organization-Id``). Listing and reading need any key of the org
(``organization:read``); creating, deleting and attaching need an Organization Admin key
(``organization:manage``). Errors are ``abac.ErrorResponse`` ``{"error": ...}``: 400 for a
malformed body or id, 403, 404 for an unknown role or policy. A policy applies to the workspace
roles it is attached to (abac.py says how it decides; auth.py where).
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from .abac import AccessPolicy, Condition, ConditionGroup
from .audit import note_resources
from .auth import Principal, org_admin, org_member
from .errors import ApiError
from .models import AttachAccessPoliciesPayload, CreateAccessPolicyPayload
from .rbac import builtin_roles
from .responses import ok
from .state import Organization

router = APIRouter(tags=["access_policies"])

BASE = "/v1/platform/orgs/current/access-policies"

Body = TypeVar("Body", bound=BaseModel)


def _parse(model: type[Body], raw: bytes) -> Body:
    """The body as ``model``; anything malformed is a 400, as the spec answers."""
    try:
        payload = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Invalid request: malformed JSON body") from None
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(400, f"Invalid request: {detail}") from None


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(400, f"Invalid request: {what} is not a UUID") from None


def _org(principal: Principal) -> Organization:
    """The key's org; 403 when it has no ABAC and the emulator is told to refuse policies."""
    org = principal.store.orgs[principal.key.org_id]
    if not org.abac.enabled and org.abac.when_disabled == "refuse":
        raise ApiError(403, "Access policies are not enabled for this organization (ABAC)")
    return org


def _workspace_role(org: Organization, role_id: str) -> str:
    """The id of a workspace role of the org (fixed or custom), else 404 "role not found"."""
    rid = _uuid(role_id, "role_id")
    role = builtin_roles().get(rid) or org.roles.get(rid)
    if role is None or role.access_scope != "workspace":
        raise ApiError(404, f"role not found: {role_id}")
    return rid


def _policy(org: Organization, access_policy_id: str) -> AccessPolicy:
    policy = org.policies.get(_uuid(access_policy_id, "access_policy_id"))
    if policy is None:
        raise ApiError(404, "access policy not found")
    return policy


@router.get(BASE)
async def list_access_policies(principal: Annotated[Principal, Depends(org_member)]) -> Response:
    with principal.store.lock:
        policies = _org(principal).policies.values()
        return ok({"access_policies": [p.to_json() for p in policies]})


@router.post(BASE, status_code=201)
async def create_access_policy(
    request: Request, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    body = _parse(CreateAccessPolicyPayload, await request.body())
    store = principal.store
    with store.lock:
        org = _org(principal)
        role_ids = list(dict.fromkeys(_workspace_role(org, r) for r in body.role_ids or []))
        now = store.clock.now()
        policy = AccessPolicy(
            id=str(uuid.uuid4()),
            name=body.name,
            description=body.description or "",
            effect=body.effect,
            condition_groups=tuple(
                ConditionGroup(
                    permission=g.permission,
                    resource_type=g.resource_type,
                    conditions=tuple(
                        Condition(c.attribute_key, c.operator, c.attribute_value)
                        for c in g.conditions
                    ),
                )
                for g in body.condition_groups
            ),
            role_ids=role_ids,
            created_at=now,
            updated_at=now,
        )
        org.policies[policy.id] = policy
    note_resources(request, policy.id)
    return ok({"id": policy.id}, status=201)


@router.post(BASE + "/roles/{role_id}/access-policies", status_code=204)
async def attach_access_policies(
    request: Request, role_id: str, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    """Attaches the policies to the role (one already attached stays so); all or none."""
    body = _parse(AttachAccessPoliciesPayload, await request.body())
    store = principal.store
    with store.lock:
        org = _org(principal)
        rid = _workspace_role(org, role_id)
        policies = [_policy(org, pid) for pid in body.access_policy_ids]
        now = store.clock.now()
        for policy in policies:
            if rid not in policy.role_ids:
                policy.role_ids.append(rid)
                policy.updated_at = now
    return Response(status_code=204)


@router.get(BASE + "/{access_policy_id}")
async def get_access_policy(
    access_policy_id: str, principal: Annotated[Principal, Depends(org_member)]
) -> Response:
    with principal.store.lock:
        return ok(_policy(_org(principal), access_policy_id).to_json())


@router.delete(BASE + "/{access_policy_id}", status_code=204)
async def delete_access_policy(
    access_policy_id: str, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    """Deletes the policy (and so its attachments). An unknown id is a 404 (the spec lists no
    404 here; the Terraform provider treats one as already deleted)."""
    with principal.store.lock:
        org = _org(principal)
        del org.policies[_policy(org, access_policy_id).id]
    return Response(status_code=204)
