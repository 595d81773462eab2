"""Emergency revoke through Prefect: the CLI, the flow run and its incident record, bad input,
a crashed run holding the lock, Prefect down (break-glass) and the replay, the served
deployment triggered by real events, and no plaintext key in what Prefect stored. The protocol
itself is tested in tests/core/test_revoke.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prefect.events import Event
from pydantic import SecretStr
from typer.testing import CliRunner

from devstack.deployments import revoke_listener
from devstack.stack import LocalStack, free_port
from flows.revoke import TRIGGER_PARAMETERS, TRIGGER_RESOURCES, emergency_revoke
from tasks.events import flush
from tasks.revoke_listener import kill_on_report
from tenant_keys.cli import app
from tenant_keys.events import COMPROMISED, KeyRevokedEvent, TenantNoKeyEvent
from tenant_keys.incident import IncidentLog
from tenant_keys.layout import STATUS_NO_KEY, TAG_STATUS
from tenant_keys.services import get_services, reset_services
from tests.integration.revoke_helpers import (
    REPO,
    deployment_ready,
    incident_artifacts,
    revoke_runs_finished,
    served_revoke_deployment,
    tenant_events,
    wait_for,
)
from tests.integration.tenants import onboard_directly
from tests.invariants import (
    assert_no_orphans,
    assert_no_plaintext_in_prefect,
    current_key_works,
    live_tool_keys,
    prefect_storage_text,
)

REVOKED_EVENT, NO_KEY_EVENT = KeyRevokedEvent.NAME, TenantNoKeyEvent.NAME

pytestmark = pytest.mark.usefixtures("stack")

runner = CliRunner()
MINT = "POST /api/v1/api-key"
DELETE_ROUTE = "/api/v1/api-key/{api_key_id}"
DELETE = "DELETE /api/v1/api-key/{api_key_id}"


def _onboarded(tenant_id: str) -> tuple[str, SecretStr]:
    [result] = onboard_directly([tenant_id])
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
    flush()
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
    onboard_directly([tenant_id, other])
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
    assert state.tags[TAG_STATUS] == STATUS_NO_KEY and state.has_no_key(old_id)
    assert live_tool_keys(stack, tenant_id) == set(), "no half-made replacement left alive"
    listing = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert STATUS_NO_KEY in next(line for line in listing.output.splitlines() if tenant_id in line)
    [incident] = incident_artifacts(tenant_id)
    assert "NO WORKING KEY" in incident and old_id in incident
    flush()
    [event] = wait_for(lambda: tenant_events(NO_KEY_EVENT, tenant_id), 30, "the no-key event")
    assert event["key_ids"] == [old_id] and "ReplacementFailed" in event["error"]

    # Once LangSmith mints again, a second revoke gives the tenant a key and clears the mark.
    assert runner.invoke(app, ["revoke", tenant_id, "--reason", "retry"]).exit_code == 0
    assert current_key_works(tenant_id)
    state = store.describe(tenant_id)
    assert not state.has_no_key(store.read(tenant_id).key_id)
    assert state.tags[TAG_STATUS] == "active"
    assert_no_orphans(stack, tenant_id)


def test_prefect_yaml_carries_the_same_trigger_as_the_served_deployment() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [deployment] = [d for d in config["deployments"] if d["name"] == "emergency-revoke"]
    assert deployment["entrypoint"] == "flows/revoke.py:emergency_revoke"
    assert deployment["work_pool"]["name"] == "tenant-keys"
    [trigger] = deployment["triggers"]
    assert trigger["expect"] == [COMPROMISED]
    assert trigger["match"] == {"prefect.resource.id": TRIGGER_RESOURCES}
    assert trigger["parameters"] == TRIGGER_PARAMETERS


def test_a_real_event_triggers_the_served_deployment(
    stack: LocalStack, tenant_id: str, tmp_path: Path
) -> None:
    """Two reports: one naming the tenant, one giving only a leaked key (as its fingerprint):
    the deployment finds whose it is."""
    old_id, old_key = _onboarded(tenant_id)
    leaked_tenant = f"{tenant_id}-l"
    leaked_id, leaked = _onboarded(leaked_tenant)
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
        by_key = runner.invoke(
            app,
            ["report-compromise", "--leaked-key", "-", "--reason", "pasted in a chat"],
            input=leaked.get_secret_value() + "\n",
        )
        assert by_key.exit_code == 0, by_key.output
        assert "tenant to be found" in by_key.output
        wait_for(lambda: not _works(leaked), 60, "LangSmith to reject the leaked key")

        store = get_services().store
        wait_for(
            lambda: store.read(tenant_id).key_id != old_id and current_key_works(tenant_id),
            30,
            "the replacement",
        )
        [incident] = wait_for(lambda: incident_artifacts(tenant_id), 30, "the incident artifact")
        wait_for(lambda: revoke_runs_finished(tenant_id), 30, "the flow run to finish")
        wait_for(
            lambda: store.read(leaked_tenant).key_id != leaked_id,
            30,
            "the leaked key's replacement",
        )
        wait_for(lambda: incident_artifacts(leaked_tenant), 30, "the second run's incident")
    assert old_id in incident and "scanner hit" in incident and "ghas" in incident
    assert f"event {COMPROMISED}" in incident
    [event] = wait_for(lambda: tenant_events(REVOKED_EVENT, tenant_id), 30, "the revoked event")
    assert event["key_ids"] == [old_id] and event["reported_by"] == "ghas"
    assert live_tool_keys(stack, tenant_id) == {store.read(tenant_id).key_id}
    [leak_event] = wait_for(
        lambda: tenant_events(REVOKED_EVENT, leaked_tenant), 30, "the leaked key's revoked event"
    )
    assert leak_event["key_ids"] == [leaked_id]
    print(f"event -> key rejected: {seconds:.2f} s (figures: benchmarks/revoke.py)")


def test_the_listener_alone_kills_on_report_before_any_flow_run(
    stack: LocalStack, tenant_id: str, tmp_path: Path
) -> None:
    """`python -m flows.revoke listen` with no runner, started as `tenant-keys up` starts it: a
    report kills the key through the listener alone (nothing replaces it: no flow run ran); a
    report about a tenant that does not exist is one line in its log, and the listener goes
    on."""
    old_id, old_key = _onboarded(tenant_id)
    log = tmp_path / "listen.log"
    with revoke_listener(stack.env(), log) as listener:
        time.sleep(5)  # connected: the stream replays only the minute before it connects
        assert listener.poll() is None, log.read_text()[-2000:]
        for tenant, reason in (("nosuch-tenant", "forged"), (tenant_id, "scanner hit")):
            sent = runner.invoke(app, ["report-compromise", tenant, "--reason", reason])
            assert sent.exit_code == 0, sent.output
        wait_for(lambda: not _works(old_key), 30, "the listener to kill the reported key")
        wait_for(lambda: f"tenant={tenant_id}" in log.read_text(), 10, "the kill's log line")
    text = log.read_text()
    assert f"killed {old_id}, rejected (401)" in text
    assert "not acted on" in text and "nosuch-tenant" in text
    assert get_services().store.read(tenant_id).key_id == old_id  # killed, not replaced
    assert old_key.get_secret_value() not in text


def test_the_listener_says_in_one_line_when_a_kill_did_not_finish(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every delete fails: the listener's line says so and leaves the rest to the flow run;
    a report naming a leaked key's fingerprint of no tenant is not acted on."""
    _, old_key = _onboarded(tenant_id)
    monkeypatch.setenv("TENANT_KEYS_REVOKE_DELETE_DEADLINE_SECONDS", "1")
    reset_services()
    report = Event(
        event=COMPROMISED,
        resource={"prefect.resource.id": f"tenant.{tenant_id}"},
        payload={"reason": "scanner hit", "scope": "current"},
    )
    stack.langsmith.control.inject_fault(
        method="DELETE", route=DELETE_ROUTE, status=503, count=None
    )
    try:
        failed = kill_on_report(report)
    finally:
        stack.langsmith.control.clear_faults()
        monkeypatch.undo()
        reset_services()
    assert f"tenant={tenant_id}" in failed and "kill failed (RevokeFailed" in failed, failed
    assert failed.endswith("its flow run retries")
    assert _works(old_key)  # honest: still alive, and the line says so

    unknown = kill_on_report(
        Event(
            event=COMPROMISED,
            resource={"prefect.resource.id": "tenant-keys.leak.0123456789abcdef"},
            payload={"key_fingerprint": "0" * 64},
        )
    )
    assert "not acted on" in unknown and _works(old_key)


