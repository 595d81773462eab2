"""Emitting events whose resource is not always a tenant: the admin key's, the posture report's
(`tenant_keys.events.event_resource`). Payload strings pass the key redactor as a last guard."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect.events import emit_event

from tenant_keys.events import TenantEvent, event_resource
from tenant_keys.redact import redact


def emit_about(events: Iterable[TenantEvent]) -> None:
    for event in events:
        emit_event(
            event=event.name, resource=event_resource(event), payload=_redacted(event.payload())
        )


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
