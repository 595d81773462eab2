"""The audit log behind ``GET /api/v1/audit-logs``: one record per authenticated request to an
operation LangSmith audits, served as OCSF API Activity (class 6003) events.

Which operations are audited is the spec's ``AuditLogOperation`` enum; the emulator records
the ones it serves (``OPERATIONS``). An authenticated request is recorded whatever its outcome
(``operation_succeeded`` is false for a 4xx/5xx), so a key's use, a refused mint and a key
created whose response was lost all leave a trace. A request refused before LangSmith sees it
(a 401, a rate-limit 429, an injected "before" fault) leaves none.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import iso

MAX_RECORDS = 100_000  # the oldest are dropped beyond this (long benchmarks)

CREATE, READ, UPDATE, DELETE = 1, 2, 3, 4
ACTIVITY_NAMES = {CREATE: "Create", READ: "Read", UPDATE: "Update", DELETE: "Delete"}

# Served route (normalised, as the request counters name it) -> (AuditLogOperation, activity).
# The v1 run reads are read_run(s), the v2 SmithDB ones query_run(s) (a reading of the names).
OPERATIONS: dict[str, tuple[str, int]] = {
    "POST /api/v1/api-key": ("create_api_key", CREATE),
    "DELETE /api/v1/api-key/{api_key_id}": ("delete_api_key", DELETE),
    "GET /api/v1/orgs/current/service-keys": ("list_org_service_keys", READ),
    "POST /api/v1/orgs/current/service-keys": ("create_service_key", CREATE),
    "DELETE /api/v1/orgs/current/service-keys/{api_key_id}": ("delete_service_key", DELETE),
    "POST /api/v1/workspaces": ("create_workspace", CREATE),
    "GET /api/v1/workspaces": ("list_workspaces", READ),
    "PATCH /api/v1/workspaces/{workspace_id}": ("update_workspace", UPDATE),
    "DELETE /api/v1/workspaces/{workspace_id}": ("delete_workspace", DELETE),
    "GET /api/v1/workspaces/current/stats": ("get_workspace_stats", READ),
    "GET /api/v1/workspaces/current/usage_limits": ("get_workspace_usage_limits_info", READ),
    "GET /api/v1/usage-limits": ("get_usage_limits", READ),
    "PUT /api/v1/usage-limits": ("update_usage_limit", UPDATE),
    "DELETE /api/v1/usage-limits/{usage_limit_id}": ("delete_usage_limit", DELETE),
    "PATCH /api/v1/sessions/{session_id}": ("update_tracer_session", UPDATE),
    "DELETE /api/v1/sessions/{session_id}": ("delete_tracer_session", DELETE),
    "DELETE /api/v1/sessions": ("delete_tracer_sessions", DELETE),
    "POST /api/v1/runs/query": ("read_runs", READ),
    "GET /api/v1/runs/{run_id}": ("read_run", READ),
    "POST /api/v2/runs/query": ("query_runs", READ),
    "GET /api/v2/runs/{run_id}": ("query_run", READ),
    "GET /api/v1/orgs/current/billing/granular-usage": ("get_granular_usage", READ),
    "GET /api/v1/orgs/current/info": ("get_organization_info", READ),
    "PATCH /api/v1/orgs/current/info": ("update_organization_info", UPDATE),
    "GET /api/v1/audit-logs": ("get_audit_logs", READ),
    # Custom roles.
    "GET /api/v1/orgs/current/roles": ("list_organization_roles", READ),
    "POST /api/v1/orgs/current/roles": ("create_role", CREATE),
    "PATCH /api/v1/orgs/current/roles/{role_id}": ("update_role", UPDATE),
    "DELETE /api/v1/orgs/current/roles/{role_id}": ("delete_role", DELETE),
    # Access policies.
    "GET /v1/platform/orgs/current/access-policies": ("list_access_policies", READ),
    "POST /v1/platform/orgs/current/access-policies": ("create_access_policy", CREATE),
    "GET /v1/platform/orgs/current/access-policies/{access_policy_id}": (
        "read_access_policy",
        READ,
    ),
    "DELETE /v1/platform/orgs/current/access-policies/{access_policy_id}": (
        "delete_access_policy",
        DELETE,
    ),
    "POST /v1/platform/orgs/current/access-policies/roles/{role_id}/access-policies": (
        "attach_access_policies",
        UPDATE,
    ),
    # Resource tags.
    "GET /api/v1/workspaces/current/tag-keys": ("list_tag_keys", READ),
    "POST /api/v1/workspaces/current/tag-keys": ("create_tag_key", CREATE),
    "GET /api/v1/workspaces/current/tag-keys/{tag_key_id}": ("get_tag_key", READ),
    "PATCH /api/v1/workspaces/current/tag-keys/{tag_key_id}": ("update_tag_key", UPDATE),
    "DELETE /api/v1/workspaces/current/tag-keys/{tag_key_id}": ("delete_tag_key", DELETE),
    "GET /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values": ("list_tag_values", READ),
    "POST /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values": (
        "create_tag_value",
        CREATE,
    ),
    "GET /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values/{tag_value_id}": (
        "get_tag_value",
        READ,
    ),
    "PATCH /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values/{tag_value_id}": (
        "update_tag_value",
        UPDATE,
    ),
    "DELETE /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values/{tag_value_id}": (
        "delete_tag_value",
        DELETE,
    ),
    "POST /api/v1/workspaces/current/taggings": ("create_tagging", CREATE),
    "GET /api/v1/workspaces/current/taggings": ("list_taggings", READ),
    "DELETE /api/v1/workspaces/current/taggings/{tagging_id}": ("delete_tagging", DELETE),
    "GET /api/v1/workspaces/current/tags": ("list_tags", READ),
    "GET /api/v1/workspaces/current/tags/resource": ("list_tags_for_resource", READ),
}


@dataclass(frozen=True)
class AuditRecord:
    id: str
    operation: str
    activity_id: int
    succeeded: bool
    time: datetime
    api_key_id: str
    organization_id: str
    workspace_id: str | None
    method: str
    path: str
    status: int
    client_host: str | None
    client_port: int | None
    resource_ids: tuple[str, ...] = ()

    def sort_key(self) -> tuple[datetime, str]:
        return (self.time, self.id)

    def message(self) -> dict[str, Any]:
        """``AuditLogMessage``, the record as LangSmith stores it."""
        return {
            "id": self.id,
            "operation_name": self.operation,
            "operation_succeeded": self.succeeded,
            "request_time": iso(self.time),
            "api_key_id": self.api_key_id,
            "user_id": None,  # service keys act for no user
            "ls_user_id": None,
            "organization_id": self.organization_id,
            "workspace_id": self.workspace_id,
            "enrichments": {
                "request_method": self.method,
                "request_path": self.path,
                "client_host": self.client_host,
                "client_port": self.client_port,
                "x_forwarded_for": None,
                "response_status_code": self.status,
                "resource_ids": list(self.resource_ids),
            },
        }

    def ocsf(self) -> dict[str, Any]:
        """``OCSFApiActivity``: OCSF 1.7 API Activity (class 6003) wrapping the message."""
        return {
            "class_uid": 6003,
            "class_name": "API Activity",
            "category_uid": 6,
            "category_name": "Application Activity",
            "severity_id": 99,  # "Other": the only value the spec allows
            "type_uid": 6003 * 100 + self.activity_id,
            "activity_id": self.activity_id,
            "activity_name": ACTIVITY_NAMES[self.activity_id],
            "status_id": 1 if self.succeeded else 2,
            "status": "Success" if self.succeeded else "Failure",
            "time": int(self.time.timestamp() * 1000),  # OCSF times are epoch milliseconds
            "metadata": {
                "uid": self.id,
                "product": {"name": "LangSmith", "vendor_name": "LangChain"},
            },
            "api": {"operation": self.operation},
            "http_request": {"http_method": self.method, "url": {"path": self.path}},
            "http_response": {"code": self.status},
            "actor": {"user": {"uid": None, "credential_uid": self.api_key_id}},
            "src_endpoint": {
                "ip": self.client_host,
                "port": self.client_port,
                "intermediate_ips": None,
            },
            "resources": [{"uid": r} for r in self.resource_ids],
            "unmapped": {"original_audit_log": self.message()},
        }


def _uuids(values: Iterable[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        try:
            out.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return tuple(dict.fromkeys(out))


def note_resources(request: Any, *ids: str) -> None:
    """Name the resources a handler created, for its audit record (request.state)."""
    request.state.emu_resource_ids = [*getattr(request.state, "emu_resource_ids", []), *ids]


@dataclass
class AuditLog:
    records: deque[AuditRecord] = field(default_factory=lambda: deque(maxlen=MAX_RECORDS))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        route: str,
        *,
        time: datetime,
        api_key_id: str,
        organization_id: str,
        workspace_id: str | None,
        path: str,
        status: int,
        client: tuple[str, int] | None,
        resource_ids: Iterable[str] = (),
    ) -> AuditRecord | None:
        """Append the record of a request to ``route`` ("METHOD /api/v1/..."), if audited."""
        operation = OPERATIONS.get(route)
        if operation is None:
            return None
        name, activity = operation
        entry = AuditRecord(
            id=str(uuid.uuid4()),
            operation=name,
            activity_id=activity,
            succeeded=status < 400,
            time=time,
            api_key_id=api_key_id,
            organization_id=organization_id,
            workspace_id=workspace_id,
            method=route.partition(" ")[0],
            path=path,
            status=status,
            client_host=client[0] if client else None,
            client_port=client[1] if client else None,
            resource_ids=_uuids(resource_ids),
        )
        with self.lock:
            self.records.append(entry)
        return entry

    def select(
        self,
        organization_id: str,
        start: datetime,
        end: datetime,
        *,
        workspace_id: str | None = None,
        operations: set[str] | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[AuditRecord]:
        """The org's records in ``[start, end]`` (both inclusive), oldest first."""
        with self.lock:
            records = list(self.records)
        out = [
            r
            for r in records
            if r.organization_id == organization_id
            and start <= r.time <= end
            and (workspace_id is None or r.workspace_id == workspace_id)
            and (operations is None or r.operation in operations)
            and (after is None or r.sort_key() > after)
        ]
        out.sort(key=AuditRecord.sort_key)
        return out

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
