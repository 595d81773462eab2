"""The rotation protocol, run directly: its steps, its compensation, faults at every step,
and the design's invariants."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace

import boto3
import httpx
import pytest
from pydantic import SecretStr

from devstack.stack import LocalStack
from tenant_keys.errors import SecretStoreError
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import CURRENT, PENDING, TAG_OFFBOARDING
from tenant_keys.rotation import retire, rotate, rotation_targets
from tenant_keys.secret_store import SecretStore
from tenant_keys.services import Services
from tests.invariants import (
    assert_finished,
    assert_no_orphans,
    current_key_works,
    live_tool_keys,
    minted_keys,
)

DELETE_KEY = "/api/v1/api-key/{api_key_id}"
Onboard = Callable[[str], str]


def _labels(services: Services, tenant_id: str) -> set[str]:
    state = services.store.describe(tenant_id)
    return {label for labels in state.versions.values() for label in labels}


def _mints(stack: LocalStack) -> int:
    return int(stack.langsmith.control.request_counts()["by_route"].get("POST /api/v1/api-key", 0))


def test_rotation_replaces_the_key_and_deletes_the_old_one(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_key = onboarded(tenant_id)
    old_record = services.store.read(tenant_id)

    result = rotate(services, tenant_id, "r-happy", retire_now=True)

    assert result.outcome == "rotated", result.error
    assert result.old_key_id == old_key and result.new_key_id != old_key
    record = services.store.read(tenant_id)
    assert record.key_id == result.new_key_id and record.rotation_id == "r-happy"
    assert current_key_works(tenant_id)
    assert not services.langsmith.authenticates(old_record.api_key), "the old key must be dead"
    assert_finished(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert [e.name for e in result.events] == ["tenant-keys.key.rotated"]


def test_rerunning_a_finished_rotation_mints_nothing(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(tenant_id)
    rotate(services, tenant_id, "r-once", retire_now=True)
    key, mints = services.store.read(tenant_id).key_id, _mints(backends)

    result = rotate(services, tenant_id, "r-once", retire_now=True)

    assert result.outcome == "already-rotated"
    assert services.store.read(tenant_id).key_id == key
    assert _mints(backends) == mints


def test_failed_key_test_rolls_back_and_keeps_the_old_key(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_key = onboarded(tenant_id)
    # The project listing of the ownership proof, taken now so the fault below meets only the
    # calls made with the new key.
    services.ownership.project(tenant_id, services.store.read(tenant_id).project_id, None)
    # Every test call with the new key is refused (the resume check and five test attempts).
    backends.langsmith.control.inject_fault(
        method="GET", route="/api/v1/sessions", action="status", status=401, count=5
    )

    result = rotate(services, tenant_id, "r-badtest", retire_now=True)
    backends.langsmith.control.clear_faults()

    assert result.outcome == "failed" and "did not authenticate" in (result.error or "")
    assert services.store.read(tenant_id).key_id == old_key
    assert current_key_works(tenant_id)
    assert PENDING not in _labels(services, tenant_id)
    assert live_tool_keys(backends, tenant_id) == {old_key}, "the new key was minted, then deleted"

    # The same rotation id can be run again and completes with a fresh token.
    assert rotate(services, tenant_id, "r-badtest", retire_now=True).outcome == "rotated"
    assert services.store.read(tenant_id).key_id != old_key
    assert_no_orphans(backends, tenant_id)


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "POST", "route": "/api/v1/api-key", "action": "status", "status": 503},
        {
            "method": "POST",
            "route": "/api/v1/api-key",
            "action": "status",
            "status": 429,
            "retry_after": 1,
        },
        {"method": "POST", "route": "/api/v1/api-key", "action": "drop", "when": "after"},
        {"method": "POST", "route": "/api/v1/api-key", "action": "hang", "hang_seconds": 4},
        {"method": "GET", "route": "/api/v1/sessions", "action": "drop"},
        {"method": "DELETE", "route": DELETE_KEY, "action": "status", "status": 502},
        {"method": "DELETE", "route": DELETE_KEY, "action": "hang", "hang_seconds": 4},
        {"method": "DELETE", "route": DELETE_KEY, "action": "drop", "when": "after"},
    ],
    ids=[
        "mint-503",
        "mint-429",
        "mint-lost-response",
        "mint-timeout",
        "test-dropped",
        "retire-502",
        "retire-timeout",
        "retire-lost-response",
    ],
)
def test_a_transient_fault_at_any_step_still_converges(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str, fault: dict
) -> None:
    old_key = onboarded(tenant_id)
    backends.langsmith.control.inject_fault(count=1, **fault)

    result = rotate(services, tenant_id, "r-fault", retire_now=True)
    backends.langsmith.control.clear_faults()

    assert result.outcome == "rotated", result.error
    record = services.store.read(tenant_id)
    assert record.key_id != old_key
    assert current_key_works(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert_finished(tenant_id)


def test_store_error_while_storing_pending_deletes_the_new_key(
    backends: LocalStack,
    services: Services,
    onboarded: Onboard,
    tenant_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old_key = onboarded(tenant_id)
    mints = _mints(backends)

    # moto offers no way to fail one PutSecretValue on demand; this fault is patched in.
    def refuse(self: SecretStore, tenant: str, *args: object, **kwargs: object) -> None:
        raise SecretStoreError("PutSecretValue", self.name(tenant), "InternalServiceError")

    monkeypatch.setattr(SecretStore, "put_version", refuse)
    result = rotate(services, tenant_id, "r-storefail", retire_now=True)

    assert result.outcome == "failed" and "InternalServiceError" in (result.error or "")
    assert _mints(backends) == mints + 1, "a key was minted..."
    assert live_tool_keys(backends, tenant_id) == {old_key}, "...and deleted when the store failed"
    assert services.store.read(tenant_id).key_id == old_key
    assert current_key_works(tenant_id)


def test_delete_failing_after_promotion_keeps_the_durable_record(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_key = onboarded(tenant_id)
    backends.langsmith.control.inject_fault(
        method="DELETE", route=DELETE_KEY, action="status", status=500, count=50
    )

    result = rotate(services, tenant_id, "r-stuck", retire_now=True)
    backends.langsmith.control.clear_faults()

    # The tenant fails visibly and raises the alarm; the new key is live, the old one labelled.
    assert result.outcome == "retire-failed" and "RetireFailed" in (result.error or "")
    assert [e.name for e in result.events] == [
        "tenant-keys.key.rotated",
        "tenant-keys.retire.failed",
    ]
    assert current_key_works(tenant_id)
    assert services.store.read(tenant_id).previous_key_id == old_key, "the record names it"
    assert old_key in live_tool_keys(backends, tenant_id), "and LangSmith still lists it"

    # The next rotation first finishes the retire, then rotates.
    assert rotate(services, tenant_id, "r-after-stuck", retire_now=True).outcome == "rotated"
    assert old_key not in live_tool_keys(backends, tenant_id)
    assert_finished(tenant_id)
    assert_no_orphans(backends, tenant_id)


def test_a_secret_edited_into_bad_json_fails_only_its_tenant(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(tenant_id)
    sm = boto3.client("secretsmanager", endpoint_url=backends.moto.url, region_name="us-east-1")
    sm.put_secret_value(SecretId=services.store.name(tenant_id), SecretString="{not json")

    result = rotate(services, tenant_id, "r-corrupt", retire_now=True)

    assert result.outcome == "failed" and "not a tenant-keys record" in (result.error or "")
    assert "{not json" not in (result.error or "")


def test_a_tenant_being_offboarded_is_not_rotated(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    key = onboarded(tenant_id)
    services.store.set_tags(tenant_id, {TAG_OFFBOARDING: "2026-11-27T00:00:00+00:00"})
    mints = _mints(backends)

    result = rotate(services, tenant_id, "r-leaving", retire_now=True)

    assert result.outcome == "offboarding"
    assert services.store.read(tenant_id).key_id == key
    assert _mints(backends) == mints, "no key minted for a leaving tenant"
    assert tenant_id not in list(rotation_targets(services, "all"))


def test_with_a_grace_window_the_old_key_waits_then_is_retired(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    old_key = onboarded(tenant_id)
    result = rotate(services, tenant_id, "r-grace", retire_now=False)
    assert result.outcome == "rotated" and old_key in live_tool_keys(backends, tenant_id)
    assert services.store.read(tenant_id).previous_key_id == old_key

    in_grace = replace(
        services, settings=services.settings.model_copy(update={"grace_seconds": 3600})
    )
    waiting = retire(in_grace, tenant_id, "r-grace", old_key)
    assert waiting.outcome == "waiting" and old_key in live_tool_keys(backends, tenant_id)

    done = retire(services, tenant_id, "r-grace", old_key)  # grace 0: the window has passed
    assert done.outcome == "rotated" and done.old_key_id == old_key
    assert old_key not in live_tool_keys(backends, tenant_id)
    assert_finished(tenant_id)
    assert_no_orphans(backends, tenant_id)


def test_a_record_copied_from_another_tenant_is_refused_and_harms_no_one(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    """An attacker copies V's record into A's secret, then A is rotated: nothing is minted
    for V's project, V's key lives on, and the rotation fails loudly."""
    victim = f"{tenant_id}-v"
    onboarded(tenant_id)
    v_key = onboarded(victim)
    copied = services.store.read(victim)
    services.store.put_version(tenant_id, copied, token=str(uuid.uuid4()), stage=CURRENT)
    mints = _mints(backends)

    result = rotate(services, tenant_id, "r-attacked", retire_now=True)

    assert result.outcome == "failed" and "NotOwned" in (result.error or "")
    assert f"tenant-{victim}" in (result.error or "")
    assert _mints(backends) == mints, "no key minted for a project that is not A's"
    assert current_key_works(victim) and v_key in live_tool_keys(backends, victim)


def test_a_secret_the_tool_did_not_create_is_not_a_tenant(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    onboarded(tenant_id)
    sm = boto3.client("secretsmanager", endpoint_url=backends.moto.url, region_name="us-east-1")
    rogue = f"{services.store.prefix}Rogue-{tenant_id}"
    unmarked = f"{services.store.prefix}{tenant_id}-unmarked"
    sm.create_secret(
        Name=rogue,
        SecretString="{}",
        Tags=[{"Key": "tenant-keys:managed-by", "Value": "tenant-keys"}],
    )
    sm.create_secret(Name=unmarked, SecretString="{}")
    try:
        targets = list(rotation_targets(services, "all"))
    finally:
        for name in (rogue, unmarked):
            sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert tenant_id in targets
    assert f"Rogue-{tenant_id}" not in targets and f"{tenant_id}-unmarked" not in targets


def test_a_create_answered_with_a_malformed_body_echoes_no_key_and_leaves_no_orphan(
    backends: LocalStack,
    services: Services,
    onboarded: Onboard,
    tenant_id: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """LangSmith mints the key but its answer lacks the key id: the tool cannot store it, must
    not echo it (pydantic's own error would quote the body), and deletes it by description."""
    onboarded(tenant_id)
    bodies: list[str] = []
    request = LangSmithAdmin._request

    def spy(self: LangSmithAdmin, method: str, template: str, **kwargs: object) -> object:
        response = request(self, method, template, **kwargs)  # type: ignore[arg-type]
        if (method, template) == ("POST", "/api/v1/api-key"):
            bodies.append(response.text)  # an observer: the real answer, to search for
        return response

    monkeypatch.setattr(LangSmithAdmin, "_request", spy)
    backends.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", action="mangle", when="after", remove=["id"]
    )

    with caplog.at_level(logging.DEBUG):
        result = rotate(services, tenant_id, "r-mangled", retire_now=True)

    assert result.outcome == "rotated", result.error
    mangled = json.loads(bodies[0])["key"]
    assert "id" not in json.loads(bodies[0]) and mangled.startswith("lsv2_")
    assert not services.langsmith.authenticates(SecretStr(mangled)), "the unstorable key is dead"
    assert len(minted_keys(backends, tenant_id, "r-mangled")) == 2
    assert_no_orphans(backends, tenant_id)
    assert "MalformedResponse" in caplog.text
    assert not any(mangled[i : i + 16] in caplog.text for i in range(len(mangled) - 15))


