"""The posture report (README, "Posture report"), assembled from what the tool can read, without
Prefect and without changing anything:

- every tenant's secret and the tool's keys at LangSmith, through reconcile's survey (read only):
  the current key's age, an unfinished rotation, the key the current one replaced still listed
  past its grace window, orphans, a dead current key, conflicts;
- the key each tenant's last rotation replaced (the current record's `previous_key_id`), and
  whether LangSmith still lists it;
- the admin key's secret, and the admin keys LangSmith lists;
- LangSmith's audit log, where the admin key may read it: the last request each retired key
  made, so one used after its retirement stands out;
- the incidents the caller found (Prefect's incident artifacts, or the break-glass files).

The report holds ids, dates and ages only; the flow turns it into artifacts and events.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from tenant_keys.admin_keys import AdminScope
from tenant_keys.admin_layout import INIT_ROTATION_PREFIX, parse_admin_description
from tenant_keys.errors import BadInput, Forbidden, LangSmithError, NotFound
from tenant_keys.incident import Incident
from tenant_keys.keys import KeyHome
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import (
    CURRENT,
    PENDING,
    STATUS_NO_KEY,
    TAG_BUDGET,
    TAG_QUOTA_STATUS,
    TAG_STATUS,
    TAG_STATUS_KEY,
)
from tenant_keys.models import utcnow
from tenant_keys.onboarding import ONBOARDING_ROTATION
from tenant_keys.posture_model import (
    AdminPosture,
    AuditStatus,
    IncidentRecord,
    PostureReport,
    TenantPosture,
    Violation,
    ViolationKind,
)
from tenant_keys.reconcile import DEFAULT_ORPHAN_MIN_AGE_SECONDS, make_policy, survey
from tenant_keys.reconcile_plan import Repair, TenantSnapshot, liveness_from_list
from tenant_keys.services import Services

# The rotation id reconcile's plan is given: the report only reads the plan, never acts on it.
REPORT_ROTATION = "posture-report"
DEFAULT_WINDOW_DAYS = 30.0
# Audit log pages read at most (100 records each); the report says when it stopped short.
AUDIT_MAX_PAGES = 200


def build_report(
    services: Services,
    *,
    incidents: Iterable[IncidentRecord],
    incident_source: str,
    window_days: float = DEFAULT_WINDOW_DAYS,
    orphan_min_age_seconds: float = DEFAULT_ORPHAN_MIN_AGE_SECONDS,
    now: datetime | None = None,
    audit_max_pages: int = AUDIT_MAX_PAGES,
) -> PostureReport:
    settings = services.settings
    if not window_days > 0:
        raise BadInput(f"window_days={window_days} is out of range: give a number of days above 0")
    policy = make_policy(settings, 0.0, orphan_min_age_seconds)  # checks the orphan age too
    now = now or utcnow()
    window_start = now - timedelta(days=window_days)

    found = survey(services, None, policy, REPORT_ROTATION)
    tags = dict(services.store.iter_tenant_tags())
    live = {key_id for key_id, ok in liveness_from_list(found.keys, now).items() if ok}
    active = [s for s in found.snapshots if s.status == "active"]
    admin = _admin_posture(services, now, policy.orphan_min_age)
    # Incidents of the tenants this report covers (a secret, or keys at LangSmith): a Prefect
    # server shared with another installation holds that one's incidents too.
    known = {s.tenant_id for s in found.snapshots}
    in_window = sorted(
        (i for i in incidents if i.at >= window_start and i.tenant_id in known),
        key=lambda i: i.at,
    )

    # Every retired key the report can look up in the audit log: since when it is retired.
    retired: dict[str, datetime] = {}
    for snapshot in active:
        old = replaced_key_id(snapshot)
        if old is not None and snapshot.current is not None:
            retired[old] = snapshot.current.issued_at
    if admin.retired_key_id and admin.retired_at:
        retired[admin.retired_key_id] = admin.retired_at
    audit, last_used = _last_uses(
        services.langsmith, retired.values(), window_start, now, audit_max_pages
    )

    repairs: dict[str, list[Repair]] = {}
    for repair in found.repairs:
        repairs.setdefault(repair.tenant_id, []).append(repair)
    tenants: list[TenantPosture] = []
    violations: list[Violation] = []
    for snapshot in sorted(found.snapshots, key=lambda s: s.tenant_id):
        posture, found_violations = _tenant_posture(
            snapshot,
            tags.get(snapshot.tenant_id, {}),
            repairs.get(snapshot.tenant_id, []),
            live,
            last_used,
            [i for i in in_window if i.tenant_id == snapshot.tenant_id],
            now=now,
            max_age_days=settings.max_key_age_days,
            grace_seconds=settings.grace_seconds,
        )
        tenants.append(posture)
        violations += found_violations

    admin, admin_violations = _admin_verdict(
        admin,
        last_used,
        now=now,
        max_age_days=settings.max_admin_key_age_days,
        grace_seconds=settings.admin_grace_seconds,
    )
    return PostureReport(
        generated_at=now,
        window_start=window_start,
        max_key_age_days=settings.max_key_age_days,
        max_admin_key_age_days=settings.max_admin_key_age_days,
        admin=admin,
        tenants=tenants,
        incidents=in_window,
        incident_source=incident_source,
        audit=audit,
        violations=admin_violations + violations,
    )


# -- tenants ---------------------------------------------------------------------------------


def replaced_key_id(snapshot: TenantSnapshot) -> str | None:
    """The key the tenant's current key replaced: the one its record names (AWSPREVIOUS's for a
    record older than that field, a RETIRE_PENDING label's from the tool's earlier versions)."""
    current = snapshot.current
    if current is None:
        return None
    candidates = [
        current.previous_key_id,
        snapshot.retire_pending.key_id if snapshot.retire_pending else None,
        snapshot.previous.key_id if snapshot.previous else None,
    ]
    return next((k for k in candidates if k is not None and k != current.key_id), None)


def _tenant_posture(
    snapshot: TenantSnapshot,
    tags: dict[str, str],
    repairs: list[Repair],
    live: set[str],
    last_used: dict[str, datetime],
    incidents: list[IncidentRecord],
    *,
    now: datetime,
    max_age_days: float,
    grace_seconds: float,
) -> tuple[TenantPosture, list[Violation]]:
    tenant, current = snapshot.tenant_id, snapshot.current
    found: list[Violation] = []

    def flag(kind: ViolationKind, detail: str, key_id: str | None = None) -> None:
        found.append(Violation(kind=kind, tenant_id=tenant, key_id=key_id, detail=detail))

    age = (now - current.issued_at).total_seconds() / 86400 if current else None
    if current is not None and age is not None and age > max_age_days:
        flag(
            "overdue",
            f"key {current.key_id} is {age:.1f} days old (policy: {max_age_days:g})",
            current.key_id,
        )
    if (
        current is not None
        and tags.get(TAG_STATUS) == STATUS_NO_KEY
        and tags.get(TAG_STATUS_KEY) == current.key_id
    ):
        flag(
            "no-key",
            f"an emergency revoke left no working key: {current.key_id} is dead, tracing is off",
            current.key_id,
        )

    # The key the last rotation replaced (none when a new version of the same key was written).
    retired_key_id = replaced_key_id(snapshot)
    retired_at = current.issued_at if (retired_key_id and current) else None
    used = last_used.get(retired_key_id or "")
    if used and retired_at and used > retired_at + timedelta(seconds=grace_seconds):
        flag(
            "retired-key-used",
            f"retired key {retired_key_id} made a request at {used.isoformat(timespec='seconds')}, "
            f"after its retirement at {retired_at.isoformat(timespec='seconds')}",
            retired_key_id,
        )

    orphans: list[str] = []
    for repair in repairs:
        if repair.kind == "delete-orphan" and repair.key_id:
            orphans.append(repair.key_id)
            flag(
                "orphan",
                f"key {repair.key_id} minted by the tool is held by no version of the secret",
                repair.key_id,
            )
        elif repair.kind == "retire":
            flag(
                "retire-stuck",
                f"old key {repair.key_id} still exists past its grace window: its retire failed",
                repair.key_id,
            )
        elif repair.kind == "replace-dead-key" and not any(v.kind == "no-key" for v in found):
            flag(
                "no-key",
                f"the current key {repair.key_id} no longer authenticates (deleted or expired outside the tool)",
                repair.key_id,
            )
        elif repair.kind == "attention":
            flag("needs-attention", repair.reason)
    found += [_incident_violation(i) for i in incidents]

    budget = tags.get(TAG_BUDGET, "")
    posture = TenantPosture(
        tenant_id=tenant,
        status=snapshot.status,
        isolation=KeyHome.of(tags).mode if tags else None,
        budget=int(budget) if budget.isdigit() else None,
        quota_status=tags.get(TAG_QUOTA_STATUS, "ok") if tags else None,
        current_key_id=current.key_id if current else None,
        key_issued_at=current.issued_at if current else None,
        key_age_days=round(age, 2) if age is not None else None,
        rotation_id=current.rotation_id if current else None,
        last_rotated_at=(
            current.issued_at if current and current.rotation_id != ONBOARDING_ROTATION else None
        ),
        overdue=any(v.kind == "overdue" for v in found),
        pending_rotation_id=snapshot.pending.rotation_id if snapshot.pending else None,
        retire_pending_key_id=retired_key_id if retired_key_id in live else None,
        retire_stuck=any(v.kind == "retire-stuck" for v in found),
        orphan_key_ids=orphans,
        retired_key_id=retired_key_id,
        retired_at=retired_at,
        retired_key_alive=(retired_key_id in live) if retired_key_id else None,
        retired_key_last_used_at=used,
        incident_ids=[i.incident_id for i in incidents],
        violations=list(dict.fromkeys(v.kind for v in found)),
    )
    return posture, found


def _incident_violation(incident: IncidentRecord) -> Violation:
    return Violation(
        kind="incident",
        tenant_id=incident.tenant_id,
        detail=f"emergency revoke {incident.incident_id} at "
        f"{incident.at.isoformat(timespec='seconds')}: {incident.outcome} ({incident.source})",
    )


# -- the admin key ---------------------------------------------------------------------------


def _admin_posture(services: Services, now: datetime, orphan_min_age: timedelta) -> AdminPosture:
    """The admin key's facts (its verdict comes later, with the audit log's answers)."""
    settings = services.settings
    if settings.langsmith_admin_key is not None or services.admin_secret is None:
        return AdminPosture(source="environment", secret=settings.langsmith_admin_key_secret)
    store = services.admin_secret
    state = store.describe_admin()
    current = store.read_admin()
    pending = state.version_with(PENDING)
    unfinished = pending is not None and pending != state.version_with(CURRENT)
    pending_record = store.read_admin(stage=PENDING, version_id=pending) if unfinished else None
    listed = AdminScope.of(current).list_keys(services.langsmith)
    old = current.previous_key_id if current.previous_key_id != current.key_id else None
    alive = old is not None and old in {k.id for k in listed}
    # Keys the secret accounts for; the one the current key replaced is "waiting", not an orphan.
    held = {current.key_id, old} | ({pending_record.key_id} if pending_record else set())
    orphans = [
        k.id
        for k in listed
        if parse_admin_description(k.description) is not None
        and k.id not in held
        and (k.created_at is None or now - k.created_at >= orphan_min_age)
    ]
    age = (now - current.issued_at).total_seconds() / 86400
    stuck = alive and now > current.issued_at + timedelta(seconds=settings.admin_grace_seconds)
    return AdminPosture(
        source="secret",
        secret=store.secret_id,
        kind=current.kind,
        current_key_id=current.key_id,
        key_issued_at=current.issued_at,
        key_age_days=round(age, 2),
        rotation_id=current.rotation_id,
        last_rotated_at=None
        if current.rotation_id.startswith(INIT_ROTATION_PREFIX)
        else current.issued_at,
        overdue=age > settings.max_admin_key_age_days,
        pending_rotation_id=pending_record.rotation_id if pending_record else None,
        retire_pending_key_id=old if alive else None,
        retire_stuck=stuck,
        orphan_key_ids=orphans,
        retired_key_id=old,
        retired_at=current.issued_at if old is not None else None,
        retired_key_alive=alive if old is not None else None,
    )


def _admin_verdict(
    admin: AdminPosture,
    last_used: dict[str, datetime],
    *,
    now: datetime,
    max_age_days: float,
    grace_seconds: float,
) -> tuple[AdminPosture, list[Violation]]:
    found: list[Violation] = []

    def flag(kind: ViolationKind, detail: str, key_id: str | None = None) -> None:
        found.append(Violation(kind=kind, key_id=key_id, detail=detail))

    if admin.source == "environment":
        flag(
            "admin-key-unmanaged",
            "the admin key comes from TENANT_KEYS_LANGSMITH_ADMIN_KEY: it is not in Secrets "
            "Manager and is never rotated",
        )
    if admin.overdue and admin.current_key_id:
        flag(
            "overdue",
            f"admin key {admin.current_key_id} is {admin.key_age_days:.1f} days old "
            f"(policy: {max_age_days:g})",
            admin.current_key_id,
        )
    if admin.retire_stuck:
        flag(
            "retire-stuck",
            f"old admin key {admin.retire_pending_key_id} still exists past its grace window: "
            "its retire failed",
            admin.retire_pending_key_id,
        )
    for key_id in admin.orphan_key_ids:
        flag(
            "orphan",
            f"admin key {key_id} minted by the tool is held by no version of the secret",
            key_id,
        )
    used = last_used.get(admin.retired_key_id or "")
    if (
        used is not None
        and admin.retired_at
        and used > admin.retired_at + timedelta(seconds=grace_seconds)
    ):
        flag(
            "retired-key-used",
            f"retired admin key {admin.retired_key_id} made a request at "
            f"{used.isoformat(timespec='seconds')}, after its retirement",
            admin.retired_key_id,
        )
    update = {
        "retired_key_last_used_at": used,
        "violations": list(dict.fromkeys(v.kind for v in found)),
    }
    return admin.model_copy(update=update), found


# -- the audit log ---------------------------------------------------------------------------


def _last_uses(
    langsmith: LangSmithAdmin,
    retired_since: Iterable[datetime],
    window_start: datetime,
    now: datetime,
    max_pages: int,
) -> tuple[AuditStatus, dict[str, datetime]]:
    """The last audited request of every key since the earliest retirement (not before the
    window), from LangSmith's audit log; which keys it was asked about does not matter, the log
    has no filter by key."""
    since_all = list(retired_since)
    if not since_all:
        return AuditStatus(available=False, note="no retired key to look up"), {}
    since = max(min(since_all), window_start)
    last: dict[str, datetime] = {}
    records, cursor = 0, None
    try:
        for _ in range(max_pages):
            page = langsmith.audit_logs(since, now, cursor=cursor)
            for item in page.items:
                message = item.message
                if message.api_key_id:
                    seen = last.get(message.api_key_id)
                    if seen is None or message.request_time > seen:
                        last[message.api_key_id] = message.request_time
            records += len(page.items)
            cursor = page.cursor
            if not cursor:
                break
    except Forbidden:
        note = "the admin key may not read it: that takes an org-wide Organization Admin key"
        return AuditStatus(available=False, note=note), {}
    except NotFound:
        return AuditStatus(available=False, note="this LangSmith does not serve it"), {}
    except LangSmithError as exc:
        return AuditStatus(available=False, note=f"reading it failed ({type(exc).__name__})"), {}
    return AuditStatus(available=True, since=since, records=records, truncated=bool(cursor)), last


# -- incidents without Prefect ---------------------------------------------------------------


def break_glass_incidents(folder: Path, *, unsynced_only: bool = False) -> list[IncidentRecord]:
    """The incidents of break-glass revokes recorded in `folder` (TENANT_KEYS_INCIDENT_DIR): all
    of them when Prefect is down, or only those not yet replayed into Prefect (`unsynced_only`:
    Prefect's artifacts hold the others). A file that is not an incident record is skipped."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        if unsynced_only and path.name.endswith(".synced.json"):
            continue
        try:
            incident = Incident.model_validate_json(path.read_text())
        except ValueError:
            continue
        outcome = incident.outcome
        found.append(
            IncidentRecord(
                tenant_id=outcome.tenant_id,
                incident_id=outcome.incident_id,
                at=incident.details.reported_at,
                outcome=outcome.status,
                source="break-glass",
            )
        )
    return found
