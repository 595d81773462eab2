"""The events tenant-keys emits (and the one it reacts to): names and payloads, in one place.

The core protocols return these; the Prefect shells emit them (`tasks/events.py`), and the
break-glass path records them to replay later. Each event is about one tenant (resource
`tenant.<id>`). Payloads hold ids, short keys, counts and times, never a key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

RESOURCE_PREFIX = "tenant."
# A report that names no tenant (only a leaked key's fingerprint) is about this resource.
LEAK_RESOURCE_PREFIX = "tenant-keys.leak."
COMPROMISED = "security.key.compromised"


def tenant_resource(tenant_id: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"{RESOURCE_PREFIX}{tenant_id}",
        "prefect.resource.name": tenant_id,
    }


class TenantEvent(BaseModel):
    """An event about one tenant; subclasses name it (`NAME`) and declare the payload."""

    model_config = ConfigDict(frozen=True)

    NAME: ClassVar[str]
    tenant_id: str

    @property
    def name(self) -> str:
        return self.NAME

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"tenant_id"})


class KeyCompromisedEvent(TenantEvent):
    """The trigger of the emergency revoke (emitted by scanners, SIEM rules, the CLI)."""

    NAME = COMPROMISED
    reason: str
    scope: str = "current"
    reported_by: str = ""
    key_id: str | None = None
    # SHA-256 of a leaked key: names it without carrying it (`tenant_keys.fingerprint`).
    key_fingerprint: str | None = None


class TenantOnboardedEvent(TenantEvent):
    NAME = "tenant-keys.tenant.onboarded"
    project_id: str
    key_id: str
    short_key: str
    trace_budget: int
    isolation: str
    workspace_id: str | None


class TenantOffboardedEvent(TenantEvent):
    NAME = "tenant-keys.tenant.offboarded"
    revoked_key_ids: list[str]
    secret: str
    project: str
    project_id: str | None


class TenantMigratedEvent(TenantEvent):
    NAME = "tenant-keys.tenant.migrated"
    workspace_id: str | None
    project_id: str
    key_id: str
    revoked_key_ids: list[str]


class KeyRotatedEvent(TenantEvent):
    NAME = "tenant-keys.key.rotated"
    rotation_id: str
    key_id: str


class RetireFailedEvent(TenantEvent):
    """An old key survived its retire: the label stays, reconcile retries (an alarm)."""

    NAME = "tenant-keys.retire.failed"
    key_id: str | None
    error: str


class RetireOverdueEvent(TenantEvent):
    """A key has waited longer than a day to be retired: retires keep failing."""

    NAME = "tenant-keys.retire.overdue"
    key_id: str
    rotation_id: str
    waiting_hours: float


class IncidentEvent(TenantEvent):
    """What an emergency revoke did (the incident record's summary)."""

    incident_id: str
    outcome: str
    scope: str
    key_ids: list[str]
    short_keys: list[str]
    replacement_key_id: str | None
    reason: str
    reported_by: str
    trigger: str
    seconds_to_rejected: float | None
    timeline: dict[str, float]
    error: str | None = None


class KeyRevokedEvent(IncidentEvent):
    """Every suspect key is shown dead (whatever happened to the replacement)."""

    NAME = "tenant-keys.key.revoked"


class TenantNoKeyEvent(IncidentEvent):
    """The suspects are dead but no replacement works: the tenant's tracing is off."""

    NAME = "tenant-keys.tenant.no-key"


class RevokeFailedEvent(IncidentEvent):
    """A suspect key may still work."""

    NAME = "tenant-keys.revoke.failed"


QuotaStatus = Literal["ok", "warning", "exceeded"]


class QuotaChangedEvent(TenantEvent):
    """A tenant's quota status changed; the name says to what."""

    status: QuotaStatus
    previous: QuotaStatus
    project_id: str | None
    traces: int | None
    budget: int
    percent_used: float | None
    window_start: datetime
    usage_limit: int | None = None

    @property
    def name(self) -> str:
        return QUOTA_EVENTS[self.status]


QUOTA_EVENTS: dict[QuotaStatus, str] = {
    "warning": "tenant-keys.quota.warning",
    "exceeded": "tenant-keys.quota.exceeded",
    "ok": "tenant-keys.quota.recovered",
}


class RepairEvent(TenantEvent):
    """One repair of the reconcile sweep (`tenant-keys.reconcile.<kind>`)."""

    kind: str
    outcome: str
    key_id: str | None = None
    rotation_id: str | None = None
    new_key_id: str | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return f"tenant-keys.reconcile.{self.kind}"


# -- the admin key and the posture report (README: "The admin key", "Posture report") ----------

ADMIN_KEY_RESOURCE_ID = "tenant-keys.admin-key"
POSTURE_RESOURCE_ID = "tenant-keys.posture"


class ToolEvent(TenantEvent):
    """An event about the tool itself rather than a tenant: its resource is `RESOURCE_ID`."""

    RESOURCE_ID: ClassVar[str]
    tenant_id: str = ""


class AdminKeyEvent(ToolEvent):
    """About the tool's LangSmith admin key (resource `tenant-keys.admin-key`)."""

    RESOURCE_ID = ADMIN_KEY_RESOURCE_ID


class AdminKeyRotatedEvent(AdminKeyEvent):
    NAME = "tenant-keys.admin-key.rotated"
    rotation_id: str
    key_id: str
    old_key_id: str | None = None


class AdminRetireFailedEvent(AdminKeyEvent):
    """The old admin key survived its retire: LangSmith still lists it, the current record names
    it, and the next `rotate-admin` retries it (an alarm)."""

    NAME = "tenant-keys.admin-key.retire-failed"
    key_id: str | None
    error: str


class PostureViolationEvent(TenantEvent):
    """One finding of the posture report that needs a human; automations page on it. About a
    tenant, or (`tenant_id` "") the admin key."""

    NAME = "tenant-keys.posture.violation"
    report_id: str
    kind: str  # overdue | retire-stuck | orphan | incident | retired-key-used | no-key | ...
    key_id: str | None = None
    detail: str


class PostureReportedEvent(ToolEvent):
    """A posture report ran, clean or not: an automation can alarm when it stops arriving."""

    NAME = "tenant-keys.posture.reported"
    RESOURCE_ID = POSTURE_RESOURCE_ID
    report_id: str
    tenants: int
    violations: int


def event_resource(event: TenantEvent) -> dict[str, str]:
    """The resource an event is about: its tenant, the admin key, or the tool."""
    if isinstance(event, ToolEvent):
        return {"prefect.resource.id": event.RESOURCE_ID}
    if not event.tenant_id:
        return {"prefect.resource.id": ADMIN_KEY_RESOURCE_ID}
    return tenant_resource(event.tenant_id)