def test_a_rotation_writes_the_store_twice_and_reads_it_twice(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    """Counted at moto's server: PutSecretValue and UpdateSecretVersionStage, DescribeSecret and
    GetSecretValue; nothing else touches the tenant's secret."""
    onboarded(tenant_id)
    rotate(services, tenant_id, "r-warm", retire_now=True)  # AWSPENDING now on AWSCURRENT
    name = services.store.name(tenant_id)
    before = _secret_calls(backends, name)

    result = rotate(services, tenant_id, "r-counted", retire_now=True)

    assert result.outcome == "rotated", result.error
    calls = _secret_calls(backends, name)
    made = {op: calls.get(op, 0) - before.get(op, 0) for op in calls}
    writes = {
        op: n for op, n in made.items() if n and op not in ("DescribeSecret", "GetSecretValue")
    }
    assert writes == {"PutSecretValue": 1, "UpdateSecretVersionStage": 1}, made
    assert made.get("DescribeSecret", 0) + made.get("GetSecretValue", 0) == 2, made
    assert_finished(tenant_id)


def test_a_secret_with_the_old_retire_pending_label_is_retired_by_the_next_rotation(
    backends: LocalStack, services: Services, onboarded: Onboard, tenant_id: str
) -> None:
    """Earlier versions of the tool marked the old key's version RETIRE_PENDING (and dropped
    AWSPENDING): the first rotation that meets one retires that key and drops the label."""
    old_key = onboarded(tenant_id)
    old_version = services.store.describe(tenant_id).version_with(CURRENT)
    assert rotate(services, tenant_id, "r-new", retire_now=False).outcome == "rotated"
    state = services.store.describe(tenant_id)
    # The layout an earlier rotation left: RETIRE_PENDING on the old version, no AWSPENDING.
    assert old_version is not None
    services.store.move_label(
        tenant_id, "RETIRE_PENDING", to_version=old_version, from_version=None
    )
    current_version = state.version_with(CURRENT)
    assert current_version is not None
    services.store.remove_label(tenant_id, PENDING, from_version=current_version)
    assert old_key in live_tool_keys(backends, tenant_id)

    result = rotate(services, tenant_id, "r-after-upgrade", retire_now=True)

    assert result.outcome == "rotated", result.error
    assert old_key not in live_tool_keys(backends, tenant_id)
    assert_finished(tenant_id)
    assert_no_orphans(backends, tenant_id)


def _secret_calls(stack: LocalStack, name: str) -> dict[str, int]:
    """Secrets Manager calls moto's server answered for one secret, by operation."""
    calls: dict[str, int] = httpx.get(
        f"{stack.moto.url}/_calls", params={"secret": name}, timeout=10
    ).json()
    return calls
