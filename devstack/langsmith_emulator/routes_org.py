"""Organization resources: workspaces, workspace stats/usage info, granular billing usage."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from .audit import note_resources
from .auth import Principal, org_admin, org_member, ws_read, ws_write
from .clock import as_aware, iso
from .errors import ApiError, validation_error
from .models import WorkspaceCreate, WorkspacePatch
from .responses import ok
from .state import Workspace
from .usage import limit_info

router = APIRouter(tags=["workspaces"])


def _for_user(ws: Workspace, principal: Principal) -> dict[str, Any]:
    role = principal.role
    return {
        **ws.tenant_json(),
        "read_only": principal.key.read_only,
        "role_id": principal.key.role_id,
        "role_name": role.name if role else None,
        "permissions": sorted(principal.permissions),
    }


@router.post("/workspaces")
async def create_workspace(
    request: Request, body: WorkspaceCreate, principal: Annotated[Principal, Depends(org_admin)]
) -> Response:
    store = principal.store
    with store.lock:
        wid = str(body.id) if body.id else None
        if wid is not None and wid in store.workspaces:
            raise ApiError(409, "Workspace already exists.")
        if body.tenant_handle and any(
            w.tenant_handle == body.tenant_handle for w in store.workspaces.values()
        ):
            raise ApiError(409, "Workspace handle already exists.")
        ws = Workspace(
            id=wid or str(uuid.uuid4()),
            org_id=principal.key.org_id,
            display_name=body.display_name,
            created_at=store.clock.now(),
            tenant_handle=body.tenant_handle,
        )
        store.workspaces[ws.id] = ws
    note_resources(request, ws.id)
    return ok(ws.tenant_json())


@router.get("/workspaces")
async def list_workspaces(
    principal: Annotated[Principal, Depends(org_member)], include_deleted: bool = False
) -> Response:
    store = principal.store
    with store.lock:
        visible = principal.visible_workspaces()
        if include_deleted and principal.key.is_org_admin:
            visible += [
                w
                for w in store.workspaces.values()
                if w.is_deleted and w.org_id == principal.key.org_id
            ]
        return ok([_for_user(w, principal) for w in visible])


def _same_workspace(principal: Principal, workspace_id: UUID) -> Workspace:
    ws = principal.workspace
    assert ws is not None
    if str(workspace_id) != ws.id:
        raise ApiError(403, "workspace in the path differs from the request's workspace")
    return ws


@router.patch("/workspaces/{workspace_id}")
async def patch_workspace(
    workspace_id: UUID,
    body: WorkspacePatch,
    principal: Annotated[Principal, Depends(ws_write)],
) -> Response:
    with principal.store.lock:
        ws = _same_workspace(principal, workspace_id)
        ws.display_name = body.display_name
        return ok(ws.tenant_json())


@router.delete("/workspaces/{workspace_id}")
async def delete_workspace(
    workspace_id: UUID, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    store = principal.store
    if not principal.key.is_org_admin:
        raise ApiError(403, "Deleting a workspace requires an Organization Admin key")
    with store.lock:
        ws = _same_workspace(principal, workspace_id)
        ws.is_deleted = True
        now = store.clock.now()
        for key in store.keys.values():
            if key.kind == "workspace" and key.workspace_id == ws.id and key.deleted_at is None:
                key.deleted_at = now
    return ok(None)


@router.get("/workspaces/current/stats")
async def workspace_stats(principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    ws = principal.workspace
    assert ws is not None
    return ok(
        {
            "tenant_id": ws.id,
            "dataset_count": 0,
            "tracer_session_count": len(ws.projects),
            "repo_count": 0,
            "annotation_queue_count": 0,
            "deployment_count": 0,
            "dashboards_count": 0,
            "evaluator_count": 0,
        }
    )


@router.get("/workspaces/current/usage_limits")
async def workspace_usage_limits(principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        return ok(limit_info(principal.store, ws))


@router.get("/orgs/current/billing/granular-usage")
async def granular_usage(
    principal: Annotated[Principal, Depends(org_member)],
    start_time: datetime,
    end_time: datetime,
    workspace_ids: Annotated[list[UUID], Query()],
    group_by: Literal["workspace", "project", "api_key", "user"] = "workspace",
) -> Response:
    """Traces (root runs) per UTC day, grouped by workspace, project, api_key or user."""
    store, key = principal.store, principal.key
    if key.kind != "org":
        raise ApiError(403, "granular usage needs an organization service key")
    start, end = as_aware(start_time), as_aware(end_time)
    assert start is not None and end is not None
    if end <= start:
        raise validation_error(["query", "end_time"], "end_time must be after start_time")
    with store.lock:
        visible = {w.id: w for w in principal.visible_workspaces()}
        # (day, dimension): the dimension is (group, ids...), None for a trace without a key.
        counts: Counter[tuple[datetime, tuple[str | None, ...]]] = Counter()
        for wid in dict.fromkeys(str(w) for w in workspace_ids):
            ws = visible.get(wid)
            if ws is None:
                raise ApiError(403, f"no access to workspace {wid}")
            for started, project_id, key_id in ws.traces:
                if not (start <= started < end):
                    continue
                bucket = started.replace(hour=0, minute=0, second=0, microsecond=0)
                if group_by == "project":
                    dim: tuple[str | None, ...] = ("project", ws.id, project_id)
                elif group_by == "api_key":
                    dim = ("api_key", key_id)
                elif group_by == "user":
                    dim = ("user",)
                else:
                    dim = ("workspace", ws.id)
                counts[(bucket, dim)] += 1
        usage = []
        for (bucket, dim), traces in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            dims: dict[str, Any] = {}
            if dim[0] in ("workspace", "project"):
                assert dim[1] is not None  # ws.id, set above
                ws = store.workspaces[dim[1]]
                dims.update({"workspace_id": ws.id, "workspace_name": ws.display_name})
                if dim[0] == "project":
                    assert dim[2] is not None  # the trace's project id, set above
                    project = ws.projects.get(dim[2])
                    dims.update(
                        {"project_id": dim[2], "project_name": project.name if project else None}
                    )
            if dim[0] == "api_key":
                k = store.keys.get(dim[1] or "")
                dims.update({"api_key_id": dim[1], "api_key_short_key": k.short_key if k else None})
            if dim[0] == "user":
                dims.update({"user_id": None, "user_email": None})
            usage.append({"time_bucket": iso(bucket), "dimensions": dims, "traces": traces})
    return ok({"stride": {"days": 1, "hours": 0}, "usage": usage})
