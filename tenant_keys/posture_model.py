"""The posture report's shape and its renderings (a table, markdown, CSV, JSON, events).

Evidence for an auditor: per tenant and for the admin key, how old the current key is, when it
was last rotated, whether an old key still lives, which incidents happened. Everything in it is
an id, a date, an age or a count: never a key, nor a short key. Assembling it from the outside
systems is `tenant_keys.posture`.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tenant_keys.events import PostureReportedEvent, PostureViolationEvent, TenantEvent

ViolationKind = Literal[
    "overdue",  # the current key is older than the policy allows
    "retire-stuck",  # a replaced key still exists past its grace window: its retire failed
    "orphan",  # a key the tool minted that no secret holds
    "incident",  # an emergency revoke happened in the window
    "retired-key-used",  # a retired key made a request after its retirement (audit log)
    "no-key",  # the current key does not work: tracing is off
    "needs-attention",  # a conflict or an unreadable secret (reconcile will not act)
    "admin-key-unmanaged",  # the admin key comes from the environment: never rotated
]
ADMIN_SUBJECT = "(admin key)"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Violation(_Frozen):
    """One finding that needs a human. `tenant_id` None: about the admin key."""

    kind: ViolationKind
    tenant_id: str | None = None
    key_id: str | None = None
    detail: str

    @property
    def subject(self) -> str:
        return self.tenant_id or ADMIN_SUBJECT


class IncidentRecord(_Frozen):
    """An emergency revoke, as Prefect's incident artifact or a break-glass file records it."""

    tenant_id: str
    incident_id: str
    at: datetime
    outcome: str
    source: Literal["prefect", "break-glass"]


class AuditStatus(_Frozen):
    """Whether LangSmith's audit log was read, and how much of it."""

    available: bool
    note: str = ""
    since: datetime | None = None
    records: int = 0
    truncated: bool = False


class KeyPosture(_Frozen):
    """The facts about one secret's keys: a tenant's or the admin key's."""

    current_key_id: str | None = None
    key_issued_at: datetime | None = None
    key_age_days: float | None = None
    last_rotated_at: datetime | None = None  # None: never rotated since it was issued first
    rotation_id: str | None = None
    overdue: bool = False
    pending_rotation_id: str | None = None  # an unfinished rotation
    retire_pending_key_id: str | None = None  # the replaced key, still alive: its retire is due
    retire_stuck: bool = False
    orphan_key_ids: list[str] = Field(default_factory=list)
    # The key the last rotation replaced, whether LangSmith still lists it, and its last use.
    retired_key_id: str | None = None
    retired_at: datetime | None = None
    retired_key_alive: bool | None = None
    retired_key_last_used_at: datetime | None = None


class TenantPosture(KeyPosture):
    tenant_id: str
    status: str  # active | offboarding | absent | scheduled-for-deletion | unreadable
    isolation: str | None = None
    budget: int | None = None
    quota_status: str | None = None
    incident_ids: list[str] = Field(default_factory=list)
    violations: list[ViolationKind] = Field(default_factory=list)


class AdminPosture(KeyPosture):
    source: Literal["secret", "environment"]
    secret: str | None = None
    kind: str | None = None
    violations: list[ViolationKind] = Field(default_factory=list)


