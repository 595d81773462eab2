"""Events tenant-keys emits to Prefect. Payloads carry ids and short keys, never keys."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

from tenant_keys.redact import redact


def tenant_resource(tenant_id: str) -> dict[str, str]:
    return {"prefect.resource.id": f"tenant.{tenant_id}", "prefect.resource.name": tenant_id}


def emit_tenant_event(event: str, tenant_id: str, **payload: Any) -> None:
    """Emit `event` about a tenant; payload strings pass through the key redactor as a last guard."""
    clean = {k: redact(v) if isinstance(v, str) else v for k, v in payload.items()}
    emit_event(event=event, resource=tenant_resource(tenant_id), payload=clean)
