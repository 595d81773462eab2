"""``GET /api/v1/audit-logs``: the organization's audit records (audit.py) as OCSF events,
``ListAuditLogsOCSFResponse`` ``{items, cursor}``, oldest first, cursor-paged.

Org-scoped (``X-Organization-Id``, as the spec's security says) and for org admins: the audit
log is an Enterprise admin surface (the emulator's reading; the spec names no role).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from .audit import AuditRecord
from .auth import Principal, org_admin
from .clock import as_aware, iso, parse_dt
from .errors import validation_error
from .openapi import enum_values
from .responses import ok

router = APIRouter(tags=["audit-logs"])


def _encode_cursor(record: AuditRecord) -> str:
    raw = json.dumps({"request_time": iso(record.time), "id": record.id})
    return base64.b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        at = parse_dt(data["request_time"])
        if at is None:
            raise ValueError("no time")
        return at, str(data["id"])
    except (ValueError, KeyError, TypeError):
        raise validation_error(["query", "cursor"], "invalid cursor") from None


@router.get("/audit-logs")
async def audit_logs(
    principal: Annotated[Principal, Depends(org_admin)],
    start_time: datetime,
    end_time: datetime,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    cursor: str | None = None,
    workspace_id: UUID | None = None,
    operations: Annotated[list[str] | None, Query()] = None,
) -> Response:
    start, end = as_aware(start_time), as_aware(end_time)
    assert start is not None and end is not None
    if operations:
        unknown = sorted(set(operations) - enum_values("AuditLogOperation"))
        if unknown:
            raise validation_error(["query", "operations"], f"not audit-log operations: {unknown}")
    records = principal.store.audit.select(
        principal.key.org_id,
        start,
        end,
        workspace_id=str(workspace_id) if workspace_id else None,
        operations=set(operations) if operations else None,
        after=_decode_cursor(cursor) if cursor else None,
    )
    page = records[:limit]
    more = len(records) > limit
    return ok(
        {
            "items": [r.ocsf() for r in page],
            "cursor": _encode_cursor(page[-1]) if more else None,
        }
    )
