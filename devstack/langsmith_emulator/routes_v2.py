"""The SmithDB API (``/v2`` in the spec, ``/api/v2`` as the SDK calls it): ``POST /v2/runs/query``
(``client.runs.query()``, the replacement of ``Client.list_runs``) and ``GET /v2/runs/{run_id}``
(``client.runs.retrieve()``). Errors are RFC 7807 problem details (errors.py).

Auth and scoping are those of the v1 run reads: a key reads the projects of the workspace it
acts on; another workspace's project is a 404, another workspace in ``X-Tenant-Id`` a 403.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from .auth import Principal, ws_read
from .clock import as_aware
from .errors import ApiError
from .models import QueryRunsBody
from .responses import ok
from .runs_v2 import check_selects, query_runs, run_response

router = APIRouter(tags=["runs"])


def _parse_query(raw: bytes) -> QueryRunsBody:
    """The body, with the spec's statuses: 400 for malformed JSON or a bad parameter, 422 for a
    bad UUID."""
    try:
        payload = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed JSON body") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return QueryRunsBody.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors()
        status = 422 if any("uuid" in e["type"] for e in errors) else 400
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        raise ApiError(status, detail) from None


@router.post("/v2/runs/query")
async def query(request: Request, principal: Annotated[Principal, Depends(ws_read)]) -> Response:
    body = _parse_query(await request.body())
    ws = principal.workspace
    assert ws is not None
    with principal.store.lock:
        return ok(query_runs(principal, body))


@router.get("/v2/runs/{run_id}")
async def retrieve(
    run_id: UUID,
    principal: Annotated[Principal, Depends(ws_read)],
    project_id: UUID,
    start_time: datetime,
    selects: Annotated[list[str] | None, Query()] = None,
) -> Response:
    ws = principal.workspace
    assert ws is not None
    chosen = check_selects(selects or ["ID"])
    with principal.store.lock:
        project = ws.projects.get(str(project_id))
        if project is not None:
            principal.check("runs:read", project)
        run = project.runs.get(str(run_id)) if project else None
        # start_time locates the run (with project_id); another start time finds nothing.
        if project is None or run is None or run.start_time != as_aware(start_time):
            raise ApiError(404, f"run {run_id} not found")
        return ok(run_response(run, project, chosen))
