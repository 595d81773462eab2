"""Workspace usage limits: ``/api/v1/usage-limits``."""

from __future__ import annotations

import uuid
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends
from starlette.responses import Response

from .auth import Principal, ws_read, ws_write
from .errors import ApiError, validation_error
from .models import UpsertUsageLimit
from .responses import ok
from .state import UsageLimit

router = APIRouter(tags=["usage-limits"])


@router.get("/usage-limits")
async def list_usage_limits(principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        limits = sorted(ws.usage_limits.values(), key=lambda u: (u.created_at, u.id))
        return ok([u.to_json() for u in limits])


@router.put("/usage-limits")
async def upsert_usage_limit(
    body: UpsertUsageLimit, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    """Update by ``id`` if given, else the workspace's limit of that type, else create one."""
    store, ws = principal.store, principal.workspace
    assert ws is not None
    if body.limit_value < 0:
        raise validation_error(["body", "limit_value"], "limit_value must be >= 0")
    with store.lock:
        now = store.clock.now()
        limit = None
        if body.id is not None:
            limit = ws.usage_limits.get(str(body.id))
            if limit is None:
                raise ApiError(404, "Usage limit not found")
        else:
            limit = next(
                (u for u in ws.usage_limits.values() if u.limit_type == body.limit_type.value),
                None,
            )
        if limit is None:
            limit = UsageLimit(
                id=str(uuid.uuid4()),
                tenant_id=ws.id,
                limit_type=body.limit_type.value,
                limit_value=body.limit_value,
                created_at=now,
                updated_at=now,
            )
            ws.usage_limits[limit.id] = limit
        else:
            limit.limit_type = body.limit_type.value
            limit.limit_value = body.limit_value
            limit.updated_at = now
        return ok(limit.to_json())


@router.delete("/usage-limits/{usage_limit_id}")
async def delete_usage_limit(
    usage_limit_id: UUID, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        if ws.usage_limits.pop(str(usage_limit_id), None) is None:
            raise ApiError(404, "Usage limit not found")
    return ok(None)
