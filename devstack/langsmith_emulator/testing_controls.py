"""Test controls applied to every API request: latency, rate limits, fault injection and
request counting. ``ControlMiddleware`` is a pure ASGI wrapper around the FastAPI app, so it can
delay without blocking the loop, replace a response after the operation ran, or drop the
connection without any response.

Order per request: resolve route and key id -> latency -> rate limit (429) -> fault -> app.
Every request (except ``/_emulator/*``) is counted with its final status (``dropped`` for a
dropped connection, ``client_disconnected`` when the client gave up during a "before" hang).

Fault semantics: ``when="before"`` acts before the handler runs (status/drop: the operation is
not performed; hang: the request is held, then performed only if the client is still there).
``when="after"`` runs the handler first, then replaces (status), drops (drop) or delays (hang)
its response: a lost or late success; or rewrites it (mangle: the real reply, some fields
removed and others merged over it; after only, the control API refuses it before).
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import itertools
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .control_schema import (
    ControlConfigJson,
    FaultAction,
    FaultJson,
    FaultWhen,
    RateLimitJson,
    RequestCounts,
    RequestLogEntry,
)
from .errors import PLATFORM_SERVICE, ErrorStyle, error_body, error_style
from .models import FaultSpec
from .ratelimits import CLOUD_RATE_LIMITS, LEGACY_NAMES, SOURCE_URL, rate_limit_class
from .responses import _dumps
from .state import Store, hash_secret

# A class's limit: (count, interval in seconds).
Limit = tuple[int, float]
# A class's limit as the control API takes it; RateLimitJson is how GET /config shows one.
RateOverride = int | str | dict[str, float] | RateLimitJson
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost", "testclient"}
UNMATCHED = "(unmatched)"


def normalize_route(route: str) -> str:
    """``/sessions/{id}`` and ``/api/v1/sessions/{id}`` -> ``/api/v1/sessions/{id}``;
    ``/v2/runs/query`` and ``/api/v2/runs/query`` -> ``/api/v2/runs/query``; the platform
    service's ``/v1/platform/...`` paths stay as the spec writes them."""
    route = route.strip()
    if route in ("*", "") or route.startswith(("/api/", PLATFORM_SERVICE)) or route == UNMATCHED:
        return route or "*"
    if not route.startswith("/"):
        route = "/" + route
    return ("/api" if route.startswith("/v2/") else "/api/v1") + route


def cloud_limits() -> dict[str, Limit]:
    return {c.name: (c.count, c.interval_seconds) for c in CLOUD_RATE_LIMITS}


def parse_override(name: str, value: RateOverride, base: Limit) -> Limit:
    """``5`` (count, the class's interval kept), ``"5/60"`` (count / seconds, the page's
    notation) or ``{"count": 5, "interval_seconds": 60}``."""
    count, interval = base
    if isinstance(value, bool):
        raise ValueError(f"rate limit of {name}: a count, 'count/seconds' or an object")
    if isinstance(value, int):
        count = value
    elif isinstance(value, str):
        head, _, tail = value.partition("/")
        try:
            count, interval = int(head), float(tail) if tail else interval
        except ValueError:
            raise ValueError(f"rate limit of {name}: {value!r} is not 'count/seconds'") from None
    else:
        count = int(value.get("count", count))
        interval = float(value.get("interval_seconds", interval))
    if count < 0 or interval <= 0:
        raise ValueError(f"rate limit of {name}: count >= 0 and interval > 0")
    return count, interval


@dataclass
class Fault:
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
    remove: list[str] = field(default_factory=list)
    seen: int = 0
    fired: int = 0

    @property
    def active(self) -> bool:
        return self.count is None or self.fired < self.count

    def matches(self, method: str, route: str, key_id: str | None) -> bool:
        if not fnmatch.fnmatchcase(method, self.method.upper()):
            return False
        if self.route != "*" and not fnmatch.fnmatchcase(route, self.route):
            return False
        return self.key_id is None or self.key_id == key_id

    def to_json(self) -> FaultJson:
        return {
            "id": self.id,
            "method": self.method,
            "route": self.route,
            "action": self.action,
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "hang_seconds": self.hang_seconds,
            "when": self.when,
            "skip": self.skip,
            "key_id": self.key_id,
            "body": copy.deepcopy(self.body),
            "remove": list(self.remove),
            "seen": self.seen,
            "fired": self.fired,
            "remaining": None if self.count is None else max(0, self.count - self.fired),
            "active": self.active,
        }


