"""Automations as code: the Prefect automations that tell a human when tenant keys need one.

`apply_automations(webhook_url)` saves one notification block (`tenant-keys-notify`, a Prefect
Custom Webhook that POSTs JSON `{"text", "subject", "body"}`: Slack's incoming webhooks read
`text`) and creates or updates, by name, one automation per alert in `ALERTS`. Running it again
changes nothing but what differs, so it is safe in CI or at every start of the stack.

Prefect OSS runs these: event triggers, and the `send-notification` action, which the server's
actions service carries out. Message templates use event fields only (ids, names, counts),
never a key; the payloads they read are already redacted when emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client

from tenant_keys.events import QUOTA_EVENTS, KeyRevokedEvent, RetireOverdueEvent

BLOCK_NAME = "tenant-keys-notify"
ROTATION_FLOW = "rotate-keys"
TENANT_RESOURCES = {"prefect.resource.id": "tenant.*"}


@dataclass(frozen=True)
class Alert:
    """One automation: when it fires and what the notification says."""

    name: str
    description: str
    trigger: EventTrigger
    subject: str
    body: str


def _on_tenant_event(event: str) -> EventTrigger:
    return EventTrigger(
        expect={event},
        match=TENANT_RESOURCES,
        for_each={"prefect.resource.id"},
        posture=Posture.Reactive,
        threshold=1,
    )


ALERTS: list[Alert] = [
    Alert(
        name="tenant-keys: rotation failed",
        description="A rotate-keys flow run failed or crashed: some tenant kept its old key.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": ROTATION_FLOW},
            posture=Posture.Reactive,
            threshold=1,
        ),
        subject="tenant-keys: rotation {{ flow_run.name }} {{ flow_run.state.name }}",
        body=(
            "Rotation run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
            "{{ flow_run.state.message }}. Runbook: docs/runbook.md, 'A rotation failed'. "
            "Run: {{ flow_run|ui_url }}"
        ),
    ),
    Alert(
        name="tenant-keys: retire overdue",
        description="A key has waited more than a day to be retired (seen by reconcile).",
        trigger=_on_tenant_event(RetireOverdueEvent.NAME),
        subject="tenant-keys: retire overdue for {{ event.resource.name }}",
        body=(
            "Tenant {{ event.resource.name }}: key {{ event.payload.key_id }} has waited "
            "{{ event.payload.waiting_hours }} h to be retired. Runbook: docs/runbook.md, "
            "'A retire failed'."
        ),
    ),
    Alert(
        name="tenant-keys: quota exceeded",
        description="A tenant went over its trace budget (check-quotas).",
        trigger=_on_tenant_event(QUOTA_EVENTS["exceeded"]),
        subject="tenant-keys: quota exceeded for {{ event.resource.name }}",
        body=(
            "Tenant {{ event.resource.name }} used {{ event.payload.traces }} of "
            "{{ event.payload.budget }} traces since {{ event.payload.window_start }}."
        ),
    ),
    Alert(
        name="tenant-keys: key revoked",
        description="Every emergency revoke, whatever triggered it.",
        trigger=_on_tenant_event(KeyRevokedEvent.NAME),
        subject="tenant-keys: key revoked for {{ event.resource.name }}",
        body=(
            "Tenant {{ event.resource.name }}: {{ event.payload.outcome }}; revoked key(s) "
            "{{ event.payload.key_ids | join(', ') }}, replacement "
            "{{ event.payload.replacement_key_id }}. Reason: {{ event.payload.reason }} "
            "(reported by {{ event.payload.reported_by }}). Incident {{ event.payload.incident_id }}."
        ),
    ),
]


def save_notify_block(webhook_url: str) -> UUID:
    """Create or overwrite the notification block; returns its id.

    The URL sits in the block's encrypted `secrets` and is substituted at send time, so the
    block's plain fields (shown in the UI) never show a Slack token.
    """
    block = CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url="{{webhook_url}}",
        method="POST",
        json_data={"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"},
        secrets={"webhook_url": webhook_url},
    )
    block_id = block.save(BLOCK_NAME, overwrite=True)
    assert isinstance(block_id, UUID)  # saved from sync code: the sync variant ran
    return block_id


def apply_automations(webhook_url: str) -> list[tuple[str, str]]:
    """Make the server's automations match `ALERTS`; returns (name, "created"|"updated")."""
    block_id = save_notify_block(webhook_url)
    done: list[tuple[str, str]] = []
    for alert in ALERTS:
        wanted = Automation(
            name=alert.name,
            description=alert.description,
            enabled=True,
            trigger=alert.trigger,
            actions=[
                SendNotification(block_document_id=block_id, subject=alert.subject, body=alert.body)
            ],
        )
        existing = _by_name(alert.name)
        if existing:
            wanted.id = existing[0]
            wanted.update()
            for duplicate in existing[1:]:  # left by a racing run: one automation per alert
                _delete(duplicate)
            done.append((alert.name, "updated"))
        else:
            wanted.create()
            done.append((alert.name, "created"))
    return done


def _by_name(name: str) -> list[UUID]:
    with get_client(sync_client=True) as client:
        return [a.id for a in client.read_automations_by_name(name)]


def _delete(automation_id: UUID) -> None:
    with get_client(sync_client=True) as client:
        client.delete_automation(automation_id)
