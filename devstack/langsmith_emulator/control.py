"""``EmulatorControl``: an httpx client of the ``/_emulator/*`` control API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

from .control_schema import (
    AbacSettingsJson,
    ControlConfigJson,
    FaultAction,
    FaultJson,
    FaultWhen,
    HealthJson,
    RateLimitJson,
    RequestCounts,
    RequestLogEntry,
)

# A rate-limit class's override: a count, "count/seconds", or {"count", "interval_seconds"}.
RateOverride = int | str | Mapping[str, float] | RateLimitJson


class EmulatorControl:
    """Drive a running emulator over HTTP (works for in-process and separate-process servers)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/_emulator", timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The reply's JSON; each caller annotates the shape the control API gives that path."""
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    # -------------------------------------------------------------- faults
    def inject_fault(
        self,
        method: str = "*",
        route: str | None = None,
        action: FaultAction = "status",
        status: int = 503,
        count: int | None = 1,
        retry_after: float | None = None,
        hang_seconds: float | None = None,
        when: FaultWhen = "before",
        skip: int = 0,
        key_id: str | None = None,
        body: dict[str, Any] | None = None,
        remove: list[str] | None = None,
    ) -> FaultJson:
        """Make the next ``count`` matching calls (after ``skip``) fail; returns the fault.

        ``action="mangle"`` (``when="after"`` only): the call is performed and its real JSON
        reply sent with its status, but without the top-level fields named in ``remove`` and
        with ``body`` merged over it."""
        spec = {
            "method": method,
            "route": route,
            "action": action,
            "status": status,
            "count": count,
            "retry_after": retry_after,
            "hang_seconds": hang_seconds,
            "when": when,
            "skip": skip,
            "key_id": key_id,
            "body": body,
            "remove": remove or [],
        }
        fault: FaultJson = self._call("POST", "/faults", json=spec)
        return fault

    def faults(self) -> list[FaultJson]:
        faults: list[FaultJson] = self._call("GET", "/faults")
        return faults

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # -------------------------------------------------------------- config
    def configure(
        self,
        latency_ms: float | None = None,
        rate_limits: bool | Mapping[str, RateOverride] | None = None,
        *,
        latency_jitter_ms: float | None = None,
        route_latency_ms: dict[str, float] | None = None,
        rate_window_seconds: float | None = None,
    ) -> ControlConfigJson:
        """``rate_limits``: True turns on LangSmith Cloud's table (``ratelimits.py``), False off;
        a dict turns it on with some classes overridden: ``{"runs_query": 2}`` (count, the
        class's interval kept), ``{"runs_query": "2/60"}`` or ``{"runs_query": {"count": 2,
        "interval_seconds": 60}}``. ``rate_window_seconds`` sets one interval for every class."""
        body = {
            "latency_ms": latency_ms,
            "rate_limits": rate_limits,
            "latency_jitter_ms": latency_jitter_ms,
            "route_latency_ms": route_latency_ms,
            "rate_window_seconds": rate_window_seconds,
        }
        config: ControlConfigJson = self._call(
            "POST", "/config", json={k: v for k, v in body.items() if v is not None}
        )
        return config

    def config(self) -> ControlConfigJson:
        config: ControlConfigJson = self._call("GET", "/config")
        return config

    # -------------------------------------------------------------- counts
    def request_counts(self) -> RequestCounts:
        """{total, by_route, by_key, by_status, by_route_status}; routes as 'METHOD /api/v1/..'."""
        counts: RequestCounts = self._call("GET", "/requests")
        return counts

    def reset_request_counts(self) -> None:
        self._call("DELETE", "/requests")

    def request_log(self, limit: int | None = None) -> list[RequestLogEntry]:
        log: list[RequestLogEntry] = self._call(
            "GET", "/requests/log", params={"limit": limit} if limit else None
        )
        return log

    # -------------------------------------------------------------- state
    def reset(self, keep_config: bool = False) -> None:
        self._call("POST", "/reset", params={"keep_config": keep_config})

    def keys(self) -> list[dict[str, Any]]:
        """Every key ever minted (no plaintext): id, kind, short_key, workspace, dates, flags."""
        keys: list[dict[str, Any]] = self._call("GET", "/keys")
        return keys

    def state(self) -> dict[str, Any]:
        """A dump of the store: organization, workspaces, keys (no plaintext), projects, counts."""
        state: dict[str, Any] = self._call("GET", "/state")
        return state

    def configure_org(self, **caps: int | None) -> dict[str, Any]:
        """Set the org's key-lifetime caps: ``max_api_key_expiry_days``,
        ``max_service_key_expiry_days``, ``max_pat_expiry_days`` (None clears one). Returns the
        org's ``OrganizationInfo``, as ``GET /api/v1/orgs/current/info`` shows it."""
        info: dict[str, Any] = self._call("POST", "/org", json=caps)
        return info

    def org(self) -> dict[str, Any]:
        """The org's ``OrganizationInfo``."""
        info: dict[str, Any] = self._call("GET", "/org")
        return info

    def configure_abac(
        self,
        *,
        enabled: bool | None = None,
        when_disabled: Literal["accept", "refuse"] | None = None,
        project_list: Literal["filter", "forbid"] | None = None,
        unmatched: Literal["rbac", "deny"] | None = None,
    ) -> AbacSettingsJson:
        """How the org treats access policies (None leaves a setting as it is):

        * ``enabled`` (default True): False makes an org without ABAC: policies are never
          enforced, keys read what their role's permissions allow, and
          ``OrganizationInfo.config.can_use_abac`` is false.
        * ``when_disabled`` (default "accept"): with ABAC off, the access-policy paths still
          store policies ("accept") or answer 403 ``{"error"}`` ("refuse").
        * ``project_list`` (default "filter"): a project list, or a run read naming no project,
          leaves out the projects the key may not read ("filter") or is refused with a 403
          when there is one ("forbid").
        * ``unmatched`` (default "rbac"): when an allow policy of the role covers the
          permission but none matches, the role's permissions decide ("rbac", the docs' table)
          or access is denied ("deny", the policy builder page).
        """
        body = {
            "enabled": enabled,
            "when_disabled": when_disabled,
            "project_list": project_list,
            "unmatched": unmatched,
        }
        settings: AbacSettingsJson = self._call(
            "POST", "/abac", json={k: v for k, v in body.items() if v is not None}
        )
        return settings

    def abac(self) -> AbacSettingsJson:
        settings: AbacSettingsJson = self._call("GET", "/abac")
        return settings

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward; returns its total offset in seconds."""
        offset = self._call("POST", "/clock", json={"advance_seconds": seconds})["offset_seconds"]
        assert isinstance(offset, float)
        return offset

    def health(self) -> HealthJson:
        health: HealthJson = self._call("GET", "/health")
        return health

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