@dataclass
class ControlConfig:
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    route_latency_ms: dict[str, float] = field(default_factory=dict)
    rate_limits_enabled: bool = False
    rate_limits: dict[str, Limit] = field(default_factory=cloud_limits)
    # Older control: one interval for every class, in place of each class's own (None: theirs).
    rate_window_seconds: float | None = None

    def to_json(self) -> ControlConfigJson:
        return {
            "latency_ms": self.latency_ms,
            "latency_jitter_ms": self.latency_jitter_ms,
            "route_latency_ms": dict(self.route_latency_ms),
            "rate_limits_enabled": self.rate_limits_enabled,
            "rate_limits": {
                name: {"count": count, "interval_seconds": interval}
                for name, (count, interval) in self.rate_limits.items()
            },
            "rate_limits_source": SOURCE_URL,
            "rate_window_seconds": self.rate_window_seconds,
            "rate_limit_algorithm": "sliding-window-log",
        }


class SlidingWindowLimiter:
    """Exact sliding-window log per (identity, class): at most N requests in any window."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], deque[float]] = {}

    def hit(self, key: tuple[str, str], limit: int, window: float, now: float) -> float | None:
        """Record a request; return None if allowed, else seconds until a slot frees."""
        dq = self._events.setdefault(key, deque())
        while dq and dq[0] <= now - window:
            dq.popleft()
        if limit <= 0:
            return window
        if len(dq) >= limit:
            return max(0.0, dq[0] + window - now)
        dq.append(now)
        return None

    def clear(self) -> None:
        self._events.clear()


class TestingControls:
    """Mutable test configuration, shared by the middleware and the control API."""

    __test__ = False  # not a pytest class

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self.lock = threading.Lock()
        self._initial_latency = latency_ms
        self.config = ControlConfig(latency_ms=latency_ms)
        self.limiter = SlidingWindowLimiter()
        self.faults: list[Fault] = []
        self._ids = itertools.count(1)
        self.reset_counts()

    # -------------------------------------------------------------- config
    def reset(self) -> None:
        with self.lock:
            self.config = ControlConfig(latency_ms=self._initial_latency)
            self.limiter.clear()
            self.faults.clear()
        self.reset_counts()

    def configure(
        self,
        *,
        latency_ms: float | None = None,
        latency_jitter_ms: float | None = None,
        route_latency_ms: dict[str, float] | None = None,
        rate_limits: bool | Mapping[str, RateOverride] | None = None,
        rate_window_seconds: float | None = None,
    ) -> ControlConfigJson:
        with self.lock:
            c = self.config
            if latency_ms is not None:
                c.latency_ms = float(latency_ms)
            if latency_jitter_ms is not None:
                c.latency_jitter_ms = float(latency_jitter_ms)
            if route_latency_ms is not None:
                c.route_latency_ms = {
                    self._route_key(k): float(v) for k, v in route_latency_ms.items()
                }
            if rate_window_seconds is not None:
                c.rate_window_seconds = float(rate_window_seconds)
            if isinstance(rate_limits, bool):
                c.rate_limits_enabled = rate_limits
                if rate_limits:
                    c.rate_limits = cloud_limits()
                self.limiter.clear()
            elif rate_limits is not None:
                limits = cloud_limits()
                unknown = set(rate_limits) - set(limits) - set(LEGACY_NAMES)
                if unknown:
                    raise ValueError(f"unknown rate-limit classes: {sorted(unknown)}")
                for name, value in rate_limits.items():
                    if name in LEGACY_NAMES:
                        cls, interval = LEGACY_NAMES[name]
                        limits[cls] = parse_override(name, value, (limits[cls][0], interval))
                    else:
                        limits[name] = parse_override(name, value, limits[name])
                c.rate_limits = limits
                c.rate_limits_enabled = True
                self.limiter.clear()
            return c.to_json()

    @staticmethod
    def _route_key(key: str) -> str:
        method, _, route = key.strip().partition(" ")
        return f"{method.upper()} {normalize_route(route)}"

    def delay_seconds(self, method: str, route: str) -> float:
        c = self.config
        ms = c.route_latency_ms.get(f"{method} {route}", c.latency_ms)
        if c.latency_jitter_ms:
            ms += random.uniform(0, c.latency_jitter_ms)
        return ms / 1000.0

    def rate_limit(self, method: str, path: str, key_id: str, client_ip: str) -> float | None:
        """None if allowed, else the seconds until the request's class has room again."""
        c = self.config
        if not c.rate_limits_enabled:
            return None
        cls = rate_limit_class(method, path, api_key=key_id != "anonymous")
        count, interval = c.rate_limits[cls.name]
        identity = key_id if cls.identity == "x-api-key" else f"ip:{client_ip}"
        window = c.rate_window_seconds or interval
        with self.lock:
            return self.limiter.hit((identity, cls.name), count, window, time.monotonic())

    # -------------------------------------------------------------- faults
    def add_fault(self, spec: FaultSpec) -> FaultJson:
        with self.lock:
            fault = Fault(
                id=next(self._ids),
                method=(spec.method or "*").upper(),
                route=normalize_route(spec.route or "*"),
                action=spec.action,
                status=spec.status,
                count=spec.count,
                retry_after=spec.retry_after,
                hang_seconds=spec.hang_seconds,
                when=spec.when,
                skip=spec.skip,
                key_id=spec.key_id,
                body=spec.body,
                remove=list(spec.remove),
            )
            self.faults.append(fault)
            return fault.to_json()

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def list_faults(self) -> list[FaultJson]:
        with self.lock:
            return [f.to_json() for f in self.faults]

    def match_fault(self, method: str, route: str, key_id: str | None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if not fault.active or not fault.matches(method, route, key_id):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.fired += 1
                return fault
        return None

    # -------------------------------------------------------------- counts
    def reset_counts(self) -> None:
        with self.lock:
            self.total = 0
            self.by_route: Counter[str] = Counter()
            self.by_key: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.by_route_status: dict[str, Counter[str]] = {}
            self.log: deque[RequestLogEntry] = deque(maxlen=10_000)

    def record(
        self, method: str, route: str, key_id: str, status: int | str, fault: int | None
    ) -> None:
        name = f"{method} {route}"
        st = str(status)
        with self.lock:
            self.total += 1
            self.by_route[name] += 1
            self.by_key[key_id] += 1
            self.by_status[st] += 1
            self.by_route_status.setdefault(name, Counter())[st] += 1
            self.log.append(
                {
                    "t": time.time(),
                    "method": method,
                    "route": route,
                    "key_id": key_id,
                    "status": st,
                    "fault_id": fault,
                }
            )

    def counts(self) -> RequestCounts:
        with self.lock:
            return {
                "total": self.total,
                "by_route": dict(self.by_route),
                "by_key": dict(self.by_key),
                "by_status": dict(self.by_status),
                "by_route_status": {k: dict(v) for k, v in self.by_route_status.items()},
            }

    def request_log(self, limit: int | None = None) -> list[RequestLogEntry]:
        with self.lock:
            entries = list(self.log)
        return entries[-limit:] if limit else entries


# ------------------------------------------------------------------------------ middleware


def make_route_resolver(routes: list[tuple[str, set[str]]]) -> Callable[[Scope], str]:
    """Normalised route template of a request (``/api/v1/...`` or ``/api/v2/...``).

    ``routes`` are the (template, methods) pairs the API serves, in every prefix form.
    """
    table = []
    for template, methods in routes:
        regex, _, _ = compile_path(template)
        table.append((regex, {m.upper() for m in methods}, normalize_route(template)))

    def resolve(scope: Scope) -> str:
        path, method = scope["path"], scope["method"]
        partial = None
        for regex, methods, name in table:
            if regex.match(path):
                if method in methods or (method == "HEAD" and "GET" in methods):
                    return name
                if partial is None:
                    partial = name
        return partial or UNMATCHED

    return resolve


async def _send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    payload = _dumps(body)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def _retry_after(seconds: float) -> str:
    return str(max(1, int(seconds + 0.999)))


class ControlMiddleware:
    # The FastAPI app inside, when app.create_app built this middleware.
    api: FastAPI | None = None

    def __init__(
        self,
        app: ASGIApp,
        store: Store,
        controls: TestingControls,
        resolver: Callable[[Scope], str],
    ) -> None:
        self.app = app
        self.store = store
        self.controls = controls
        self.resolver = resolver

    def _key_id(self, scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == b"x-api-key":
                secret = value.decode("latin-1").strip()
                if not secret:
                    return "anonymous"
                key_id = self.store.key_index.get(hash_secret(secret))
                return key_id or "unknown"
        return "anonymous"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/_emulator"):
            client = scope.get("client")
            if client and client[0] not in LOOPBACK_HOSTS:
                await _send_json(send, 403, {"detail": "control API is loopback-only"})
                return
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        route = self.resolver(scope)
        key_id = self._key_id(scope)
        scope.setdefault("state", {})
        scope["state"]["emu_route"] = f"{method} {route}"
        scope["state"]["emu_key_id"] = key_id
        ctl = self.controls
        style = error_style(method, route, path)

        delay = ctl.delay_seconds(method, route)
        if delay > 0:
            await asyncio.sleep(delay)

        client = scope.get("client") or ("unknown", 0)
        wait = ctl.rate_limit(method, path, key_id, client[0])
        if wait is not None:
            await _send_json(
                send,
                429,
                error_body(style, 429, "Rate limit exceeded", "rate_limit_exceeded", instance=path),
                {"Retry-After": _retry_after(wait)},
            )
            ctl.record(method, route, key_id, 429, None)
            return

        fault = ctl.match_fault(method, route, key_id)
        status: dict[str, int | None] = {"code": None}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        if fault is None:
            try:
                await self.app(scope, receive, tracking_send)
            finally:
                ctl.record(method, route, key_id, status["code"] or 500, None)
                self._audit(scope, f"{method} {route}", status["code"] or 500)
            return

        if fault.when == "before":
            if fault.action == "hang":
                replay = await self._hang_before(receive, fault.hang_seconds or 0.0)
                if replay is None:  # the client gave up: the operation never happens
                    ctl.record(method, route, key_id, "client_disconnected", fault.id)
                    return
                try:
                    await self.app(scope, replay, tracking_send)
                finally:
                    ctl.record(method, route, key_id, status["code"] or 500, fault.id)
                    self._audit(scope, f"{method} {route}", status["code"] or 500)
            elif fault.action == "drop":
                await self._drop(receive, send)
                ctl.record(method, route, key_id, "dropped", fault.id)
            else:
                await self._send_fault(send, fault, style, path)
                ctl.record(method, route, key_id, fault.status, fault.id)
            return

        # when == "after": perform the operation, then replace / drop / delay its response.
        buffered: list[Message] = []

        async def buffering_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            buffered.append(message)

        await self.app(scope, receive, buffering_send)
        self._audit(scope, f"{method} {route}", status["code"] or 500)  # it was performed
        if fault.action == "hang":
            await asyncio.sleep(fault.hang_seconds or 0.0)
            for message in buffered:
                await send(message)
            ctl.record(method, route, key_id, status["code"] or 500, fault.id)
        elif fault.action == "drop":
            await self._drop(receive, send)
            ctl.record(method, route, key_id, "dropped", fault.id)
        elif fault.action == "mangle":
            for message in self._mangled(buffered, fault):
                await send(message)
            ctl.record(method, route, key_id, status["code"] or 500, fault.id)
        else:
            await self._send_fault(send, fault, style, path)
            ctl.record(method, route, key_id, fault.status, fault.id)

    @staticmethod
    def _mangled(messages: list[Message], fault: Fault) -> list[Message]:
        """The buffered response with its JSON object's ``fault.remove`` fields left out and
        ``fault.body`` merged over it; same status and headers (Content-Length recomputed).
        A reply that is not a JSON object (a list, no body) is passed on as it was."""
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        raw = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        try:
            reply = json.loads(raw) if raw else None
        except ValueError:
            reply = None
        if start is None or not isinstance(reply, dict):
            return messages
        for name in fault.remove:
            reply.pop(name, None)
        reply.update(fault.body or {})
        payload = _dumps(reply)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(payload)).encode()))
        return [
            {**start, "headers": headers},
            {"type": "http.response.body", "body": payload},
        ]

    def _audit(self, scope: Scope, route: str, status: int) -> None:
        """The audit record of a request the API answered, if a key authenticated it."""
        state = scope.get("state", {})
        key_id = state.get("emu_auth_key_id")
        if key_id is None:
            return
        path: str = scope["path"]
        self.store.audit.record(
            route,
            time=self.store.clock.now(),
            api_key_id=key_id,
            organization_id=state["emu_org_id"],
            workspace_id=state.get("emu_workspace_id"),
            path=path,
            status=status,
            client=scope.get("client"),
            resource_ids=[*path.split("/"), *state.get("emu_resource_ids", [])],
        )

    @staticmethod
    async def _hang_before(receive: Receive, seconds: float) -> Receive | None:
        """Hold the request ``seconds`` before it reaches the handler.

        Returns a ``receive`` that replays the buffered body, or None when the client
        disconnected meanwhile (then the operation is not performed).
        """
        messages: list[Message] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            messages.append(message)
            if not message.get("more_body"):
                break
        try:
            message = await asyncio.wait_for(receive(), timeout=seconds)
        except TimeoutError:
            pass
        else:
            if message["type"] == "http.disconnect":
                return None

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        return replay

    @staticmethod
    async def _send_fault(send: Send, fault: Fault, style: ErrorStyle, path: str) -> None:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = _retry_after(fault.retry_after)
        message = f"Injected fault (status {fault.status})"
        body = fault.body or error_body(style, fault.status, message, instance=path)
        await _send_json(send, fault.status, body, headers)

    @staticmethod
    async def _drop(receive: Receive, send: Send) -> None:
        """Close the connection without a response (the client sees a disconnect)."""
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is not None:
            transport.close()
            # Let the protocol see connection_lost, so the server doesn't try a 500.
            for _ in range(3):
                await asyncio.sleep(0)
            return
        # Fallback (non-uvicorn servers): start a response and abort mid-body.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1000")],
            }
        )
        raise ConnectionAbortedError("emulator dropped the connection")
