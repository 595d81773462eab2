"""Projects ("tracer sessions"): ``/api/v1/sessions``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from .auth import Principal, ws_read, ws_write
from .clock import as_aware
from .errors import ApiError, validation_error
from .models import TracerSessionCreate, TracerSessionUpdate
from .responses import ok
from .state import Project, Workspace
from .stats import EMPTY_STATS, project_stats

router = APIRouter(tags=["tracer-sessions"])

CONFLICT = "Session already exists."
SortBy = Literal[
    "name",
    "start_time",
    "last_run_start_time",
    "latency_p50",
    "latency_p99",
    "error_rate",
    "feedback",
    "runs_count",
]


def session_json(
    project: Project, include_stats: bool = False, stats_start: datetime | None = None
) -> dict[str, Any]:
    body = project.base_json()
    body.update(project_stats(project, stats_start) if include_stats else EMPTY_STATS)
    return body


def _get_project(principal: Principal, session_id: UUID) -> Project:
    assert principal.workspace is not None
    project = principal.workspace.projects.get(str(session_id))
    if project is None:
        raise ApiError(404, "Session not found")
    return project


def _sorted(ws: Workspace, sort_by: str, desc: bool) -> list[Project]:
    key = (sort_by, desc)
    cached = ws.sorted_cache.get(key)
    if cached is not None:
        return cached
    projects = list(ws.projects.values())
    if sort_by == "name":
        projects.sort(key=lambda p: (p.name, p.id), reverse=desc)
    elif sort_by in (
        "last_run_start_time",
        "runs_count",
        "latency_p50",
        "latency_p99",
        "error_rate",
    ):
        # Stats-based orders are recomputed per call (runs change without a version bump here).
        field = "run_count" if sort_by == "runs_count" else sort_by

        def stat(p: Project) -> tuple[bool, float | str, str]:
            v = project_stats(p, None).get(field)
            return (v is not None, v if v is not None else 0, p.id)

        projects.sort(key=stat, reverse=desc)
        return projects
    else:
        projects.sort(key=lambda p: (p.start_time, p.id), reverse=desc)
    ws.sorted_cache[key] = projects
    return projects


@router.post("/sessions")
async def create_session(
    body: TracerSessionCreate,
    principal: Annotated[Principal, Depends(ws_write)],
    upsert: bool = False,
) -> Response:
    ws, store = principal.workspace, principal.store
    assert ws is not None
    name = body.name or f"project-{store.clock.now():%Y%m%d%H%M%S%f}"
    tag_values = list(dict.fromkeys(str(v) for v in body.tag_value_ids or []))
    with store.lock:
        existing_id = ws.project_names.get(name)
        if existing_id is not None:
            if upsert:  # the existing project, as it is: tag_value_ids are not applied to it
                return ok(ws.projects[existing_id].base_json())
            raise ApiError(409, CONFLICT)
        if body.id is not None and str(body.id) in store.project_index:
            raise ApiError(409, CONFLICT)
        # Tags are applied in the same step as the create: an unknown value creates nothing.
        for value_id in tag_values:
            if value_id not in ws.tags.values:
                raise ApiError(404, f"Tag value {value_id} not found")
        project = store.create_project(
            ws,
            name,
            id=str(body.id) if body.id else None,
            start_time=as_aware(body.start_time),
            description=body.description,
            extra=body.extra,
            end_time=as_aware(body.end_time),
            default_dataset_id=str(body.default_dataset_id) if body.default_dataset_id else None,
            reference_dataset_id=(
                str(body.reference_dataset_id) if body.reference_dataset_id else None
            ),
            trace_tier=body.trace_tier.value if body.trace_tier else None,
        )
        now = store.clock.now()
        for value_id in tag_values:
            ws.tags.add_tagging(value_id, "project", project.id, now)
    return ok(project.base_json())


def _metadata_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise validation_error(["query", "metadata"], "metadata must be a JSON object") from None
    if not isinstance(value, dict):
        raise validation_error(["query", "metadata"], "metadata must be a JSON object")
    return value


@router.get("/sessions")
async def list_sessions(
    principal: Annotated[Principal, Depends(ws_read)],
    id: Annotated[list[UUID] | None, Query()] = None,
    name: str | None = None,
    name_contains: str | None = None,
    reference_free: bool | None = None,
    reference_dataset: Annotated[list[UUID] | None, Query()] = None,
    metadata: str | None = None,
    sort_by: SortBy = "start_time",
    sort_by_desc: bool = True,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    include_stats: bool = False,
    stats_start_time: datetime | None = None,
    tag_value_id: Annotated[list[UUID] | None, Query()] = None,
) -> Response:
    ws = principal.workspace
    assert ws is not None
    meta = _metadata_filter(metadata)
    with principal.store.lock:
        if name is not None:
            pid = ws.project_names.get(name)
            candidates = [ws.projects[pid]] if pid else []
        elif id:
            wanted = {str(i) for i in id}
            if len(wanted) * 4 < len(ws.projects):
                candidates = [ws.projects[i] for i in wanted if i in ws.projects]
                candidates.sort(key=lambda p: (p.start_time, p.id), reverse=sort_by_desc)
            else:
                candidates = [p for p in _sorted(ws, sort_by, sort_by_desc) if p.id in wanted]
        else:
            candidates = _sorted(ws, sort_by, sort_by_desc)
        filters: list[Callable[[Project], bool]] = []
        if id and name is not None:
            ids = {str(i) for i in id}
            filters.append(lambda p: p.id in ids)
        if name_contains:
            needle = name_contains.lower()
            filters.append(lambda p: needle in p.name.lower())
        if reference_free is not None:
            filters.append(lambda p: (p.reference_dataset_id is None) == reference_free)
        if reference_dataset:
            refs = {str(r) for r in reference_dataset}
            filters.append(lambda p: p.reference_dataset_id in refs)
        if meta:
            filters.append(
                lambda p: all(
                    ((p.extra or {}).get("metadata") or {}).get(k) == v for k, v in meta.items()
                )
            )
        if tag_value_id:  # projects carrying any of these tag values
            values = {str(v) for v in tag_value_id}
            filters.append(lambda p: ws.tags.has_any("project", p.id, values))
        if filters:
            candidates = [p for p in candidates if all(f(p) for f in filters)]
        # Access policies: the projects the key may not read are left out (or a 403).
        candidates = principal.scope("projects:read", candidates)
        page = candidates[offset : offset + limit]
        start = as_aware(stats_start_time)
        body = [session_json(p, include_stats, start) for p in page]
    return ok(body)


@router.get("/sessions/{session_id}")
async def read_session(
    session_id: UUID,
    principal: Annotated[Principal, Depends(ws_read)],
    include_stats: bool = False,
    stats_start_time: datetime | None = None,
) -> Response:
    with principal.store.lock:
        project = _get_project(principal, session_id)
        principal.check("projects:read", project)
        return ok(session_json(project, include_stats, as_aware(stats_start_time)))


@router.patch("/sessions/{session_id}")
async def update_session(
    session_id: UUID,
    body: TracerSessionUpdate,
    principal: Annotated[Principal, Depends(ws_write)],
) -> Response:
    ws, store = principal.workspace, principal.store
    assert ws is not None
    fields = body.model_dump(exclude_unset=True)
    with store.lock:
        project = _get_project(principal, session_id)
        principal.check("projects:update", project)
        new_name = fields.pop("name", None)
        if new_name is not None and new_name != project.name:
            if new_name in ws.project_names:
                raise ApiError(409, CONFLICT)
            store.rename_project(ws, project, new_name)
        for k, v in fields.items():
            if k in ("default_dataset_id",) and v is not None:
                v = str(v)
            elif k == "end_time":
                v = as_aware(v)
            elif k == "trace_tier" and v is not None:
                v = v.value if hasattr(v, "value") else v
            setattr(project, k, v)
        return ok(project.base_json())


@router.delete("/sessions/{session_id}")
async def delete_session(
    session_id: UUID, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        project = _get_project(principal, session_id)
        principal.check("projects:delete", project)
        principal.store.delete_project(ws, project)
    return ok(None)


@router.delete("/sessions")
async def delete_sessions(
    principal: Annotated[Principal, Depends(ws_write)],
    session_ids: Annotated[list[UUID], Query()],
) -> Response:
    """Bulk delete: ids not in this workspace are ignored; one the key may not delete
    refuses the whole request (403), deleting nothing."""
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        wanted = dict.fromkeys(str(sid) for sid in session_ids)
        projects = [ws.projects[sid] for sid in wanted if sid in ws.projects]
        for project in projects:
            principal.check("projects:delete", project)
        for project in projects:
            principal.store.delete_project(ws, project)
    return ok(None)
