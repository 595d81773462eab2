"""Tenants made directly in the local stack, for quota tests and the quota benchmark.

Onboarding thousands of tenants through Prefect measures onboarding, not the quota check:
this writes what onboarding would leave behind (a secret with its tags, a `tenant-<id>`
project) and ingests root runs with the emulator's batch API. The secrets hold a made-up
key: the quota check never reads it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import httpx
from botocore.config import Config
from pydantic import SecretStr

from tenant_keys.layout import (
    MANAGED_BY,
    TAG_BUDGET,
    TAG_MANAGED_BY,
    TAG_PROJECT,
    TAG_TENANT,
    TenantKeyRecord,
)
from tenant_keys.models import project_name, utcnow

RUNS_PER_BATCH = 2000


@dataclass(frozen=True)
class SeededTenant:
    tenant_id: str
    project_id: str
    budget: int
    traces: int


@dataclass(frozen=True)
class Target:
    """Where to seed: the emulator (admin key and workspace) and the secret prefix in moto."""

    langsmith_url: str
    admin_key: str
    workspace_id: str | None
    aws_endpoint_url: str
    secret_prefix: str
    region: str = "us-east-1"

    def headers(self) -> dict[str, str]:
        headers = {"X-API-Key": self.admin_key}
        if self.workspace_id:
            headers["X-Tenant-Id"] = self.workspace_id
        return headers


def seed_tenants(
    target: Target,
    tenant_ids: list[str],
    *,
    budget: Callable[[int], int],
    traces: Callable[[int], int],
    workers: int = 16,
) -> list[SeededTenant]:
    """Create each tenant's project and secret, then ingest `traces(i)` root runs (each with
    one child run, which must not count) for tenant i."""
    sm = _secrets_manager(target)
    with httpx.Client(
        base_url=target.langsmith_url,
        headers=target.headers(),
        timeout=60,
        limits=httpx.Limits(max_connections=workers),
    ) as http:

        def one(item: tuple[int, str]) -> SeededTenant:
            i, tenant_id = item
            project = http.post("/api/v1/sessions", json={"name": project_name(tenant_id)})
            project.raise_for_status()
            project_id = project.json()["id"]
            seeded = SeededTenant(tenant_id, project_id, budget(i), traces(i))
            _create_secret(sm, target, seeded, project.json()["tenant_id"])
            return seeded

        with ThreadPoolExecutor(workers) as pool:
            tenants = list(pool.map(one, enumerate(tenant_ids)))
        ingest_traces(http, [(t.project_id, t.traces) for t in tenants])
    return tenants


def ingest_traces(
    http: httpx.Client, per_project: list[tuple[str, int]], *, start: datetime | None = None
) -> None:
    """`n` traces (a root run and one child each) into each project, in large batches."""
    when = start or datetime.now(UTC) - timedelta(seconds=1)
    batch: list[dict[str, object]] = []
    for project_id, n in per_project:
        for _ in range(n):
            root = str(uuid.uuid4())
            batch.append(_run(root, project_id, when, parent=None))
            batch.append(_run(str(uuid.uuid4()), project_id, when, parent=root))
            if len(batch) >= RUNS_PER_BATCH:
                _post_batch(http, batch)
                batch = []
    if batch:
        _post_batch(http, batch)


def delete_secrets(target: Target, tenant_ids: list[str]) -> None:
    sm = _secrets_manager(target)
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda t: sm.delete_secret(  # type: ignore[attr-defined]
                    SecretId=f"{target.secret_prefix}/{t}", ForceDeleteWithoutRecovery=True
                ),
                tenant_ids,
            )
        )


def _secrets_manager(target: Target) -> object:
    return boto3.client(
        "secretsmanager",
        endpoint_url=target.aws_endpoint_url,
        region_name=target.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # moto's server answers an occasional 500 under concurrent writes; a retry succeeds.
        config=Config(retries={"mode": "standard", "max_attempts": 10}),
    )


def _create_secret(sm: object, target: Target, tenant: SeededTenant, workspace_id: str) -> None:
    record = TenantKeyRecord(
        api_key=SecretStr("seeded-" + secrets.token_hex(12)),  # never read
        key_id=str(uuid.uuid4()),
        project_id=tenant.project_id,
        project_name=project_name(tenant.tenant_id),
        workspace_id=workspace_id,
        issued_at=utcnow(),
        expires_at=None,
        rotation_id="seeded",
    )
    tags = {
        TAG_TENANT: tenant.tenant_id,
        TAG_MANAGED_BY: MANAGED_BY,
        TAG_PROJECT: tenant.project_id,
        TAG_BUDGET: str(tenant.budget),
    }
    sm.create_secret(  # type: ignore[attr-defined]
        Name=f"{target.secret_prefix}/{tenant.tenant_id}",
        SecretString=record.to_secret_string(),
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )


def _run(run_id: str, project_id: str, when: datetime, parent: str | None) -> dict[str, object]:
    return {
        "id": run_id,
        "name": "seeded",
        "run_type": "chain" if parent is None else "llm",
        "inputs": {},
        "start_time": when.isoformat(),
        "end_time": (when + timedelta(milliseconds=5)).isoformat(),
        "session_id": project_id,
        "parent_run_id": parent,
    }


def _post_batch(http: httpx.Client, batch: list[dict[str, object]]) -> None:
    response = http.post("/runs/batch", json={"post": batch})
    response.raise_for_status()
