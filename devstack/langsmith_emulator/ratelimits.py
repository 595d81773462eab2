"""LangSmith Cloud's API rate limits, as published on the page below, as data a client can mirror.

Source: https://docs.langchain.com/langsmith/cloud-rate-limits ("API rate limits"), read on
2026-12-02. The page gives, per endpoint class, ``count / interval`` (requests per that many
seconds) per identity (the ``x-api-key`` value, or the client IP) for GCP US and GCP EU. This
module keeps the rows that match a path the emulator serves, with the US figures (and the EU
one where it differs), plus the two catch-alls. docs/langsmith-emulator.md has the whole table.

How a request finds its class is a reading of the page's "Match / Endpoint" column (one class
per request, the specific rows before the catch-alls); where the page is ambiguous the choice
is the stricter one and is marked below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SOURCE_URL = "https://docs.langchain.com/langsmith/cloud-rate-limits"
READ_ON = "2026-12-02"

Identity = Literal["x-api-key", "ip"]


@dataclass(frozen=True)
class RateLimitClass:
    """One row of the page: at most ``count`` requests per ``interval_seconds`` per identity."""

    name: str
    category: str  # the page's category
    match: str  # the page's "Match / Endpoint (method)" cell
    count: int
    interval_seconds: float
    identity: Identity = "x-api-key"
    eu_count: int | None = None  # the EU limit, where it differs from the US one

    def __str__(self) -> str:
        return f"{self.name}: {self.count} / {self.interval_seconds:g} per {self.identity}"


CLOUD_RATE_LIMITS: tuple[RateLimitClass, ...] = (
    RateLimitClass(
        "info", "High throughput", "OPTIONS, /info, */v1/metadata/submit", 2000, 10, "ip"
    ),
    RateLimitClass("runs_batch", "High throughput", "POST /runs/batch", 2000, 10),
    RateLimitClass("runs_multipart", "Multipart ingest", "POST /runs/multipart", 6000, 10),
    RateLimitClass("runs_query", "Run query (API)", "POST /runs/query", 15, 10),
    RateLimitClass("delete_sessions", "Deletion", "DELETE /sessions or */trigger", 10, 60),
    RateLimitClass("runs_create", "Run ingest", "POST /runs (single run ingest)", 2000, 10),
    RateLimitClass("runs_patch", "Run ingest", "PATCH containing /runs", 2000, 10),
    RateLimitClass("get_run", "Run lookup", "GET /runs/{uuid} or /api/v1/runs/{uuid}", 30, 60),
    RateLimitClass("runs_stats", "Stats", "/runs/stats", 1, 10, eu_count=20),
    RateLimitClass("default", "Default (API key)", "Any request with x-api-key", 1000, 10),
    RateLimitClass("public", "Public (catch-all)", "All other IPs (catch-all)", 100, 60, "ip"),
)
BY_NAME: dict[str, RateLimitClass] = {c.name: c for c in CLOUD_RATE_LIMITS}
# The emulator's older table named its catch-all "other" and counted per minute; that name
# still works, as the "default" class with that older 60 s interval (unless one is given).
LEGACY_NAMES: dict[str, tuple[str, float]] = {"other": ("default", 60.0)}

_RUN_ID = re.compile(r"/runs/[0-9a-fA-F-]{36}")


def rate_limit_class(method: str, path: str, *, api_key: bool = True) -> RateLimitClass:
    """The class (and so the limit) of a request: ``method`` and URL ``path`` as sent, in any of
    the forms clients use (``/sessions``, ``/api/v1/sessions``, ``/api/v2/runs/query``).
    ``api_key``: whether the request carries ``x-api-key``; without one only the IP rows apply.
    """
    method = method.upper()
    path = path.split("?", 1)[0].rstrip("/") or "/"
    bare = path.removeprefix("/api/v1")
    if method == "OPTIONS" or bare == "/info" or path.endswith("/v1/metadata/submit"):
        return BY_NAME["info"]
    if not api_key:
        return BY_NAME["public"]
    if method == "POST" and bare == "/runs/batch":
        return BY_NAME["runs_batch"]
    if method == "POST" and bare == "/runs/multipart":
        return BY_NAME["runs_multipart"]
    # Reading: the row also covers the v2 query (/api/v2/runs/query), the stricter choice.
    if method == "POST" and path.endswith("/runs/query"):
        return BY_NAME["runs_query"]
    # Reading: "DELETE /sessions" also covers DELETE /sessions/{id}, as the older /sessions* did.
    if method == "DELETE" and (bare == "/sessions" or bare.startswith("/sessions/")):
        return BY_NAME["delete_sessions"]
    if path.endswith("/trigger"):
        return BY_NAME["delete_sessions"]
    if method == "POST" and bare == "/runs":
        return BY_NAME["runs_create"]
    if method == "PATCH" and "/runs" in path:
        return BY_NAME["runs_patch"]
    if method == "GET" and _RUN_ID.fullmatch(bare):
        return BY_NAME["get_run"]
    if "/runs/stats" in path:
        return BY_NAME["runs_stats"]
    return BY_NAME["default"]
