"""A stack with one of each thing the posture report must flag, made through the core."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import boto3
import httpx

from devstack.stack import LocalStack
from tenant_keys.incident import Incident, IncidentDetails, IncidentLog
from tenant_keys.keys import KeyHome
from tenant_keys.layout import CURRENT, PREVIOUS
from tenant_keys.locks import NoLocks
from tenant_keys.models import key_description, utcnow
from tenant_keys.onboarding import onboard

__all__ = ["onboard"]  # the scenarios' tenants are onboarded through the core too
from tenant_keys.revocation import request_from, revoke
from tenant_keys.rotation import rotate
from tenant_keys.services import get_services


def clean(stack: LocalStack) -> list[str]:
    """Two tenants, one rotated: nothing to flag."""
    services = get_services()
    tenants = ["clean-a", "clean-b"]
    for tenant in tenants:
        assert onboard(services, tenant).outcome == "created"
    assert rotate(services, "clean-b", "r-clean", retire_now=True).outcome == "rotated"
    return tenants


def age_current_key(stack: LocalStack, tenant_id: str, days: float) -> None:
    """The tenant's AWSCURRENT record re-stored as issued `days` ago (same key): a key that no
    rotation has replaced for that long."""
    services = get_services()
    name = services.store.name(tenant_id)
    sm = boto3.client("secretsmanager", endpoint_url=stack.moto.url, region_name="us-east-1")
    record = json.loads(sm.get_secret_value(SecretId=name, VersionStage=CURRENT)["SecretString"])
    record["issued_at"] = (utcnow() - timedelta(days=days)).isoformat()
    sm.put_secret_value(
        SecretId=name,
        ClientRequestToken=str(uuid.uuid4()),
        SecretString=json.dumps(record),
        VersionStages=[CURRENT],
    )


def stuck_retire_used_after(stack: LocalStack, tenant_id: str) -> str:
    """A rotation whose retire fails (LangSmith refuses the delete): the old key stays alive,
    named by the current record; then someone reads with it. Returns the old key's id."""
    services = get_services()
    control = stack.langsmith.control
    control.inject_fault(
        method="DELETE",
        route="/api/v1/api-key/{api_key_id}",
        action="status",
        status=403,
        count=None,
    )
    try:
        result = rotate(services, tenant_id, "r-stuck", retire_now=True)
    finally:
        control.clear_faults()
    assert result.outcome == "retire-failed", result
    old = services.store.read(tenant_id, stage=PREVIOUS)  # the version AWSCURRENT left
    assert services.store.read(tenant_id).previous_key_id == old.key_id
    # An audited request made with the retired key (a trace read would be the same).
    response = httpx.get(
        f"{stack.langsmith.url}/api/v1/workspaces/current/usage_limits",
        headers={"X-API-Key": old.api_key.get_secret_value()},
    )
    assert response.status_code == 200
    return old.key_id


def orphan(tenant_id: str) -> str:
    """A key minted with the tenant's description that no secret holds."""
    services = get_services()
    created = KeyHome().create(
        services.langsmith, key_description(tenant_id, "r-orphan"), expires_at=None
    )
    return created.id


def break_glass_incident(tenant_id: str) -> str:
    """An emergency revoke run with Prefect down: its record in the incident folder."""
    services = get_services()
    started = utcnow()
    incident_id = str(uuid.uuid4())
    request = request_from(
        services,
        tenant=tenant_id,
        scope="current",
        key_id=None,
        fingerprint=None,
        incident_id=incident_id,
    )
    outcome = revoke(services.urgent(), request, NoLocks())
    assert outcome.status == "revoked", outcome
    details = IncidentDetails.of(
        reason="test leak",
        reported_by="tests",
        trigger="test",
        reported_at=None,
        started_at=started,
    )
    IncidentLog(services.settings.incident_dir).write(
        Incident(outcome=outcome, details=details, break_glass=True)
    )
    return incident_id
