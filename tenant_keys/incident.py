"""The record of an emergency revoke: what was revoked, when, why, how long it took.

The Prefect shell turns it into a markdown artifact and events; the break-glass path (Prefect
down) writes it as JSON to a local folder, and `tenant-keys incidents sync` replays it into
Prefect once the server is back. Ids, short keys and times only, never a key.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from tenant_keys.errors import BadInput
from tenant_keys.events import (
    IncidentEvent,
    KeyRevokedEvent,
    RevokeFailedEvent,
    TenantEvent,
    TenantNoKeyEvent,
)
from tenant_keys.redact import redact
from tenant_keys.revocation import RevokeOutcome


class IncidentDetails(BaseModel):
    reason: str
    reported_by: str
    trigger: str
    reported_at: datetime
    started_at: datetime

    @classmethod
    def of(
        cls,
        *,
        reason: str,
        reported_by: str | None,
        trigger: str,
        reported_at: str | None,
        started_at: datetime,
    ) -> IncidentDetails:
        """From what a caller or an event gave: free text redacted (someone may paste the leaked
        key itself), the report time parsed (ISO 8601; none: the start)."""
        return cls(
            reason=redact(reason.strip())[:500] or "(no reason given)",
            reported_by=redact((reported_by or "").strip())[:200] or "(unknown)",
            trigger=redact(trigger.strip()) or "flow run",
            reported_at=parse_reported_at(reported_at) or started_at,
            started_at=started_at,
        )


def parse_reported_at(value: str | None) -> datetime | None:
    """The report time of an event (`event.occurred`, rendered as text), or None."""
    if not value or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(
            f"reported_at {value!r} is not an ISO 8601 time: pass e.g. 2025-01-31T12:00:00+00:00"
        ) from None


class Incident(BaseModel):
    outcome: RevokeOutcome
    details: IncidentDetails
    # Set on a break-glass revoke: Prefect was down, the record waits for `incidents sync`.
    break_glass: bool = False

    @property
    def seconds_to_rejected(self) -> float | None:
        if self.outcome.rejected_at is None:
            return None
        return round((self.outcome.rejected_at - self.details.reported_at).total_seconds(), 3)

    def timeline(self) -> list[tuple[str, datetime, float]]:
        """(step, time, seconds since the report) of each step the revoke reached."""
        o, d = self.outcome, self.details
        steps = [
            ("reported", d.reported_at),
            ("revoke started", d.started_at),
            ("keys deleted", o.killed_at),
            ("keys rejected (401)", o.rejected_at),
            ("tenant lock acquired", o.lock_acquired_at),
            ("replacement stored", o.replaced_at),
            ("replacement verified", o.verified_at),
        ]
        return [
            (step, at, round((at - d.reported_at).total_seconds(), 3))
            for step, at in steps
            if at is not None
        ]

    def events(self) -> list[TenantEvent]:
        o, d = self.outcome, self.details
        fields = {
            "tenant_id": o.tenant_id,
            "incident_id": o.incident_id,
            "outcome": o.status,
            "scope": o.scope,
            "key_ids": [k.key_id for k in o.revoked],
            "short_keys": [k.short_key for k in o.revoked if k.short_key],
            "replacement_key_id": o.replacement_key_id,
            "reason": d.reason,
            "reported_by": d.reported_by,
            "trigger": d.trigger,
            "seconds_to_rejected": self.seconds_to_rejected,
            "timeline": {step: since for step, _, since in self.timeline()},
        }
        found: list[IncidentEvent] = []
        if o.rejected_at is not None:
            found.append(KeyRevokedEvent(**fields))
        if o.status == "revoked-no-key":
            found.append(TenantNoKeyEvent(**fields, error=o.error))
        if o.status == "not-revoked":
            found.append(RevokeFailedEvent(**fields, error=o.error))
        return list(found)

    def summary(self) -> str:
        o = self.outcome
        seconds = self.seconds_to_rejected
        dead = f", rejected {seconds:.2f} s after the report" if seconds is not None else ""
        return f"revoke of {o.tenant_id} ({o.scope}): {o.status}, {len(o.revoked)} key(s){dead}"

    def markdown(self) -> str:
        o, d = self.outcome, self.details
        seconds = self.seconds_to_rejected
        rows = [
            ("incident", o.incident_id),
            ("outcome", f"**{o.status}**: {_HEADLINES[o.status]}"),
            ("reason", d.reason),
            ("reported by", d.reported_by),
            (
                "trigger",
                d.trigger + (" (break-glass: Prefect was down)" if self.break_glass else ""),
            ),
            ("scope", o.scope),
            ("replacement key id", o.replacement_key_id or "-"),
            ("replacement short key", o.replacement_short_key or "-"),
            ("seconds from report to key rejected", "-" if seconds is None else f"{seconds:.3f}"),
        ]
        if o.not_owned:
            rows.append(("not this tenant's (left alone)", ", ".join(o.not_owned)))
        if o.error:
            rows.append(("error", o.error))
        lines = [f"# Emergency revoke: tenant `{o.tenant_id}`", "", "| | |", "|---|---|"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
        lines += ["", "## Keys revoked", "", "| key id | short key | held as | deleted now |"]
        lines += ["|---|---|---|---|"]
        for key in o.revoked:
            held = ", ".join(key.labels) or "(LangSmith only)"
            deleted = "yes" if key.deleted else "already gone"
            lines.append(f"| {key.key_id} | {_cell(key.short_key or '-')} | {held} | {deleted} |")
        if not o.revoked:
            lines.append("| - | - | - | - |")
        lines += ["", "## Timeline (UTC)", "", "| step | at | seconds since report |"]
        lines += ["|---|---|---|"]
        for step, at, since in self.timeline():
            lines.append(f"| {step} | {at.isoformat(timespec='milliseconds')} | {since:.3f} |")
        return "\n".join(lines) + "\n"


_HEADLINES = {
    "revoked": "suspect key(s) dead, replacement stored and verified",
    "revoked-no-key": "suspect key(s) dead, NO WORKING KEY: the tenant's tracing is off",
    "not-revoked": "REVOKE FAILED: a suspect key may still work",
}


def _cell(text: str) -> str:
    return redact(text).replace("|", "\\|").replace("\n", " ")


class IncidentLog:
    """Break-glass incident records waiting to be replayed into Prefect: one JSON file each,
    `<incident id>.json`, renamed `.synced.json` once replayed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, incident: Incident) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{incident.outcome.incident_id}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(incident.model_dump_json(indent=2))
        os.replace(temporary, path)  # a crash mid-write never leaves half a record
        return path

    def pending(self) -> list[tuple[Path, Incident]]:
        if not self.folder.is_dir():
            return []
        return [
            (path, Incident.model_validate(json.loads(path.read_text())))
            for path in sorted(self.folder.glob("*.json"))
            if not path.name.endswith(".synced.json")
        ]

    def mark_synced(self, path: Path) -> None:
        os.replace(path, path.with_name(path.name.removesuffix(".json") + ".synced.json"))
