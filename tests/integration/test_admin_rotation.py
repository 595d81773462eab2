"""`tenant-keys rotate-admin` on the local stack, through Prefect: the admin key rotated, the
flows working across it (a fan-out that spans it included), never beside a batch of one."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.states import State
from typer.testing import CliRunner

from devstack.stack import LocalStack
from flows.rotation import rotate_keys
from tasks.events import flush
from tenant_keys.admin_layout import AdminKeyRecord
from tenant_keys.cli import app
from tenant_keys.events import ADMIN_KEY_RESOURCE_ID
from tenant_keys.services import get_services, reset_services
from tests.core.admin_helpers import key_state, new_admin_secret
from tests.integration.revoke_helpers import wait_for
from tests.integration.tenants import onboard_directly
from tests.invariants import (
    assert_no_plaintext_in_prefect,
    current_key_works,
    prefect_storage_text,
)


@pytest.fixture
def env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings changed for one test, the process's services rebuilt before and after."""
    yield monkeypatch
    monkeypatch.undo()
    reset_services()


def _admin_key_id() -> str:
    secret = get_services().admin_secret
    assert secret is not None
    return secret.read_admin().key_id


def _admin_record(stage: str) -> AdminKeyRecord:
    secret = get_services().admin_secret
    assert secret is not None
    version = secret.describe_admin().version_with(stage)
    assert version is not None
    return secret.read_admin(stage=stage, version_id=version)


def _admin_events(name: str) -> list[dict[str, Any]]:
    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(name=[name]),
                resource=EventResourceFilter(id=[ADMIN_KEY_RESOURCE_ID]),
            ),
            limit=50,
        )
    return [dict(e.payload) for e in page.events]


def test_rotate_admin_end_to_end_and_the_flows_keep_working(
    env: pytest.MonkeyPatch, stack: LocalStack, tenant_id: str
) -> None:
    """The session's own admin key (the local stack's, in `langsmith/admin`), rotated by the
    command; a tenant rotation through Prefect afterwards acts with the new key."""
    env.setenv("TENANT_KEYS_ADMIN_GRACE_SECONDS", "0")
    reset_services()
    onboard_directly([tenant_id])
    old = _admin_key_id()
    rotation = f"ra-cli-{uuid.uuid4().hex[:6]}"

    result = CliRunner().invoke(app, ["rotate-admin", "--rotation-id", rotation])

    assert result.exit_code == 0, result.output
    assert f"admin key rotation {rotation}: rotated" in result.output
    new = _admin_key_id()
    assert new != old and key_state(stack, old)["deleted"]
    state = rotate_keys([tenant_id], rotation_id="r-after-cli", return_state=True)
    assert state.is_completed(), state.message
    assert current_key_works(tenant_id)
    record = get_services().store.read(tenant_id)
    assert key_state(stack, record.key_id)["created_by_key_id"] == new
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["admin-key-rotation"]))
        )
    assert any(rotation in str(a.data) and new in str(a.data) for a in artifacts)
    flush()
    events = wait_for(
        lambda: [
            e
            for e in _admin_events("tenant-keys.admin-key.rotated")
            if e["rotation_id"] == rotation
        ],
        30,
        "the admin-key.rotated event",
        every=0.5,
    )
    assert events[0]["key_id"] == new and events[0]["old_key_id"] == old
    # Neither admin key (both are in the secret's versions) reached anything Prefect stored.
    admin_keys = {
        v.api_key.get_secret_value()
        for v in (_admin_record("AWSCURRENT"), _admin_record("AWSPREVIOUS"))
    }
    assert len(admin_keys) == 2
    assert assert_no_plaintext_in_prefect(stack) >= 2
    text = prefect_storage_text(stack)
    assert not [k[:10] for k in admin_keys if k in text]


def test_rotate_admin_refuses_a_key_from_the_environment_in_one_line(
    env: pytest.MonkeyPatch, stack: LocalStack
) -> None:
    env.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", stack.langsmith.admin_key)
    reset_services()
    with get_client(sync_client=True) as client:
        runs = client.count_flow_runs()

    result = CliRunner().invoke(app, ["rotate-admin"])

    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "rotate-admin cannot store the key it would mint" in lines[0]
    with get_client(sync_client=True) as client:
        assert client.count_flow_runs() == runs, "no flow run started"


def _at(key: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(str(key[field]))


def test_a_fan_out_that_spans_the_admin_rotation(
    env: pytest.MonkeyPatch, stack: LocalStack
) -> None:
    """A weekly rotation of 96 tenants, 8 tenants at a time, with the admin key rotated while it
    runs. The admin rotation waits for the batches in flight and the next batch waits for it: no
    tenant key is minted between the new admin key's creation and the old one's deletion. The
    fan-out caches the admin key for an hour, so only the re-read on a 401 carries it across."""
    secret = new_admin_secret(stack)
    env.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET", secret)
    env.setenv("TENANT_KEYS_ADMIN_KEY_CACHE_SECONDS", "3600")
    env.setenv("TENANT_KEYS_ADMIN_GRACE_SECONDS", "0")
    env.setenv("TENANT_KEYS_MAX_CONCURRENCY", "8")  # 8 tenants in flight, batches of 8
    reset_services()
    suffix = uuid.uuid4().hex[:6]
    tenants = [f"span-{suffix}-{i:02d}" for i in range(96)]
    onboard_directly(tenants)
    old_admin = _admin_key_id()
    rotation = f"r-span-{suffix}"
    # Twelve batches of about half a second: the admin rotation (a CLI command started once the
    # first keys exist) lands between two of them even on a loaded machine.
    stack.langsmith.control.configure(latency_ms=150)
    outcome: dict[str, State] = {}

    def fan_out() -> None:
        outcome["state"] = rotate_keys(tenants, rotation_id=rotation, return_state=True)

    def minted(created_by: str | None = None) -> list[dict[str, Any]]:
        return [
            k
            for k in stack.langsmith.control.keys()  # noqa: SIM118 - the emulator's dump
            if k["description"].endswith(f"rotation={rotation}")
            and created_by in (None, k["created_by_key_id"])
        ]

    worker = threading.Thread(target=fan_out)
    try:
        worker.start()
        wait_for(lambda: minted(), 60, "the fan-out's first keys", every=0.05)
        admin = CliRunner().invoke(app, ["rotate-admin", "--rotation-id", f"ra-span-{suffix}"])
        worker.join(timeout=300)
    finally:
        stack.langsmith.control.configure(latency_ms=0)
    assert not worker.is_alive()

    assert admin.exit_code == 0, admin.output
    assert outcome["state"].is_completed(), outcome["state"].message
    new_admin = _admin_key_id()
    assert new_admin != old_admin
    by_old, by_new = minted(old_admin), minted(new_admin)
    assert by_old and by_new, "the fan-out acted with both admin keys: it spanned the rotation"
    assert len(by_old) + len(by_new) == len(tenants)
    old_key, new_key = key_state(stack, old_admin), key_state(stack, new_admin)
    assert max(_at(k, "created_at") for k in by_old) <= _at(new_key, "created_at")
    assert _at(old_key, "deleted_at") <= min(_at(k, "created_at") for k in by_new), (
        "no tenant key was minted while the admin key changed"
    )
    store = get_services().store
    assert all(store.read(t).rotation_id == rotation for t in tenants)
