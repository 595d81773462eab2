"""The /_emulator control API: faults, rate limits, latency, counts, reset, process mode."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack.langsmith_emulator import EmulatorControl, EmulatorServer

from .conftest import ApiClient, key_records, new_key

KEYS = "/api/v1/api-key"


def test_status_fault_fires_count_times_then_clears(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    ctl = emulator.control
    fault = ctl.inject_fault(method="POST", route=KEYS, status=503, count=2, retry_after=3)
    assert fault["remaining"] == 2
    for _ in range(2):
        r = api.post(KEYS, key=emulator.admin_key, json={})
        assert r.status_code == 503 and r.headers["Retry-After"] == "3"
    assert api.post(KEYS, key=emulator.admin_key, json={}).status_code == 200
    assert ctl.faults()[0]["fired"] == 2 and not ctl.faults()[0]["active"]
    # nothing was created by the failed calls
    assert len([k for k in key_records(emulator) if k["kind"] == "workspace"]) == 2


def test_fault_route_in_either_prefix_form_and_skip(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    emulator.control.inject_fault(method="GET", route="/sessions", status=502, skip=1)
    assert api.get("/api/v1/sessions", key=emulator.admin_key).status_code == 200  # skipped
    assert api.get("/sessions", key=emulator.admin_key).status_code == 502
    assert api.get("/sessions", key=emulator.admin_key).status_code == 200


def test_fault_matches_a_key_id(emulator: EmulatorServer, api: ApiClient) -> None:
    other = new_key(api, emulator.admin_key)
    emulator.control.inject_fault(
        method="GET", route="/api/v1/sessions", status=500, key_id=other["id"]
    )
    assert (
        api.http.get("/api/v1/sessions", headers={"x-api-key": emulator.admin_key}).status_code
        == 200
    )
    assert api.http.get("/api/v1/sessions", headers={"x-api-key": other["key"]}).status_code == 500


def test_injected_status_on_path_template(emulator: EmulatorServer, api: ApiClient) -> None:
    created = new_key(api, emulator.admin_key)
    emulator.control.inject_fault(method="DELETE", route="/api/v1/api-key/{api_key_id}", status=504)
    r = api.delete(f"{KEYS}/{created['id']}", key=emulator.admin_key)
    assert r.status_code == 504
    assert api.delete(f"{KEYS}/{created['id']}", key=emulator.admin_key).status_code == 200


def test_hang_before_makes_the_client_time_out_and_skips_the_operation(
    emulator: EmulatorServer,
) -> None:
    emulator.control.inject_fault(method="POST", route=KEYS, action="hang", hang_seconds=1.0)
    with (
        httpx.Client(base_url=emulator.url, timeout=0.3) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post(KEYS, headers={"x-api-key": emulator.admin_key}, json={})
    time.sleep(1.2)
    assert len([k for k in key_records(emulator) if k["kind"] == "workspace"]) == 1
    by_status = emulator.control.request_counts()["by_status"]
    assert by_status.get("client_disconnected") == 1


def test_hang_before_then_answers_if_the_client_waits(emulator: EmulatorServer) -> None:
    emulator.control.inject_fault(
        method="GET", route="/api/v1/sessions", action="hang", hang_seconds=0.3
    )
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        started = time.perf_counter()
        r = http.get("/api/v1/sessions", headers={"x-api-key": emulator.admin_key})
        assert r.status_code == 200 and time.perf_counter() - started >= 0.3


def test_drop_closes_the_connection_without_a_response(emulator: EmulatorServer) -> None:
    emulator.control.inject_fault(method="GET", route="/api/v1/sessions", action="drop")
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("/api/v1/sessions", headers={"x-api-key": emulator.admin_key})
        assert (
            http.get("/api/v1/sessions", headers={"x-api-key": emulator.admin_key}).status_code
            == 200
        )
    counts = emulator.control.request_counts()
    assert counts["by_route_status"]["GET /api/v1/sessions"] == {"dropped": 1, "200": 1}


def test_after_status_performs_the_operation_then_fails(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    emulator.control.inject_fault(method="POST", route=KEYS, status=500, when="after")
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        r = http.post(KEYS, headers={"x-api-key": emulator.admin_key}, json={"description": "lost"})
    assert r.status_code == 500 and "lsv2_sk_" not in r.text
    orphan = [k for k in key_records(emulator) if k["description"] == "lost"]
    assert len(orphan) == 1 and orphan[0]["active"]


def test_after_drop_is_a_lost_response(emulator: EmulatorServer) -> None:
    emulator.control.inject_fault(
        method="POST", route="/api/v1/sessions", action="drop", when="after"
    )
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(
                "/api/v1/sessions",
                headers={"x-api-key": emulator.admin_key},
                json={"name": "created-anyway"},
            )
        r = http.get(
            "/api/v1/sessions",
            headers={"x-api-key": emulator.admin_key},
            params={"name": "created-anyway"},
        )
    assert len(r.json()) == 1


def test_after_hang_delays_a_performed_operation(emulator: EmulatorServer) -> None:
    emulator.control.inject_fault(
        method="POST", route=KEYS, action="hang", hang_seconds=0.8, when="after"
    )
    with (
        httpx.Client(base_url=emulator.url, timeout=0.2) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post(KEYS, headers={"x-api-key": emulator.admin_key}, json={"description": "late"})
    assert [k["description"] for k in key_records(emulator)].count("late") == 1


def test_after_mangle_sends_the_real_reply_without_the_removed_fields(
    emulator: EmulatorServer,
) -> None:
    """A key create whose reply lost its "id" still carries the real, working key."""
    ctl = emulator.control
    fault = ctl.inject_fault(
        method="POST", route=KEYS, action="mangle", when="after", remove=["id"]
    )
    assert fault["action"] == "mangle" and fault["remove"] == ["id"]
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        r = http.post(
            KEYS, headers={"x-api-key": emulator.admin_key}, json={"description": "mangled"}
        )
        assert r.status_code == 200  # the status the operation had
        reply = r.json()
        assert "id" not in reply
        assert reply["key"].startswith("lsv2_sk_") and reply["description"] == "mangled"
        assert int(r.headers["content-length"]) == len(r.content)
        # the key exists in the emulator's state and works
        minted = [k for k in key_records(emulator) if k["description"] == "mangled"]
        assert len(minted) == 1 and minted[0]["active"]
        assert minted[0]["short_key"] == reply["short_key"]
        assert http.get("/api/v1/sessions", headers={"x-api-key": reply["key"]}).status_code == 200
        # count=1: the next create is answered in full
        r = http.post(KEYS, headers={"x-api-key": emulator.admin_key}, json={"description": "ok"})
        assert "id" in r.json()
    assert ctl.faults()[0]["fired"] == 1
    assert ctl.request_counts()["by_route_status"]["POST /api/v1/api-key"] == {"200": 2}


def test_after_mangle_merges_body_and_keeps_an_error_status(emulator: EmulatorServer) -> None:
    missing = "/api/v1/sessions/6f1c8a52-0d4e-4b8e-9a57-3c2f0e7d1b90"
    emulator.control.inject_fault(
        method="GET",
        route="/api/v1/sessions/{session_id}",
        action="mangle",
        when="after",
        remove=["detail"],
        body={"error": "mangled", "extra": [1, 2]},
    )
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        r = http.get(missing, headers={"x-api-key": emulator.admin_key})
    assert r.status_code == 404
    assert r.json() == {"error": "mangled", "extra": [1, 2]}


def test_after_mangle_passes_a_reply_that_is_not_an_object_unchanged(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    new_key(api, emulator.admin_key)
    expected = [k["id"] for k in api.get(KEYS, key=emulator.admin_key).json()]
    emulator.control.inject_fault(
        method="GET", route=KEYS, action="mangle", when="after", remove=["id"], body={"x": 1}
    )
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        r = http.get(KEYS, headers={"x-api-key": emulator.admin_key})
    assert r.status_code == 200  # a list: nothing to mangle
    assert [k["id"] for k in r.json()] == expected and not any("x" in k for k in r.json())
    assert emulator.control.faults()[0]["fired"] == 1


def test_mangle_before_the_operation_is_refused(emulator: EmulatorServer) -> None:
    """There is no reply to mangle before the operation: the control API answers 422."""
    ctl = emulator.control
    with pytest.raises(httpx.HTTPStatusError) as refused:
        ctl.inject_fault(method="POST", route=KEYS, action="mangle", remove=["id"])
    assert refused.value.response.status_code == 422
    assert "when" in refused.value.response.text
    with httpx.Client(base_url=emulator.url) as http:
        r = http.post("/_emulator/faults", json={"action": "mangle", "when": "before"})
        assert r.status_code == 422
        r = http.post("/_emulator/faults", json={"action": "status", "remove": ["id"]})
        assert r.status_code == 422  # remove belongs to mangle
    assert ctl.faults() == []


def test_rate_limit_429_with_retry_after_per_key(emulator: EmulatorServer, api: ApiClient) -> None:
    ctl = emulator.control
    cfg = ctl.configure(rate_limits={"delete_sessions": 2})
    assert cfg["rate_limits_enabled"]
    assert cfg["rate_limits"]["delete_sessions"] == {"count": 2, "interval_seconds": 60}
    other = new_key(api, emulator.admin_key)["key"]
    missing = "/api/v1/sessions/6f1c8a52-0d4e-4b8e-9a57-3c2f0e7d1b90"
    assert api.delete(missing, key=emulator.admin_key).status_code == 404
    assert api.delete(missing, key=emulator.admin_key).status_code == 404
    limited = api.delete(missing, key=emulator.admin_key)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert api.delete(missing, key=other).status_code == 404  # buckets are per key
    assert api.get("/api/v1/sessions", key=emulator.admin_key).status_code == 200  # other class
    ctl.configure(rate_limits=False)
    assert api.delete(missing, key=emulator.admin_key).status_code == 404


def test_rate_limit_window_slides(emulator: EmulatorServer, api: ApiClient) -> None:
    # "other" (the older table's catch-all) is the Cloud table's "default"
    emulator.control.configure(rate_limits={"other": 1}, rate_window_seconds=0.5)
    assert api.get("/api/v1/sessions", key=emulator.admin_key).status_code == 200
    assert api.get("/api/v1/sessions", key=emulator.admin_key).status_code == 429
    time.sleep(0.55)
    assert api.get("/api/v1/sessions", key=emulator.admin_key).status_code == 200


def test_latency_is_added_without_serialising_requests(emulator: EmulatorServer) -> None:
    emulator.control.configure(latency_ms=200)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as http:
            calls = [http.get("/api/v1/info") for _ in range(40)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    started = time.perf_counter()
    statuses = asyncio.run(burst())
    elapsed = time.perf_counter() - started
    assert statuses == [200] * 40
    assert 0.2 <= elapsed < 1.5, elapsed


def test_request_counts_by_route_key_status_and_reset(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    ctl = emulator.control
    ctl.reset_request_counts()
    created = new_key(api, emulator.admin_key)
    api.get("/sessions", key=created["key"])
    api.get("/api/v1/sessions", key="lsv2_sk_nope")
    api.get("/api/v1/sessions")
    counts = ctl.request_counts()
    assert counts["total"] == 4
    assert counts["by_route"] == {"POST /api/v1/api-key": 1, "GET /api/v1/sessions": 3}
    assert counts["by_key"] == {
        emulator.admin_key_id: 1,
        created["id"]: 1,
        "unknown": 1,
        "anonymous": 1,
    }
    assert counts["by_status"] == {"200": 2, "401": 2}
    assert len(ctl.request_log()) == 4
    ctl.reset_request_counts()
    assert ctl.request_counts()["total"] == 0


def test_reset_restores_bootstrap(emulator: EmulatorServer, api: ApiClient) -> None:
    created = new_key(api, emulator.admin_key)
    api.post("/api/v1/sessions", key=emulator.admin_key, json={"name": "gone-after-reset"})
    emulator.control.configure(latency_ms=5)
    emulator.control.reset()
    assert api.get("/api/v1/sessions", key=created["key"]).status_code == 401
    assert api.get("/api/v1/sessions", key=emulator.admin_key).json() == []
    assert {k["id"] for k in key_records(emulator)} == {
        emulator.admin_key_id,
        emulator.org_admin_key_id,
    }
    assert emulator.control.config()["latency_ms"] == 0


def test_control_api_validation(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url) as http:
        r = http.post("/_emulator/faults", json={"action": "explode"})
        assert r.status_code == 422
        r = http.post("/_emulator/faults", json={"action": "hang"})
        assert r.status_code == 422
        r = http.post("/_emulator/config", json={"rate_limits": {"bogus": 1}})
        assert r.status_code == 422


def test_control_api_is_loopback_only(emulator: EmulatorServer) -> None:
    transport = httpx.ASGITransport(app=emulator.app, client=("10.1.2.3", 5555))

    async def call() -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as http:
            return (await http.get("/_emulator/state")).status_code

    assert asyncio.run(call()) == 403


def test_never_a_500_on_garbage(emulator: EmulatorServer, api: ApiClient) -> None:
    key = emulator.admin_key
    for method, path, content in [
        ("POST", "/runs/multipart", b"garbage"),
        ("POST", "/runs/batch", b'{"post": "nope"}'),
        ("POST", "/runs/batch", b'{"post": [{"id": "x"}]}'),
        ("PATCH", "/runs/6f1c8a52-0d4e-4b8e-9a57-3c2f0e7d1b90", b"[]"),
        ("POST", "/api/v1/runs/query", b'{"limit": 1000}'),
        ("POST", "/api/v1/runs/query", b'{"cursor": "%%%"}'),
        ("POST", "/api/v1/runs/stats", b'{"session": ["x"]}'),
        ("PUT", "/api/v1/usage-limits", b'{"limit_type": "monthly_traces"}'),
        ("POST", "/api/v1/orgs/current/service-keys", b'{"workspaces": "x"}'),
    ]:
        r = api.request(
            method, path, key=key, content=content, headers={"Content-Type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (method, path, r.status_code)


def test_multipart_endpoint_directly(emulator: EmulatorServer, api: ApiClient) -> None:
    import uuid

    run_id = str(uuid.uuid4())
    files = {
        f"post.{run_id}": (
            None,
            json.dumps(
                {
                    "id": run_id,
                    "name": "mp",
                    "run_type": "chain",
                    "session_name": "mp-proj",
                    "start_time": "2026-01-01T00:00:00Z",
                }
            ),
            "application/json",
        ),
        f"post.{run_id}.inputs": (None, json.dumps({"q": "hi"}), "application/json"),
        f"patch.{run_id}": (
            None,
            json.dumps({"id": run_id, "end_time": "2026-01-01T00:00:02Z"}),
            "application/json",
        ),
        f"patch.{run_id}.outputs": (None, json.dumps({"a": "yo"}), "application/json"),
        f"attachment.{run_id}.file": (None, b"\x00\x01", "application/octet-stream"),
    }
    r = api.post("/runs/multipart", key=emulator.admin_key, files=files)
    assert r.status_code == 202, r.text
    run = api.get(f"/api/v1/runs/{run_id}", key=emulator.admin_key).json()
    assert run["inputs"] == {"q": "hi"} and run["outputs"] == {"a": "yo"}
    assert run["status"] == "success"


def test_standalone_process(tmp_path: Path) -> None:
    info_file = tmp_path / "emu.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.langsmith_emulator",
            "--port",
            "0",
            "--admin-key",
            "lsv2_sk_" + "a" * 32 + "_" + "b" * 10,
            "--info-file",
            str(info_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None  # both piped
    try:
        line = proc.stdout.readline()
        shown = json.loads(line)
        assert "lsv2_sk_aaaa" not in line  # no plaintext on stdout
        info = json.loads(info_file.read_text())
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(
                    shown["url"] + "/api/v1/sessions", headers={"x-api-key": info["admin_key"]}
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200
        with EmulatorControl(shown["url"]) as ctl:
            assert ctl.health()["workspace_id"] == shown["workspace_id"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "lsv2_sk_aaaa" not in proc.stderr.read()
