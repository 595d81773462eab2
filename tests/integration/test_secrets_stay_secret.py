"""Invariant 3: no plaintext key anywhere Prefect stores data.

Runs onboarding, a rotation and a failing rotation, waits until the server has
persisted their logs and events, then searches every text column of the Prefect
database, the server log and any result files for every key value moto ever stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from flows.onboarding import onboard_tenants
from flows.rotation import rotate_keys
from tasks.events import flush
from tests.invariants import (
    assert_no_key_fragment_in_prefect,
    assert_no_plaintext_in_prefect,
    prefect_storage_text,
)

ROOT = Path(__file__).resolve().parents[2]


def test_no_plaintext_key_in_anything_prefect_stored(stack: LocalStack, tenant_id: str) -> None:
    onboard_tenants([tenant_id])
    rotate_keys([tenant_id], rotation_id="r-secret")
    # A failing rotation too: exception text and failed states are stored as well.
    stack.langsmith.control.inject_fault(
        method="GET", route="/api/v1/sessions", action="status", status=401, count=5
    )
    assert rotate_keys([tenant_id], rotation_id="r-secret-fail", return_state=True).is_failed()
    stack.langsmith.control.clear_faults()
    flush()

    # The check is only worth something once the server holds this test's logs and events.
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = prefect_storage_text(stack)
        if "tenant-keys.key.rotated" in text and f"tenant={tenant_id} rotation=r-secret" in text:
            break
        time.sleep(1)
    else:
        pytest.fail("the server never persisted this test's events and logs")

    checked = assert_no_plaintext_in_prefect(stack)
    assert checked >= 2


def test_the_scan_finds_a_key_that_did_leak(stack: LocalStack) -> None:
    """The check above can fail: a key that reaches Prefect's storage shows up in the scan.
    Logs are redacted before they leave the process, so the key is planted where no redactor
    looks: a flow parameter (what a careless deployment could be given)."""
    from prefect import flow

    # Not key-shaped, so the strict scan of the test below never meets it.
    planted = "leak-canary-" + os.urandom(16).hex()

    @flow(name="leaky-flow")
    def leaky(value: str) -> None:
        pass

    leaky(planted)
    flush()
    deadline = time.monotonic() + 30
    while planted not in prefect_storage_text(stack):
        if time.monotonic() > deadline:
            pytest.fail("a stored key never reached the scanned storage: the scan would miss leaks")
        time.sleep(1)


def test_no_key_leaks_with_the_most_verbose_logging(stack: LocalStack, tenant_id: str) -> None:
    """Root DEBUG, botocore (which logs request and response bodies, secret values included),
    httpx, httpcore, urllib3 and langsmith as extra loggers, prints logged, and failing flows:
    not a key, nor a 16-character piece of one, reaches Prefect."""
    env = {
        **os.environ,
        "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG",
        "PREFECT_LOGGING_LEVEL": "DEBUG",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "botocore,httpx,httpcore,urllib3,langsmith,httpx2",
        "PREFECT_LOGGING_LOG_PRINTS": "true",
    }
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.verbose_child", tenant_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "DEBUG" in child.stdout + child.stderr, "the child's logging was verbose"

    deadline = time.monotonic() + 30
    while f"revoke of {tenant_id}" not in prefect_storage_text(stack):
        if time.monotonic() > deadline:
            pytest.fail("the server never persisted the child's logs")
        time.sleep(1)
    assert assert_no_key_fragment_in_prefect(stack) >= 3
