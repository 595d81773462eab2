"""Invariant 3: no plaintext key anywhere Prefect stores data.

Runs onboarding, a rotation and a failing rotation, waits until the server has
persisted their logs and events, then searches every text column of the Prefect
database, the server log and any result files for every key value moto ever stored.
"""

from __future__ import annotations

import os
import time

import pytest

from devstack.stack import LocalStack
from flows.onboarding import onboard_tenants
from flows.rotation import rotate_keys
from tasks.events import flush
from tests.invariants import assert_no_plaintext_in_prefect, prefect_storage_text


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

    planted = "lsv2_sk_" + os.urandom(16).hex() + "_" + os.urandom(5).hex()

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
