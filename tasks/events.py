"""Emitting the core's events to Prefect, each about its tenant, the admin key or the tool
(`tenant_keys.events.event_resource`). Payload strings pass the key redactor as a last guard."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prefect.events import emit_event
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogHandler

from tenant_keys.events import TenantEvent, event_resource
from tenant_keys.redact import redact


def emit(events: Iterable[TenantEvent], *, occurred: datetime | None = None) -> None:
    for event in events:
        emit_event(
            event=event.name,
            resource=event_resource(event),
            payload=_redacted(event.payload()),
            occurred=occurred,
        )


def flush() -> None:
    """Send the buffered events and logs now (a short-lived process, before it exits; a
    server about to stop)."""
    EventsWorker.drain_all(timeout=10)
    APILogHandler().flush()


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
