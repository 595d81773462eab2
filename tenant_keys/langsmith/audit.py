"""LangSmith's audit log as the tool reads it: `GET /api/v1/audit-logs`, OCSF API Activity
(class 6003) records wrapping LangSmith's own record (`AuditLogMessage`).

Only what the posture report reads is declared: which key made an audited request, when, and
which operation. Unknown fields are ignored, so a richer server does not break the client.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AuditLogMessage(_Response):
    """`AuditLogMessage`: one audited request as LangSmith records it."""

    id: str | None = None
    operation_name: str
    operation_succeeded: bool | None = None
    request_time: datetime
    api_key_id: str | None = None  # the key that made the request (None: a user's session)


class _Unmapped(_Response):
    original_audit_log: AuditLogMessage


class AuditRecord(_Response):
    """`OCSFApiActivity`, reduced to LangSmith's own record inside it."""

    unmapped: _Unmapped

    @property
    def message(self) -> AuditLogMessage:
        return self.unmapped.original_audit_log


class AuditLogPage(_Response):
    """`ListAuditLogsOCSFResponse`: a page, oldest first; `cursor` None on the last one."""

    items: list[AuditRecord] = Field(default_factory=list)
    cursor: str | None = None
