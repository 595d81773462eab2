"""Rate limits as LangSmith Cloud publishes them (devstack/langsmith_emulator/ratelimits.py):
one class per request, ``count / interval`` per identity, 429 with ``Retry-After``."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from devstack.langsmith_emulator import CLOUD_RATE_LIMITS, EmulatorServer, rate_limit_class

from .conftest import ApiClient, new_key

RUN = "343e7b8f-a5cf-45b6-9ad6-4a3f45c098ea"  # fixed: test ids must be stable across runs

# The page's rows that the emulator models: (class, count, interval s, identity), US figures.
PUBLISHED = [
    ("info", 2000, 10, "ip"),
    ("runs_batch", 2000, 10, "x-api-key"),
    ("runs_multipart", 6000, 10, "x-api-key"),
    ("runs_query", 15, 10, "x-api-key"),
    ("delete_sessions", 10, 60, "x-api-key"),
    ("runs_create", 2000, 10, "x-api-key"),
    ("runs_patch", 2000, 10, "x-api-key"),
    ("get_run", 30, 60, "x-api-key"),
    ("runs_stats", 1, 10, "x-api-key"),
    ("default", 1000, 10, "x-api-key"),
    ("public", 100, 60, "ip"),
]

# A request of each class: (method, path, json body, sends the key).
REQUESTS: dict[str, tuple[str, str, Any, bool]] = {
    "info": ("GET", "/info", None, False),
    "runs_batch": ("POST", "/runs/batch", {"post": []}, True),
    "runs_multipart": ("POST", "/runs/multipart", None, True),
    "runs_query": ("POST", "/api/v2/runs/query", {"project_ids": [RUN]}, True),
    "delete_sessions": ("DELETE", f"/api/v1/sessions/{RUN}", None, True),
    "runs_create": ("POST", "/runs", {"name": "r", "run_type": "chain"}, True),
    "runs_patch": ("PATCH", f"/runs/{RUN}", {"end_time": "2026-01-01T00:00:00Z"}, True),
    "get_run": ("GET", f"/api/v1/runs/{RUN}", None, True),
    "runs_stats": ("POST", "/api/v1/runs/stats", {}, True),
    "default": ("GET", "/api/v1/sessions", None, True),
    "public": ("GET", "/api/v1/sessions", None, False),
}


def _send(api: ApiClient, key: str, cls: str) -> Any:
    method, path, body, with_key = REQUESTS[cls]
    return api.request(method, path, key=key if with_key else None, json=body)


def test_the_table_is_the_published_one() -> None:
    table = [(c.name, c.count, c.interval_seconds, c.identity) for c in CLOUD_RATE_LIMITS]
    assert table == PUBLISHED
    assert {c.name: c.eu_count for c in CLOUD_RATE_LIMITS if c.eu_count} == {"runs_stats": 20}


@pytest.mark.parametrize(
    ("method", "path", "api_key", "expected"),
    [
        ("GET", "/info", False, "info"),
        ("GET", "/api/v1/info", True, "info"),
        ("OPTIONS", "/api/v1/sessions", True, "info"),
        ("GET", "/api/v1/sessions", False, "public"),
        ("POST", "/runs/batch", True, "runs_batch"),
        ("POST", "/runs/multipart", True, "runs_multipart"),
        ("POST", "/runs/query", True, "runs_query"),
        ("POST", "/api/v1/runs/query", True, "runs_query"),
        ("POST", "/api/v2/runs/query", True, "runs_query"),
        ("DELETE", "/sessions", True, "delete_sessions"),
        ("DELETE", f"/api/v1/sessions/{RUN}?x=1", True, "delete_sessions"),
        ("POST", "/runs", True, "runs_create"),
        ("PATCH", f"/runs/{RUN}", True, "runs_patch"),
        ("PATCH", f"/api/v1/runs/{RUN}", True, "runs_patch"),
        ("GET", f"/runs/{RUN}", True, "get_run"),
        ("GET", f"/api/v1/runs/{RUN}", True, "get_run"),
        ("GET", f"/api/v2/runs/{RUN}", True, "default"),
        ("POST", "/api/v1/runs/stats", True, "runs_stats"),
        ("POST", "/api/v1/api-key", True, "default"),
        ("GET", "/api/v1/sessions/", True, "default"),
    ],
)
def test_class_of_a_request(method: str, path: str, api_key: bool, expected: str) -> None:
    assert rate_limit_class(method, path, api_key=api_key).name == expected


@pytest.mark.parametrize("cls", [row[0] for row in PUBLISHED])
def test_each_class_answers_429_with_retry_after(
    emulator: EmulatorServer, api: ApiClient, cls: str
) -> None:
    interval = next(row[2] for row in PUBLISHED if row[0] == cls)
    emulator.control.configure(rate_limits={cls: 2})  # the class's own interval is kept
    key = emulator.admin_key
    assert [_send(api, key, cls).status_code != 429 for _ in range(2)] == [True, True]
    refused = _send(api, key, cls)
    assert refused.status_code == 429
    assert interval - 2 <= int(refused.headers["Retry-After"]) <= math.ceil(interval)
    # another class is not affected
    other = "default" if cls != "default" else "runs_stats"
    assert _send(api, key, other).status_code != 429


def test_published_defaults_on_the_strict_classes(emulator: EmulatorServer, api: ApiClient) -> None:
    emulator.control.configure(rate_limits=True)
    key = emulator.admin_key
    assert [_send(api, key, "runs_query").status_code for _ in range(15)] == [404] * 15
    r = _send(api, key, "runs_query")
    assert r.status_code == 429 and r.json()["status"] == 429  # problem details on /v2
    assert 1 <= int(r.headers["Retry-After"]) <= 10
    assert _send(api, key, "runs_stats").status_code == 200
    assert _send(api, key, "runs_stats").status_code == 429  # 1 per 10 s in the US region
    statuses = [_send(api, key, "delete_sessions").status_code for _ in range(11)]
    assert statuses == [404] * 10 + [429]


def test_identity_is_the_api_key(emulator: EmulatorServer, api: ApiClient) -> None:
    emulator.control.configure(rate_limits={"runs_stats": 1})
    other = new_key(api, emulator.admin_key)["key"]
    assert _send(api, emulator.admin_key, "runs_stats").status_code == 200
    assert _send(api, emulator.admin_key, "runs_stats").status_code == 429
    assert _send(api, other, "runs_stats").status_code == 200


def test_override_forms_and_window(emulator: EmulatorServer, api: ApiClient) -> None:
    ctl = emulator.control
    cfg = ctl.configure(rate_limits={"runs_stats": "1/0.5", "get_run": {"count": 3}})
    assert cfg["rate_limits"]["runs_stats"] == {"count": 1, "interval_seconds": 0.5}
    assert cfg["rate_limits"]["get_run"] == {"count": 3, "interval_seconds": 60}
    assert cfg["rate_limits"]["runs_query"] == {"count": 15, "interval_seconds": 10}
    key = emulator.admin_key
    assert _send(api, key, "runs_stats").status_code == 200
    assert _send(api, key, "runs_stats").status_code == 429
    time.sleep(0.55)
    assert _send(api, key, "runs_stats").status_code == 200


def test_the_older_catch_all_name_keeps_its_minute(emulator: EmulatorServer) -> None:
    cfg = emulator.control.configure(rate_limits={"other": 600})  # benchmarks/rotation.py
    assert cfg["rate_limits"]["default"] == {"count": 600, "interval_seconds": 60}


@pytest.mark.parametrize("bad", [{"runs_stats": "x/y"}, {"runs_stats": -1}, {"nope": 1}])
def test_bad_override_is_422(emulator: EmulatorServer, api: ApiClient, bad: dict[str, Any]) -> None:
    r = api.http.post("/_emulator/config", json={"rate_limits": bad})
    assert r.status_code == 422


def test_reset_keeping_the_config_keeps_the_overrides(emulator: EmulatorServer) -> None:
    emulator.control.configure(rate_limits={"runs_query": "3/30"})
    emulator.control.reset(keep_config=True)
    cfg = emulator.control.config()
    assert cfg["rate_limits_enabled"]
    assert cfg["rate_limits"]["runs_query"] == {"count": 3, "interval_seconds": 30}
