"""Automations as code on the session's Prefect server: created idempotently, and each one
delivers a notification to a webhook receiver on loopback when its event happens for real
(a failed rotation, an overdue retire seen by reconcile, a revoke); the quota event is emitted
directly, since the quota flow's own events are tested in test_quota.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from devstack.notify_receiver import Notification, NotificationReceiver
from devstack.stack import LocalStack
from flows.reconcile import reconcile
from flows.revoke import emergency_revoke
from flows.rotation import rotate_keys
from tasks.automations import ALERTS, BLOCK_NAME, apply_automations
from tasks.events import emit, flush
from tenant_keys.cli import app
from tenant_keys.events import QuotaChangedEvent, RetireOverdueEvent
from tenant_keys.rotation import rotate
from tenant_keys.services import get_services
from tests.integration.revoke_helpers import tenant_events, wait_for
from tests.integration.tenants import onboard_directly

pytestmark = pytest.mark.usefixtures("stack")
runner = CliRunner()


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    with NotificationReceiver() as receiver:
        yield receiver


@pytest.fixture
def automations(receiver: NotificationReceiver) -> Iterator[list[tuple[str, str]]]:
    """The automations pointing at this test's receiver, removed afterwards so later tests
    on the shared server do not notify a closed port."""
    yield apply_automations(receiver.url)
    with get_client(sync_client=True) as client:
        for alert in ALERTS:
            for automation in client.read_automations_by_name(alert.name):
                client.delete_automation(automation.id)


def _about(receiver: NotificationReceiver, tenant_id: str, subject: str) -> list[Notification]:
    return [
        n
        for n in receiver.received()
        if subject in n.get("subject", "") and tenant_id in n.get("text", "")
    ]


def test_applying_twice_keeps_one_automation_per_alert(
    automations: list[tuple[str, str]], receiver: NotificationReceiver
) -> None:
    assert [name for name, _ in automations] == [a.name for a in ALERTS]

    again = apply_automations(receiver.url)

    assert [change for _, change in again] == ["updated"] * len(ALERTS)
    with get_client(sync_client=True) as client:
        for alert in ALERTS:
            [automation] = client.read_automations_by_name(alert.name)
            [action] = automation.actions
            assert action.type == "send-notification" and automation.enabled
        block = client.read_block_document_by_name(
            BLOCK_NAME, "custom-webhook", include_secrets=False
        )
    assert receiver.url not in json.dumps(block.data, default=str), "the URL stays in secrets"


def test_each_alert_reaches_the_webhook(
    stack: LocalStack,
    tenant_id: str,
    automations: list[tuple[str, str]],
    receiver: NotificationReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [onboarded] = onboard_directly([tenant_id])
    services = get_services()

    # An overdue retire, as reconcile finds it: the key a rotation replaced, still alive, and
    # (so the test need not wait a day) an overdue threshold of zero.
    rotate(services, tenant_id, "r-leave-pending", retire_now=False)
    assert services.store.read(tenant_id).previous_key_id == onboarded.key_id
    monkeypatch.setattr("tenant_keys.reconcile.RETIRE_OVERDUE_AFTER", timedelta(0))
    assert reconcile([tenant_id], apply=False, return_state=True).is_completed()

    exceeded = QuotaChangedEvent(
        tenant_id=tenant_id,
        status="exceeded",
        previous="warning",
        project_id=None,
        traces=120,
        budget=100,
        percent_used=120.0,
        window_start=datetime(2026, 1, 1, tzinfo=UTC),
    )
    emit([exceeded])
    assert emergency_revoke(tenant_id, reason="automation drill", return_state=True).is_completed()

    # A failed rotation: LangSmith refuses to mint (403 is not retried).
    stack.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", status=403, count=None
    )
    try:
        assert rotate_keys([tenant_id], rotation_id="r-doomed", return_state=True).is_failed()
    finally:
        stack.langsmith.control.clear_faults()
    flush()

    [overdue] = wait_for(
        lambda: tenant_events(RetireOverdueEvent.NAME, tenant_id), 30, "the overdue event"
    )
    assert overdue["key_id"] == onboarded.key_id
    expected = {
        "retire overdue": onboarded.key_id,
        "quota exceeded": "used 120 of 100 traces",
        "key revoked": "automation drill",
        "rotation": "failed",
    }
    for subject, detail in expected.items():
        [note] = wait_for(
            partial(_about, receiver, tenant_id, subject), 90, f"the '{subject}' notification"
        )
        assert detail in note["text"], note
    text = json.dumps(receiver.received())
    record = services.store.read(tenant_id)
    assert record.api_key.get_secret_value() not in text, "never a key in a notification"


def test_the_command_needs_a_target_before_doing_anything() -> None:
    result = runner.invoke(app, ["automations"], env={"TENANT_KEYS_NOTIFY_WEBHOOK_URL": ""})
    assert result.exit_code == 2
    assert "TENANT_KEYS_NOTIFY_WEBHOOK_URL" in result.output

    result = runner.invoke(app, ["automations", "--webhook-url", "hooks.example.com/x"])
    assert result.exit_code == 2 and "https://" in result.output
    with get_client(sync_client=True) as client:
        assert not client.read_automations_by_name(ALERTS[0].name), "nothing was created"
