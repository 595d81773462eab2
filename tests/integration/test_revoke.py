"""Emergency revoke on the local stack: CLI, scope, failure paths, racing a rotation, the served
deployment triggered by a real event, and no plaintext key in what Prefect stored."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr
from typer.testing import CliRunner

from devstack.stack import LocalStack
from flows.onboarding import onboard_tenants
from flows.revoke import (
    COMPROMISED_EVENT,
    NO_KEY_EVENT,
    REVOKED_EVENT,
    TRIGGER_PARAMETERS,
    emergency_revoke,
)
from flows.rotation import RotationResult, rotate_keys, rotate_one
from tenant_keys.cli import app
from tenant_keys.keys import record_for
from tenant_keys.models import key_description, version_token
from tenant_keys.revoke import STATUS_NO_KEY, TAG_STATUS, has_no_key
from tenant_keys.secret_store import PENDING, RETIRE_PENDING
from tenant_keys.services import get_services
from tests.conftest import _flush_prefect_clients
from tests.integration.revoke_helpers import (
    REPO,
    deployment_ready,
    incident_artifacts,
    revoke_runs_finished,
    served_revoke_deployment,
    tenant_events,
    wait_for,
)
from tests.invariants import (
    assert_no_orphans,
    assert_no_plaintext_in_prefect,
    current_key_works,
    live_tool_keys,
    prefect_storage_text,
)

pytestmark = pytest.mark.usefixtures("stack")

runner = CliRunner()
MINT = "POST /api/v1/api-key"
DELETE = "DELETE /api/v1/api-key/{api_key_id}"


def _onboarded(tenant_id: str) -> tuple[str, SecretStr]:
    [result] = onboard_tenants([tenant_id])
    record = get_services().store.read(tenant_id)
    assert result.key_id == record.key_id
    return record.key_id, record.api_key


def _works(api_key: SecretStr) -> bool:
    return get_services().langsmith.authenticates(api_key)


def _labels(tenant_id: str) -> set[str]:
    state = get_services().store.describe(tenant_id)
    return {label for labels in state.versions.values() for label in labels}


def _deletes(stack: LocalStack) -> int:
    return stack.langsmith.control.request_counts()["by_route"].get(DELETE, 0)


def test_revoke_via_the_cli_kills_the_key_and_replaces_it(
    stack: LocalStack, tenant_id: str
) -> None:
    old_id, old_key = _onboarded(tenant_id)

    result = runner.invoke(app, ["revoke", tenant_id, "--reason", "secret scanning alert #42"])

    assert result.exit_code == 0, result.output
    assert "revoked" in result.output and "1 key(s)" in result.output
    assert not _works(old_key), "the leaked key must be rejected"
    record = get_services().store.read(tenant_id)
    assert record.key_id != old_id and record.rotation_id.startswith("revoke-")
    assert current_key_works(tenant_id)
    assert live_tool_keys(stack, tenant_id) == {record.key_id}
    assert record.project_id == get_services().store.describe(tenant_id).tags.get(
        "tenant-keys:project-id"
    )

    [incident] = incident_artifacts(tenant_id)
    assert old_id in incident and record.key_id in incident
    assert "secret scanning alert #42" in incident and "cli tenant-keys revoke" in incident
    assert "seconds from report to key rejected" in incident
    _flush_prefect_clients()
    [event] = wait_for(lambda: tenant_events(REVOKED_EVENT, tenant_id), 30, "the revoked event")
    assert event["key_ids"] == [old_id] and event["replacement_key_id"] == record.key_id
    assert event["outcome"] == "revoked" and event["seconds_to_rejected"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["revoke", "Not_A_Tenant", "--reason", "x"], "is invalid: use a lowercase slug"),
        (["revoke", "{unknown}", "--reason", "x"], "is not onboarded"),
        (["revoke", "{tenant}", "--reason", "x", "--key-id", "{other_key}"], "is not a key of"),
        (["revoke", "{tenant}", "--reason", "x", "--scope", "everything"], "scope 'everything'"),
        (["revoke", "{tenant}", "--reason", "  "], "--reason is empty"),
        (["report-compromise", "{tenant}", "--reason", "x", "--scope", "most"], "scope 'most'"),
    ],
    ids=["bad-id", "unknown-tenant", "foreign-key-id", "bad-scope", "no-reason", "report-bad"],
)
def test_bad_input_gets_one_line_and_revokes_nothing(
    stack: LocalStack, tenant_id: str, args: list[str], message: str
) -> None:
    other = f"{tenant_id}-other"
    onboard_tenants([tenant_id, other])
    other_key = get_services().store.read(other).key_id
    before = _deletes(stack)
    filled = [
        a.format(tenant=tenant_id, unknown=f"{tenant_id}-nobody", other_key=other_key) for a in args
    ]

    result = runner.invoke(app, filled)

    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1, result.output
    assert _deletes(stack) == before, "nothing may be deleted on bad input"
    assert current_key_works(tenant_id) and current_key_works(other)


def test_bad_input_to_the_flow_fails_before_any_side_effect(
    stack: LocalStack, tenant_id: str
) -> None:
    """The event path has no CLI in front: the flow run itself fails with the one line."""
    before = _deletes(stack)
    state = emergency_revoke(f"tenant.{tenant_id}", reason="x", return_state=True)
    assert state.is_failed() and "is not onboarded" in (state.message or "")
    assert _deletes(stack) == before


def test_scope_all_revokes_every_key_minted_for_the_tenant(
    stack: LocalStack, tenant_id: str
) -> None:
    services = get_services()
    first_id, first_key = _onboarded(tenant_id)
    # A rotation whose retire failed: the first key is still alive under RETIRE_PENDING.
    stack.langsmith.control.inject_fault(
        method="DELETE", route="/api/v1/api-key/{api_key_id}", status=500, count=50
    )
    assert rotate_keys([tenant_id], rotation_id="r-stuck", return_state=True).is_failed()
    stack.langsmith.control.clear_faults()
    second = services.store.read(tenant_id)
    # An unfinished rotation's AWSPENDING key, and a key the secret does not know at all.
    pending = services.langsmith.create_key(
        key_description(tenant_id, "r-crashed"), expires_at=None
    )
    pending_record = record_for(
        pending,
        project_id=second.project_id,
        project_name=second.project_name,
        workspace_id=second.workspace_id,
        rotation_id="r-crashed",
    )
    services.store.put_pending(
        tenant_id, pending_record, token=version_token(tenant_id, "r-crashed")
    )
    orphan = services.langsmith.create_key(key_description(tenant_id, "r-lost"), expires_at=None)
    assert {first_id, second.key_id, pending.id, orphan.id} <= live_tool_keys(stack, tenant_id)

    state = emergency_revoke(
        tenant_id, reason="tenant account takeover", scope="all", return_state=True
    )

    assert state.is_completed(), state.message
    for key in (first_key, second.api_key, pending.key, orphan.key):
        assert not _works(key)
    record = services.store.read(tenant_id)
    assert live_tool_keys(stack, tenant_id) == {record.key_id}
    assert current_key_works(tenant_id)
    assert {PENDING, RETIRE_PENDING}.isdisjoint(_labels(tenant_id))
    [incident] = incident_artifacts(tenant_id)
    for key_id in (first_id, second.key_id, pending.id, orphan.id):
        assert key_id in incident
    assert "(LangSmith only)" in incident  # the orphan was found by listing, not in the secret
    assert_no_orphans(stack, tenant_id)


def test_default_scope_leaves_another_tenants_keys_and_an_unrelated_pending_key(
    stack: LocalStack, tenant_id: str
) -> None:
    services = get_services()
    neighbour = f"{tenant_id}-n"
    onboard_tenants([tenant_id, neighbour])
    neighbour_key = services.store.read(neighbour).key_id
    base = services.store.read(tenant_id)
    pending = services.langsmith.create_key(key_description(tenant_id, "r-next"), expires_at=None)
    services.store.put_pending(
        tenant_id,
        record_for(
            pending,
            project_id=base.project_id,
            project_name=base.project_name,
            workspace_id=base.workspace_id,
            rotation_id="r-next",
        ),
        token=version_token(tenant_id, "r-next"),
    )

    state = emergency_revoke(tenant_id, reason="laptop stolen", return_state=True)

    assert state.is_completed(), state.message
    assert not _works(base.api_key)
    assert _works(pending.key), "scope current leaves an in-flight AWSPENDING key alone"
    assert PENDING in _labels(tenant_id)
    assert neighbour_key in live_tool_keys(stack, neighbour) and current_key_works(neighbour)
    # The next rotation resumes that pending key and retires the replacement: no orphans.
    assert rotate_keys([tenant_id], rotation_id="r-next", return_state=True).is_completed()
    assert services.store.read(tenant_id).key_id == pending.id
    assert_no_orphans(stack, tenant_id)


def test_a_failed_replacement_leaves_no_key_marked_and_loud(
    stack: LocalStack, tenant_id: str
) -> None:
    old_id, old_key = _onboarded(tenant_id)
    # Every mint fails; the suspect key's delete is unaffected.
    stack.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", status=503, count=None
    )
    try:
        result = runner.invoke(app, ["revoke", tenant_id, "--reason", "pentest finding"])
    finally:
        stack.langsmith.control.clear_faults()

    assert result.exit_code == 1, result.output
    assert "revoked-no-key" in result.output and "ReplacementFailed" in result.output
    assert not _works(old_key), "security first: the suspect key is dead anyway"
    store = get_services().store
    assert store.read(tenant_id).key_id == old_id, "AWSCURRENT keeps the dead key: apps get 401"
    state = store.describe(tenant_id)
    assert state.tags[TAG_STATUS] == STATUS_NO_KEY and has_no_key(state, old_id)
    assert live_tool_keys(stack, tenant_id) == set(), "no half-made replacement left alive"
    listing = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert STATUS_NO_KEY in next(line for line in listing.output.splitlines() if tenant_id in line)
    [incident] = incident_artifacts(tenant_id)
    assert "NO WORKING KEY" in incident and old_id in incident
    _flush_prefect_clients()
    [event] = wait_for(lambda: tenant_events(NO_KEY_EVENT, tenant_id), 30, "the no-key event")
    assert event["key_ids"] == [old_id] and "ReplacementFailed" in event["error"]

    # Once LangSmith mints again, a second revoke gives the tenant a key and clears the mark.
    assert runner.invoke(app, ["revoke", tenant_id, "--reason", "retry"]).exit_code == 0
    assert current_key_works(tenant_id)
    state = store.describe(tenant_id)
    assert not has_no_key(state, store.read(tenant_id).key_id)
    assert state.tags[TAG_STATUS] == "active"
    assert_no_orphans(stack, tenant_id)


def test_a_delete_that_keeps_failing_changes_nothing_else_and_fails_loudly(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_id, old_key = _onboarded(tenant_id)
    monkeypatch.setattr("tenant_keys.revoke.DELETE_DEADLINE_SECONDS", 1.0)
    # Not patched in: the emulator's 403 on delete (an admin key without rights) is not
    # transient, so it fails at once; a 503 would be retried until the deadline.
    stack.langsmith.control.inject_fault(
        method="DELETE", route="/api/v1/api-key/{api_key_id}", status=503, count=None
    )
    try:
        state = emergency_revoke(tenant_id, reason="deletes failing", return_state=True)
    finally:
        stack.langsmith.control.clear_faults()

    assert state.is_failed() and "not-revoked" in (state.message or "")
    assert "RevokeFailed" in (state.message or "")
    assert get_services().store.read(tenant_id).key_id == old_id
    assert _works(old_key)  # honest: it is still alive, and the run says so
    [incident] = incident_artifacts(tenant_id)
    assert "REVOKE FAILED" in incident


@pytest.mark.parametrize("retire_now", [True, False], ids=["retired", "retire-pending"])
def test_revoke_during_a_rotation_kills_old_and_fresh_keys(
    stack: LocalStack, tenant_id: str, retire_now: bool
) -> None:
    services = get_services()
    first_id, first_key = _onboarded(tenant_id)
    control = stack.langsmith.control
    # The rotation holds the tenant's lock for ~3 s: a slow mint, then a slow key test.
    mint_fault = control.inject_fault(
        method="POST", route="/api/v1/api-key", action="hang", hang_seconds=1.5, count=1
    )
    control.inject_fault(
        method="GET", route="/api/v1/sessions", action="hang", hang_seconds=1.5, count=1
    )
    rotation: dict[str, RotationResult] = {}
    thread = threading.Thread(
        target=lambda: rotation.setdefault(
            "result", rotate_one(tenant_id, "r-racing", retire_now=retire_now)
        )
    )
    thread.start()
    try:
        # Once the mint is in flight, the rotation holds the lock.
        wait_for(
            lambda: any(f["id"] == mint_fault["id"] and f["seen"] for f in control.faults()),
            20,
            "the rotation's mint",
        )
        state = emergency_revoke(tenant_id, reason="leak during rotation", return_state=True)
        thread.join(30)
    finally:
        control.clear_faults()

    assert rotation["result"].outcome == "rotated"
    fresh_id = rotation["result"].new_key_id
    assert state.is_completed(), state.message
    record = services.store.read(tenant_id)
    assert record.key_id not in (first_id, fresh_id), "a compromised key never becomes current"
    assert record.rotation_id.startswith("revoke-")
    assert not _works(first_key), "the key current at the report is dead"
    assert fresh_id not in live_tool_keys(stack, tenant_id), "the fresh key is not left alive"
    assert live_tool_keys(stack, tenant_id) == {record.key_id}
    assert current_key_works(tenant_id)
    assert {PENDING, RETIRE_PENDING}.isdisjoint(_labels(tenant_id))
    [incident] = incident_artifacts(tenant_id)
    assert first_id in incident and fresh_id in incident


def test_a_rerun_of_the_same_incident_does_not_revoke_its_own_replacement(
    stack: LocalStack, tenant_id: str
) -> None:
    _onboarded(tenant_id)
    incident = "11111111-2222-3333-4444-555555555555"
    assert emergency_revoke(
        tenant_id, reason="dup", incident_id=incident, return_state=True
    ).is_completed()
    replacement = get_services().store.read(tenant_id).key_id

    # The same event delivered twice: the second run finds the replacement current and keeps it.
    assert emergency_revoke(
        tenant_id, reason="dup", incident_id=incident, return_state=True
    ).is_completed()

    assert get_services().store.read(tenant_id).key_id == replacement
    assert live_tool_keys(stack, tenant_id) == {replacement}
    assert current_key_works(tenant_id)


def test_prefect_yaml_carries_the_same_trigger_as_the_served_deployment() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [deployment] = [d for d in config["deployments"] if d["name"] == "emergency-revoke"]
    assert deployment["entrypoint"] == "flows/revoke.py:emergency_revoke"
    assert deployment["work_pool"]["name"] == "tenant-keys"
    [trigger] = deployment["triggers"]
    assert trigger["expect"] == [COMPROMISED_EVENT]
    assert trigger["match"] == {"prefect.resource.id": "tenant.*"}
    assert trigger["parameters"] == TRIGGER_PARAMETERS


def test_a_real_event_triggers_the_served_deployment(
    stack: LocalStack, tenant_id: str, tmp_path: Path
) -> None:
    old_id, old_key = _onboarded(tenant_id)
    with served_revoke_deployment(tmp_path / "serve.log") as served:
        wait_for(deployment_ready, 60, "the served deployment and its automation", every=0.5)
        assert served.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]

        reported = time.monotonic()
        result = runner.invoke(
            app,
            ["report-compromise", tenant_id, "--reason", "scanner hit", "--reported-by", "ghas"],
        )
        assert result.exit_code == 0, result.output
        wait_for(lambda: not _works(old_key), 60, "LangSmith to reject the reported key")
        seconds = time.monotonic() - reported

        store = get_services().store
        wait_for(
            lambda: store.read(tenant_id).key_id != old_id and current_key_works(tenant_id),
            30,
            "the replacement",
        )
        [incident] = wait_for(lambda: incident_artifacts(tenant_id), 30, "the incident artifact")
        wait_for(lambda: revoke_runs_finished(tenant_id), 30, "the flow run to finish")
    assert old_id in incident and "scanner hit" in incident and "ghas" in incident
    assert f"event {COMPROMISED_EVENT}" in incident
    [event] = wait_for(lambda: tenant_events(REVOKED_EVENT, tenant_id), 30, "the revoked event")
    assert event["key_ids"] == [old_id] and event["reported_by"] == "ghas"
    assert live_tool_keys(stack, tenant_id) == {store.read(tenant_id).key_id}
    print(f"event -> key rejected: {seconds:.2f} s (figures: benchmarks/revoke.py)")


def test_no_plaintext_key_in_what_prefect_stored(stack: LocalStack, tenant_id: str) -> None:
    _, old_key = _onboarded(tenant_id)
    # A careless reporter pastes the leaked key itself into the reason.
    reason = f"found {old_key.get_secret_value()} in a public gist"
    assert runner.invoke(app, ["revoke", tenant_id, "--reason", reason]).exit_code == 0
    stack.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", status=503, count=None
    )
    try:
        assert emergency_revoke(tenant_id, reason="again", return_state=True).is_failed()
    finally:
        stack.langsmith.control.clear_faults()
    _flush_prefect_clients()
    wait_for(
        lambda: (
            len(tenant_events(REVOKED_EVENT, tenant_id)) == 2
            and f"revoke-{tenant_id}" in prefect_storage_text(stack)
        ),
        30,
        "the server to persist this test's incidents",
    )
    assert "[REDACTED] in a public gist" in "\n".join(incident_artifacts(tenant_id))
    assert assert_no_plaintext_in_prefect(stack) >= 2