def test_a_run_that_died_holding_the_lock_does_not_delay_the_kill(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation killed (`os._exit`) while it held the tenant's lock leaves a lease that lasts
    ~75 s. The revoke kills the key at once; only its replacement waits for the lock (here 2 s,
    then the tenant is marked without a key, loudly)."""
    old_id, old_key = _onboarded(tenant_id)
    holder = subprocess.run(
        [sys.executable, "-c", DIE_HOLDING_THE_LOCK, tenant_id],
        cwd=REPO,
        env=os.environ.copy(),
        timeout=60,
    )
    assert holder.returncode == 17
    monkeypatch.setenv("TENANT_KEYS_LOCK_WAIT_SECONDS", "2")
    reset_services()
    try:
        state = emergency_revoke(tenant_id, reason="leak while a run crashed", return_state=True)
    finally:
        monkeypatch.delenv("TENANT_KEYS_LOCK_WAIT_SECONDS")
        reset_services()

    assert not _works(old_key), "the key is dead although the lock was never free"
    assert state.is_failed() and "revoked-no-key" in (state.message or "")
    assert "still held" in (state.message or "")
    flush()
    [event] = wait_for(lambda: tenant_events(REVOKED_EVENT, tenant_id), 30, "the revoked event")
    assert event["key_ids"] == [old_id]
    assert event["seconds_to_rejected"] < 5, event["timeline"]
    assert get_services().store.describe(tenant_id).tags[TAG_STATUS] == STATUS_NO_KEY


DIE_HOLDING_THE_LOCK = """
import os, sys
from tasks.locks import tenant_locks
held = tenant_locks().hold([sys.argv[1]])  # kept referenced: collected, it would release
held.__enter__()
os._exit(17)
"""


def test_with_prefect_down_the_cli_revokes_anyway_and_sync_replays_the_incident(
    stack: LocalStack, tenant_id: str
) -> None:
    old_id, old_key = _onboarded(tenant_id)
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}

    down = subprocess.run(
        [sys.executable, "-m", "tenant_keys.cli", "revoke", tenant_id, "--reason", "prefect down"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stderr.count("\n") == 1 and "unreachable" in down.stderr, down.stderr
    assert "Traceback" not in down.stdout + down.stderr
    assert not _works(old_key)
    assert current_key_works(tenant_id) and get_services().store.read(tenant_id).key_id != old_id
    log = IncidentLog(get_services().settings.incident_dir)
    mine = [(p, i) for p, i in log.pending() if i.outcome.tenant_id == tenant_id]
    assert len(mine) == 1 and mine[0][1].break_glass
    assert incident_artifacts(tenant_id) == [], "nothing reached Prefect while it was down"

    synced = runner.invoke(app, ["incidents", "sync"])

    assert synced.exit_code == 0, synced.output
    assert f"synced {mine[0][1].outcome.incident_id}" in synced.output
    [incident] = incident_artifacts(tenant_id)
    assert old_id in incident and "break-glass" in incident and "prefect down" in incident
    flush()
    [event] = wait_for(lambda: tenant_events(REVOKED_EVENT, tenant_id), 30, "the revoked event")
    assert event["key_ids"] == [old_id]
    assert not [p for p, i in log.pending() if i.outcome.tenant_id == tenant_id]
    assert runner.invoke(app, ["incidents", "sync"]).exit_code == 0  # nothing left: a no-op


def test_revoke_from_the_leaked_key_itself(stack: LocalStack, tenant_id: str) -> None:
    _onboarded(f"{tenant_id}-x")
    old_id, old_key = _onboarded(tenant_id)

    result = runner.invoke(
        app,
        ["revoke", "--leaked-key", "-", "--reason", "found in a gist"],
        input=old_key.get_secret_value() + "\n",
    )

    assert result.exit_code == 0, result.output
    assert "refused by LangSmith (401)" in result.output
    assert not _works(old_key) and current_key_works(tenant_id)
    assert current_key_works(f"{tenant_id}-x")
    [incident] = incident_artifacts(tenant_id)
    assert old_id in incident

    stranger = "lsv2_sk_" + "0" * 32 + "_0123456789"
    before = _deletes(stack)
    nothing = runner.invoke(
        app, ["revoke", "--leaked-key", "-", "--reason", "x"], input=stranger + "\n"
    )
    assert nothing.exit_code == 2 and nothing.output.count("\n") == 1, nothing.output
    assert "matches no key of any tenant" in nothing.output
    assert _deletes(stack) == before


def test_no_plaintext_key_in_what_prefect_stored(stack: LocalStack, tenant_id: str) -> None:
    _, old_key = _onboarded(tenant_id)
    pasted = old_key.get_secret_value()
    # Careless reporters paste the leaked key into the wrong fields: refused before anything.
    for args in (
        ["revoke", tenant_id, "--reason", f"found {pasted} in a public gist"],
        ["report-compromise", tenant_id, "--reason", "x", "--key-id", pasted],
        ["report-compromise", tenant_id, "--reason", f"leak: {pasted}"],
        ["revoke", tenant_id, "--reason", "x", "--leaked-key", pasted],
    ):
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
        assert pasted not in refused.output
    assert current_key_works(tenant_id), "nothing was revoked on refused input"
    # The right way, and a failing replacement (its error text reaches Prefect).
    assert (
        runner.invoke(
            app, ["revoke", "--leaked-key", "-", "--reason", "gist"], input=pasted + "\n"
        ).exit_code
        == 0
    )
    stack.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", status=503, count=None
    )
    try:
        assert emergency_revoke(tenant_id, reason="again", return_state=True).is_failed()
    finally:
        stack.langsmith.control.clear_faults()
    flush()
    wait_for(
        lambda: (
            len(tenant_events(REVOKED_EVENT, tenant_id)) == 2
            and f"revoke-{tenant_id}" in prefect_storage_text(stack)
        ),
        30,
        "the server to persist this test's incidents",
    )
    assert assert_no_plaintext_in_prefect(stack) >= 2
