"""The JSON of the ``/_emulator/*`` control API, typed once for both ends: the server
(``testing_controls.py``, ``routes_control.py``) builds these and the client
(``control.py``, ``EmulatorControl``) returns them. Plain typing, so the client imports no
web framework."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

FaultAction = Literal["status", "hang", "drop", "mangle"]
FaultWhen = Literal["before", "after"]


class FaultJson(TypedDict):
    """A fault as ``POST /_emulator/faults`` and ``GET /_emulator/faults`` show it."""

    id: int
    method: str
    route: str
    action: FaultAction
    status: int
    count: int | None
    retry_after: float | None
    hang_seconds: float | None
    when: FaultWhen
    skip: int
    key_id: str | None
    body: dict[str, Any] | None
    remove: list[str]  # mangle: the reply's top-level fields to leave out
    seen: int  # matching calls so far, the skipped ones included
    fired: int
    remaining: int | None  # None: until cleared
    active: bool


class RateLimitJson(TypedDict):
    count: int
    interval_seconds: float


class ControlConfigJson(TypedDict):
    """``GET /_emulator/config`` (and the answer of ``POST``)."""

    latency_ms: float
    latency_jitter_ms: float
    route_latency_ms: dict[str, float]  # "METHOD /api/v1/..." -> ms
    rate_limits_enabled: bool
    rate_limits: dict[str, RateLimitJson]  # rate-limit class -> its limit
    rate_limits_source: str
    rate_window_seconds: float | None
    rate_limit_algorithm: str


class RequestCounts(TypedDict):
    """``GET /_emulator/requests``; routes as ``"METHOD /api/v1/..."``, statuses as strings
    (``"dropped"`` and ``"client_disconnected"`` besides the numbers)."""

    total: int
    by_route: dict[str, int]
    by_key: dict[str, int]  # key id ("anonymous", "unknown" for no or an unknown key)
    by_status: dict[str, int]
    by_route_status: dict[str, dict[str, int]]


class RequestLogEntry(TypedDict):
    """One line of ``GET /_emulator/requests/log``."""

    t: float  # Unix time
    method: str
    route: str
    key_id: str
    status: str
    fault_id: int | None


class HealthJson(TypedDict):
    ok: bool
    org_id: str
    workspace_id: str


class AbacSettingsJson(TypedDict):
    """``GET /_emulator/abac`` (and the answer of ``POST``)."""

    enabled: bool  # the org has ABAC (OrganizationConfig.can_use_abac)
    when_disabled: Literal["accept", "refuse"]  # access-policy paths with ABAC off
    project_list: Literal["filter", "forbid"]  # unreadable projects in a list: left out, or 403
    unmatched: Literal["rbac", "deny"]  # an allow policy covers it, none matches: RBAC, or deny
