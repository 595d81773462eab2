"""A process killed at every step boundary of a rotation, then a rerun: it converges, and the
rotation minted exactly one key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tenant_keys.onboarding import onboard
from tenant_keys.rotation import rotate
from tenant_keys.services import get_services
from tests.core.crash_child import BOUNDARIES, CRASH_EXIT_CODE
from tests.invariants import assert_finished, current_key_works, live_tool_keys, minted_keys

ROTATION = "r-crash"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crashed_then_rerun(backends: LocalStack) -> dict[str, str]:
    suffix = os.urandom(3).hex()
    tenants = {boundary: f"crash-{boundary}-{suffix}" for boundary in BOUNDARIES}
    services = get_services()
    for tenant in tenants.values():
        onboard(services, tenant)
    children = {
        boundary: subprocess.Popen(
            [sys.executable, "-m", "tests.core.crash_child", tenant, ROTATION, boundary],
            cwd=ROOT,
            env=os.environ.copy(),
        )
        for boundary, tenant in tenants.items()
    }
    for boundary, child in children.items():
        assert child.wait(timeout=120) == CRASH_EXIT_CODE, (
            f"{boundary}: the crash point was not reached"
        )
    for tenant in tenants.values():
        result = rotate(services, tenant, ROTATION, retire_now=True)
        assert result.outcome in ("rotated", "already-rotated"), (tenant, result.error)
    return tenants


@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_rerun_after_a_crash_converges_without_a_second_key(
    backends: LocalStack, crashed_then_rerun: dict[str, str], boundary: str
) -> None:
    tenant_id = crashed_then_rerun[boundary]
    record = get_services().store.read(tenant_id)
    assert record.rotation_id == ROTATION
    assert current_key_works(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert_finished(tenant_id)
    minted = minted_keys(backends, tenant_id, ROTATION)
    assert len(minted) == 1, f"the rotation minted {len(minted)} keys; it must mint exactly one"
