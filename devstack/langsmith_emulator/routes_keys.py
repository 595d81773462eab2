"""API keys: workspace keys at ``/api/v1/api-key`` and org service keys at
``/api/v1/orgs/current/service-keys``. The plaintext appears only in the create response."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, TypedDict
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from .audit import note_resources
from .auth import Principal, org_admin, ws_read, ws_write
from .clock import as_aware
from .errors import ApiError, validation_error
from .models import APIKeyCreateRequest
from .responses import ok
from .state import (
    ORG_ROLES,
    ORGANIZATION_USER,
    WORKSPACE_ADMIN,
    WORKSPACE_READER,
    WORKSPACE_ROLES,
    ApiKey,
    Store,
)

router = APIRouter(tags=["api-key"])


class KeyFields(TypedDict):
    """The fields of a new key that both kinds take from ``APIKeyCreateRequest``."""

    description: str
    expires_at: datetime | None
    read_only: bool
    role_id: str


def _check_lifetime_cap(store: Store, org_id: str, expires_at: datetime | None) -> None:
    """An org that caps key lifetime refuses a key without expiry or one that outlives the cap
    (422, HTTPValidationError, as the spec answers invalid bodies)."""
    cap = store.orgs[org_id].key_expiry_cap_days()
    if cap is None:
        return
    if expires_at is None:
        raise validation_error(
            ["body", "expires_at"],
            f"expires_at is required: the organization caps API key lifetime at {cap} days",
        )
    if expires_at > store.clock.now() + timedelta(days=cap):
        raise validation_error(
            ["body", "expires_at"],
            f"expires_at is beyond the organization's maximum API key lifetime of {cap} days",
        )


def _common(store: Store, body: APIKeyCreateRequest, org_id: str) -> KeyFields:
    expires_at = as_aware(body.expires_at)
    if expires_at is not None and expires_at <= store.clock.now():
        raise validation_error(["body", "expires_at"], "expires_at must be in the future")
    _check_lifetime_cap(store, org_id, expires_at)
    if body.role_id is not None:
        custom = store.orgs[org_id].roles.get(str(body.role_id))
        if str(body.role_id) not in WORKSPACE_ROLES and (
            custom is None or custom.access_scope != "workspace"
        ):
            raise validation_error(["body", "role_id"], "unknown workspace role_id")
    role = str(body.role_id) if body.role_id else None
    if role is None:
        role = WORKSPACE_READER if body.read_only else WORKSPACE_ADMIN
    return {
        "description": body.description,
        "expires_at": expires_at,
        "read_only": role == WORKSPACE_READER,
        "role_id": role,
    }


def _created(store: Store, key: ApiKey, secret: str) -> Response:
    return ok({**store.key_get_json(key), "key": secret})


def _sorted_keys(keys: list[ApiKey]) -> list[ApiKey]:
    return sorted(keys, key=lambda k: (k.created_at, k.id))


@router.post("/api-key")
async def create_api_key(
    request: Request,
    principal: Annotated[Principal, Depends(ws_write)],
    body: APIKeyCreateRequest | None = None,
) -> Response:
    store, ws = principal.store, principal.workspace
    assert ws is not None
    body = body or APIKeyCreateRequest()
    fields = _common(store, body, ws.org_id)
    if body.workspaces is not None and any(str(w) != ws.id for w in body.workspaces):
        raise validation_error(
            ["body", "workspaces"],
            "a workspace key is bound to the request's workspace; use "
            "/api/v1/orgs/current/service-keys for multi-workspace keys",
        )
    key, secret = store.mint_key(
        kind="workspace",
        org_id=ws.org_id,
        workspace_id=ws.id,
        created_by_key_id=principal.key.id,
        **fields,
    )
    note_resources(request, key.id)
    return _created(store, key, secret)


@router.get("/api-key")
async def list_api_keys(principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    store, ws = principal.store, principal.workspace
    assert ws is not None
    with store.lock:
        keys = [
            k
            for k in store.keys.values()
            if k.kind == "workspace" and k.workspace_id == ws.id and k.deleted_at is None
        ]
        return ok([store.key_get_json(k) for k in _sorted_keys(keys)])


@router.delete("/api-key/{api_key_id}")
async def delete_api_key(
    api_key_id: UUID, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    store, ws = principal.store, principal.workspace
    assert ws is not None
    with store.lock:
        key = store.keys.get(str(api_key_id))
        if (
            key is None
            or key.kind != "workspace"
            or key.workspace_id != ws.id
            or key.deleted_at is not None
        ):
            raise ApiError(404, "API key not found")
        key.deleted_at = store.clock.now()
        return ok(store.key_get_json(key))


# ------------------------------------------------------------------ org service keys


@router.get("/orgs/current/service-keys")
async def list_service_keys(principal: Annotated[Principal, Depends(org_admin)]) -> Response:
    store = principal.store
    with store.lock:
        keys = [
            k
            for k in store.keys.values()
            if k.kind == "org" and k.org_id == principal.key.org_id and k.deleted_at is None
        ]
        return ok([store.key_get_json(k) for k in _sorted_keys(keys)])


@router.post("/orgs/current/service-keys")
async def create_service_key(
    request: Request,
    principal: Annotated[Principal, Depends(org_admin)],
    body: APIKeyCreateRequest | None = None,
) -> Response:
    store = principal.store
    body = body or APIKeyCreateRequest()
    org_id = principal.key.org_id
    fields = _common(store, body, org_id)
    workspaces = None
    if body.workspaces is not None:
        if body.org_role_id is not None:
            raise validation_error(
                ["body", "org_role_id"], "org_role_id cannot be combined with workspaces"
            )
        workspaces = list(dict.fromkeys(str(w) for w in body.workspaces))
        with store.lock:
            for wid in workspaces:
                ws = store.workspaces.get(wid)
                if ws is None or ws.is_deleted or ws.org_id != org_id:
                    raise validation_error(["body", "workspaces"], f"unknown workspace {wid}")
    org_role = str(body.org_role_id) if body.org_role_id else ORGANIZATION_USER
    if org_role not in ORG_ROLES:
        raise validation_error(["body", "org_role_id"], "unknown organization role_id")
    key, secret = store.mint_key(
        kind="org",
        org_id=org_id,
        workspaces=workspaces,
        org_role_id=org_role if workspaces is None else None,
        created_by_key_id=principal.key.id,
        **fields,
    )
    note_resources(request, key.id)
    return _created(store, key, secret)


@router.delete("/orgs/current/service-keys/{api_key_id}")
async def delete_service_key(
    api_key_id: UUID, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    store = principal.store
    with store.lock:
        key = store.keys.get(str(api_key_id))
        if (
            key is None
            or key.kind != "org"
            or key.org_id != principal.key.org_id
            or key.deleted_at is not None
        ):
            raise ApiError(404, "Service key not found")
        key.deleted_at = store.clock.now()
        return ok(store.key_get_json(key))
