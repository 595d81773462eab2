"""The admin key's rotation killed at every step boundary, then rerun: it converges, the old
admin key is gone, and the rotation minted exactly one admin key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tenant_keys.admin_rotation import NoAdminLock, rotate_admin
from tenant_keys.layout import CURRENT, PENDING
from tests.core.admin_crash_child import BOUNDARIES
from tests.core.admin_helpers import admin_keys, key_state, new_admin_secret, services_for
from tests.core.crash_child import CRASH_EXIT_CODE

ROTATION = "ra-crash"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crashed_then_rerun(backends: LocalStack) -> dict[str, tuple[str, str]]:
    """Per boundary: (secret, the admin key id before the rotation)."""
    secrets = {boundary: new_admin_secret(backends) for boundary in BOUNDARIES}
    before = {}
    for boundary, secret in secrets.items():
        with services_for(secret) as services:
            assert services.admin_secret is not None
            before[boundary] = services.admin_secret.read_admin().key_id
    children = {
        boundary: subprocess.Popen(
            [sys.executable, "-m", "tests.core.admin_crash_child", secret, ROTATION, boundary],
            cwd=ROOT,
            env=os.environ.copy(),
        )
        for boundary, secret in secrets.items()
    }
    for boundary, child in children.items():
        assert child.wait(timeout=120) == CRASH_EXIT_CODE, (
            f"{boundary}: the crash point was not reached"
        )
    for secret in secrets.values():
        with services_for(secret, admin_grace_seconds=0) as services:
            result = rotate_admin(services, ROTATION, retire_now=True, lock=NoAdminLock())
            assert result.outcome in ("rotated", "already-rotated"), (secret, result.error)
    return {b: (secrets[b], before[b]) for b in BOUNDARIES}


@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_rerun_after_a_crash_converges_with_one_new_admin_key(
    backends: LocalStack, crashed_then_rerun: dict[str, tuple[str, str]], boundary: str
) -> None:
    secret, old_key_id = crashed_then_rerun[boundary]
    with services_for(secret) as services:
        assert services.admin_secret is not None
        record = services.admin_secret.read_admin()
        state = services.admin_secret.describe_admin()
        mine = [k for k in admin_keys(backends, ROTATION) if k["created_by_key_id"] == old_key_id]
        assert record.rotation_id == ROTATION and record.key_id != old_key_id
        assert state.version_with(PENDING) == state.version_with(CURRENT), "finished"
        assert record.previous_key_id == old_key_id
        assert key_state(backends, old_key_id)["deleted"], "the old admin key is deleted"
        minted = [k for k in mine if k["role_in_tool"] == "admin"]
        assert [k["id"] for k in minted] == [record.key_id], "exactly one admin key minted"
        assert all(k["deleted"] for k in mine if k["role_in_tool"] == "probe"), "no probe left"
        assert services.langsmith.list_keys() is not None  # the flows act with the new key
