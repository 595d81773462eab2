"""Emitting the core's events to Prefect, each about its tenant, the admin key or the tool
(`tenant_keys.events.event_resource`). Payload strings pass the key redactor as a last guard.

`emit` hands each event to Prefect's events worker, which relates it to the run and streams
it. A fan-out's batch sends its tenants' events in one request instead (`emit_batch`): through
the worker, an event per tenant was a fifth of a rotated tenant's CPU, in this process and
the server together (README, "Where the work runs").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from prefect.client.orchestration import get_client
from prefect.events import Event, emit_event
from prefect.events.related import related_resources_from_run_context
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogHandler
from prefect.utilities.asyncutils import run_coro_as_sync

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


def emit_batch(events: Sequence[tuple[TenantEvent, datetime]]) -> None:
    """Send (event, when it occurred) pairs in one request, each related to the run and task
    it came from as the events worker would relate it. Raises `httpx.HTTPError` if the server
    does not take them (after the Prefect client's own retries)."""
    if not events:
        return
    with get_client(sync_client=True) as client:
        related = run_coro_as_sync(_run_related())
        body = [
            Event(
                occurred=occurred,
                event=event.name,
                resource=event_resource(event),
                related=related,
                payload=_redacted(event.payload()),
            ).model_dump(mode="json")
            for event, occurred in events
        ]
        client.request("POST", "/events", json=body).raise_for_status()


async def _run_related() -> list[Any]:
    async with get_client() as client:
        return await related_resources_from_run_context(client)


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