class PostureReport(_Frozen):
    generated_at: datetime
    window_start: datetime
    max_key_age_days: float
    max_admin_key_age_days: float
    admin: AdminPosture
    tenants: list[TenantPosture]
    incidents: list[IncidentRecord]
    incident_source: str  # where the incidents were read
    audit: AuditStatus
    violations: list[Violation]

    @property
    def clean(self) -> bool:
        return not self.violations

    def events(self, report_id: str) -> list[TenantEvent]:
        """A `tenant-keys.posture.violation` per violation (none on a clean report), then the
        `tenant-keys.posture.reported` that every run emits."""
        found: list[TenantEvent] = [
            PostureViolationEvent(
                tenant_id=v.tenant_id or "",
                report_id=report_id,
                kind=v.kind,
                key_id=v.key_id,
                detail=v.detail,
            )
            for v in self.violations
        ]
        found.append(
            PostureReportedEvent(
                report_id=report_id, tenants=len(self.tenants), violations=len(self.violations)
            )
        )
        return found

    def summary(self) -> str:
        overdue = sum(t.overdue for t in self.tenants)
        text = (
            f"posture of {len(self.tenants)} tenant(s) and the admin key: "
            f"{len(self.violations)} violation(s)"
        )
        if self.violations:
            kinds = sorted({v.kind for v in self.violations})
            text += f" ({', '.join(kinds)}); {overdue} tenant key(s) overdue"
        return text

    def rows(self) -> list[dict[str, str | float | int | bool | None]]:
        """One flat row per subject, the admin key first: the table artifact, CSV and the CLI."""
        rows = [_row(ADMIN_SUBJECT, self.admin, self.admin.source, self.admin.kind, None, None)]
        for t in self.tenants:
            row = _row(t.tenant_id, t, t.status, t.isolation, t.budget, t.quota_status)
            row["incidents"] = " ".join(t.incident_ids)
            rows.append(row)
        return rows

    def csv(self) -> str:
        rows = self.rows()
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def markdown(self) -> str:
        lines = [
            "# Key posture",
            "",
            f"Generated {_iso(self.generated_at)}; window from {_iso(self.window_start)}; "
            f"tenant keys older than {self.max_key_age_days:g} days and the admin key older "
            f"than {self.max_admin_key_age_days:g} days are overdue.",
            "",
            f"**{self.summary()}**",
            "",
            "## Violations",
            "",
        ]
        if self.violations:
            lines += ["| subject | kind | key id | detail |", "|---|---|---|---|"]
            lines += [
                f"| {_cell(v.subject)} | {v.kind} | {v.key_id or '-'} | {_cell(v.detail)} |"
                for v in self.violations
            ]
        else:
            lines.append("None.")
        a = self.admin
        lines += [
            "",
            "## Admin key",
            "",
            f"From the {a.source}{f' ({a.secret})' if a.secret else ''}, {a.kind or 'kind unknown'}"
            f": key {a.current_key_id or '-'}, {_days(a.key_age_days)} old, last rotated "
            f"{_iso(a.last_rotated_at)}.",
            "",
            "## Evidence sources",
            "",
            f"- Incidents: {self.incident_source} ({len(self.incidents)} in the window).",
            f"- LangSmith audit log: {_audit(self.audit)}.",
            "",
            "Every value here is an id, a date or an age: never a key.",
        ]
        return "\n".join(lines) + "\n"


def _row(
    subject: str,
    p: KeyPosture,
    status: str,
    kind: str | None,
    budget: int | None,
    quota: str | None,
) -> dict[str, str | float | int | bool | None]:
    violations: list[str] = list(getattr(p, "violations", []))
    return {
        "subject": subject,
        "status": status,
        "isolation": kind,
        "current_key_id": p.current_key_id,
        "key_issued_at": _iso(p.key_issued_at) if p.key_issued_at else None,
        "key_age_days": p.key_age_days,
        "last_rotated_at": _iso(p.last_rotated_at) if p.last_rotated_at else None,
        "overdue": p.overdue,
        "pending_rotation_id": p.pending_rotation_id,
        "retire_pending_key_id": p.retire_pending_key_id,
        "retire_stuck": p.retire_stuck,
        "orphan_key_ids": " ".join(p.orphan_key_ids),
        "retired_key_id": p.retired_key_id,
        "retired_key_alive": p.retired_key_alive,
        "retired_key_last_used_at": (
            _iso(p.retired_key_last_used_at) if p.retired_key_last_used_at else None
        ),
        "budget": budget,
        "quota_status": quota,
        "incidents": "",
        "violations": " ".join(violations),
    }


def _iso(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else "never"


def _days(days: float | None) -> str:
    return "?" if days is None else f"{days:.1f} days"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _audit(audit: AuditStatus) -> str:
    if not audit.available:
        return f"not read ({audit.note})"
    since = f" since {_iso(audit.since)}" if audit.since else ""
    more = ", truncated" if audit.truncated else ""
    return f"{audit.records} record(s) read{since}{more}"
