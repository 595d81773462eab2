"""The incidents Prefect holds: the markdown artifact every emergency revoke writes
(`flows.revoke.record_incident`, key `revoke-<tenant>`, a version per revoke), read back for the
posture report. Artifacts outlive Prefect's event retention (7 days by default), so a 30-day
window is covered."""

from __future__ import annotations

import re
from datetime import datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from tenant_keys.posture_model import IncidentRecord

KEY_PREFIX = "revoke-"
PAGE = 200
# The record's own rows (tenant_keys/incident.py `Incident.markdown`).
_INCIDENT_ROW = re.compile(r"^\| incident \| (?P<id>[^|]+?) \|$", re.MULTILINE)
_OUTCOME_ROW = re.compile(r"^\| outcome \| \*\*(?P<status>[a-z-]+)\*\*", re.MULTILINE)


def prefect_incidents(since: datetime) -> list[IncidentRecord]:
    """Every emergency revoke recorded in Prefect since `since`, newest first."""
    found: list[IncidentRecord] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=KEY_PREFIX)),
                sort=ArtifactSort.CREATED_DESC,
                limit=PAGE,
                offset=offset,
            )
            for artifact in page:
                if artifact.created is not None and artifact.created < since:
                    return found
                key = artifact.key or ""
                if not key.startswith(KEY_PREFIX) or artifact.created is None:
                    continue
                text = str(artifact.data or "")
                incident = _INCIDENT_ROW.search(text)
                outcome = _OUTCOME_ROW.search(text)
                found.append(
                    IncidentRecord(
                        tenant_id=key.removeprefix(KEY_PREFIX),
                        incident_id=incident["id"].strip() if incident else str(artifact.id),
                        at=artifact.created,
                        outcome=outcome["status"] if outcome else "unknown",
                        source="prefect",
                    )
                )
            if len(page) < PAGE:
                return found
            offset += PAGE
