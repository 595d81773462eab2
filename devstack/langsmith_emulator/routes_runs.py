"""Runs: trace ingest (``/runs``, ``/runs/batch``, ``/runs/multipart``, ``PATCH /runs/{id}``)
and the platform reads (``/runs/query``, ``/runs/stats``, ``GET /runs/{id}``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from .auth import Principal, ws_read, ws_write
from .clock import as_aware, iso
from .errors import ApiError
from .ingest import (
    Batch,
    Ingestor,
    batch_from_json,
    batch_from_multipart,
    json_object,
    parse_json_body,
    parse_multipart,
)
from .models import RunsQueryBody, RunStatsQueryParams
from .responses import ok
from .state import Run, Workspace
from .stats import run_stats

router = APIRouter(tags=["run"])
# POST /runs, /runs/batch and /runs/multipart: the spec has them unprefixed only.
ingest_router = APIRouter(tags=["run"])


# ------------------------------------------------------------------------------ ingest


async def _ingest(principal: Principal, batch: Batch) -> Ingestor:
    ingestor = Ingestor(principal.store, principal)
    with principal.store.lock:
        ingestor.check(batch)
        ingestor.apply(batch)
    return ingestor


@ingest_router.post("/runs", status_code=202)
async def create_run(
    request: Request, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    payload = parse_json_body(await request.body())
    if not isinstance(payload, dict):
        raise ApiError(422, "body must be a run object")
    if payload.get("id") is not None and str(payload["id"]) in principal.store.run_index:
        raise ApiError(409, "Run already exists")
    await _ingest(principal, Batch(posts=[payload]))
    return ok({"message": "Run created"}, status=202)


@ingest_router.post("/runs/batch", status_code=202)
async def batch_runs(
    request: Request, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    batch = batch_from_json(parse_json_body(await request.body()))
    await _ingest(principal, batch)
    return ok({"message": "Runs batch ingested"}, status=202)


@ingest_router.post("/runs/multipart", status_code=202)
async def multipart_runs(
    request: Request, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    if request.headers.get("content-encoding", "").lower() not in ("", "identity"):
        raise ApiError(415, "compressed multipart is not enabled on this server")
    parts = parse_multipart(await request.body(), request.headers.get("content-type", ""))
    await _ingest(principal, batch_from_multipart(parts))
    return ok({"message": "Runs ingested"}, status=202)


@router.patch("/runs/{run_id}")
async def update_run(
    run_id: UUID, request: Request, principal: Annotated[Principal, Depends(ws_write)]
) -> Response:
    payload = parse_json_body(await request.body())
    if not isinstance(payload, dict):
        raise ApiError(422, "body must be a run object")
    payload["id"] = str(run_id)
    await _ingest(principal, Batch(patches=[payload]))
    # 202 on the ingest service path (PATCH /runs/{id}); 200 on PATCH /api/v1/runs/{id}.
    status = 200 if request.url.path.startswith("/api/") else 202
    return ok({"message": "Run updated"}, status=status)


# ------------------------------------------------------------------------------ reads


def _dec(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def as_object(value: Any, wrap: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    return {wrap: value}


def parent_ids(dotted: str) -> list[str]:
    out = []
    for seg in dotted.split(".")[:-1]:
        tail = seg[-36:]
        try:
            out.append(str(UUID(tail)))
        except ValueError:
            continue
    return out


def run_json(run: Run, ws: Workspace) -> dict[str, Any]:
    d = run.data
    project = ws.projects.get(run.project_id)
    events = d.get("events")
    tags = d.get("tags")
    return {
        "id": run.id,
        "name": run.name,
        "run_type": run.run_type,
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "inputs": as_object(d.get("inputs"), "input") or {},
        "outputs": as_object(d.get("outputs"), "output"),
        "extra": as_object(d.get("extra"), "extra"),
        "error": run.error,
        "execution_order": 1,
        "serialized": as_object(d.get("serialized"), "serialized"),
        "events": [e for e in events if isinstance(e, dict)] if isinstance(events, list) else [],
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "parent_run_id": run.parent_run_id,
        "parent_run_ids": parent_ids(run.dotted_order),
        "child_run_ids": None,
        "direct_child_run_ids": None,
        "trace_id": run.trace_id,
        "dotted_order": run.dotted_order,
        "session_id": run.project_id,
        "status": run.status,
        "reference_example_id": d.get("reference_example_id"),
        "total_tokens": run.total_tokens,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "total_cost": _dec(run.total_cost),
        "prompt_cost": _dec(run.prompt_cost),
        "completion_cost": _dec(run.completion_cost),
        "first_token_time": None,
        "feedback_stats": {},
        "s3_urls": {},
        "in_dataset": False,
        "trace_tier": project.trace_tier if project else None,
        "app_path": (
            f"/o/{ws.org_id}/projects/p/{run.project_id}/r/{run.id}?trace_id={run.trace_id}"
        ),
    }


_UNSUPPORTED = ("query", "filter", "trace_filter", "tree_filter", "search_filter")


def _select_runs(principal: Principal, q: RunStatsQueryParams | RunsQueryBody) -> Iterator[Run]:
    """The runs matching ``q`` in the projects the key may read runs of: a named project it
    may not is a 403; without ``session`` the others are left out (or a 403, auth.scope)."""
    ws = principal.workspace
    assert ws is not None
    for name in _UNSUPPORTED:
        if getattr(q, name):
            raise ApiError(400, f"'{name}' expressions are not supported by the emulator")
    if q.session:
        projects = []
        for sid in q.session:
            project = ws.projects.get(str(sid))
            if project is None:
                raise ApiError(404, f"Session {sid} not found")
            principal.check("runs:read", project)
            projects.append(project)
    else:
        projects = principal.scope("runs:read", list(ws.projects.values()))
    ids = {str(i) for i in q.id} if q.id else None
    trace = str(q.trace) if q.trace else None
    parent = str(q.parent_run) if q.parent_run else None
    refs = {str(r) for r in q.reference_example} if q.reference_example else None
    start, end = as_aware(q.start_time), as_aware(q.end_time)
    run_type = q.run_type.value if q.run_type else None
    sources: Iterable[Run]
    for project in projects:
        if ids is not None and len(ids) < len(project.runs):
            sources = [project.runs[i] for i in ids if i in project.runs]
        else:
            sources = project.runs.values()
        for run in sources:
            if ids is not None and run.id not in ids:
                continue
            if trace and run.trace_id != trace:
                continue
            if parent and run.parent_run_id != parent:
                continue
            if q.is_root is not None and run.is_root != q.is_root:
                continue
            if run_type and run.run_type != run_type:
                continue
            if q.error is not None and (run.error is not None) != q.error:
                continue
            if start and run.start_time < start:
                continue
            if end and run.start_time > end:
                continue
            if refs is not None and run.data.get("reference_example_id") not in refs:
                continue
            yield run


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "offset":
            raise ValueError(kind)
        return max(0, int(value))
    except ValueError:
        raise ApiError(400, "invalid cursor") from None


@router.post("/runs/query")
async def query_runs(
    body: RunsQueryBody, principal: Annotated[Principal, Depends(ws_read)]
) -> Response:
    ws = principal.workspace
    assert ws is not None
    offset = _decode_cursor(body.cursor)
    with principal.store.lock:
        runs = list(_select_runs(principal, body))
        runs.sort(key=lambda r: (r.start_time, r.id), reverse=body.order == "desc")
        page = runs[offset : offset + body.limit]
        more = offset + body.limit < len(runs)
        return ok(
            {
                "runs": [run_json(r, ws) for r in page],
                "cursors": {
                    "next": _encode_cursor(offset + body.limit) if more else None,
                    "prev": (
                        _encode_cursor(max(0, offset - body.limit))
                        if offset and not body.skip_prev_cursor
                        else None
                    ),
                },
                "search_cursors": None,
                "parsed_query": None,
            }
        )


def _group_value(run: Run, attribute: str, path: str | None) -> list[str | None]:
    if attribute == "name":
        return [run.name]
    if attribute == "run_type":
        return [run.run_type]
    if attribute == "tag":
        tags = run.data.get("tags")
        return [str(t) for t in tags] if isinstance(tags, list) and tags else []
    meta = json_object(json_object(run.data.get("extra")).get("metadata"))
    value = meta.get(path or "")
    return [None if value is None else str(value)]


@router.post("/runs/stats")
async def stats_runs(
    body: RunStatsQueryParams, principal: Annotated[Principal, Depends(ws_read)]
) -> Response:
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        runs = list(_select_runs(principal, body))
        if not body.group_by:
            return ok(run_stats(runs))
        attribute = body.group_by.get("attribute")
        if attribute not in ("name", "run_type", "tag", "metadata"):
            raise ApiError(422, "group_by.attribute must be name, run_type, tag or metadata")
        groups: dict[str, list[Run]] = {}
        for run in runs:
            for value in _group_value(run, attribute, body.group_by.get("path")):
                if value is not None:
                    groups.setdefault(value, []).append(run)
        if body.groups:
            groups = {k: v for k, v in groups.items() if k in body.groups}
        max_groups = int(body.group_by.get("max_groups") or 5)
        top = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:max_groups]
        return ok({k: run_stats(v) for k, v in top})


@router.get("/runs/{run_id}")
async def read_run(run_id: UUID, principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        run = principal.store.find_run(ws, str(run_id))
        if run is None:
            raise ApiError(404, "Run not found")
        principal.check("runs:read", ws.projects[run.project_id])  # the run's project's tags
        return ok(run_json(run, ws))
