"""The tenant secrets in AWS Secrets Manager, over boto3.

One secret per tenant, `{prefix}/{tenant_id}` (its layout: `tenant_keys.layout`). Writes are paced by a token bucket (Secrets Manager allows about 50
writes a second per account) and botocore's standard retry mode absorbs
throttling. Moving a label always names the version it leaves, which makes
every move a compare-and-swap.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from tenant_keys.errors import (
    ConfigError,
    CorruptSecret,
    SecretStoreError,
    TenantExists,
    TenantNotFound,
)
from tenant_keys.layout import (
    CURRENT,
    MANAGED_BY,
    PENDING,
    TAG_MANAGED_BY,
    TAG_TENANT,
    SecretState,
    TenantKeyRecord,
)
from tenant_keys.models import TENANT_ID_PATTERN
from tenant_keys.ratelimit import TokenBucket

log = logging.getLogger(__name__)

# One boto3 session for every store of the process: a session parses botocore's service and
# endpoint models, and resolves the credentials, once for all its clients. Sessions are not
# thread-safe, so clients are made under a lock; the clients themselves are.
_session_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


class SecretStore:
    def __init__(
        self,
        *,
        prefix: str,
        region: str,
        endpoint_url: str | None = None,
        writes_per_second: float = 50.0,
        max_connections: int = 100,
    ) -> None:
        self.prefix = prefix.rstrip("/") + "/"
        with _session_lock:
            self._client = _session().client(
                "secretsmanager",
                region_name=region,
                endpoint_url=endpoint_url,
                config=Config(
                    retries={"mode": "standard", "max_attempts": 5},
                    max_pool_connections=max_connections,
                ),
            )
        self._writes = TokenBucket(writes_per_second, burst=max(1.0, writes_per_second / 10))
        quiet_request_bodies()

    def name(self, tenant_id: str) -> str:
        return f"{self.prefix}{tenant_id}"

    def tenant_of(self, secret_name: str) -> str:
        return secret_name.removeprefix(self.prefix)

    # -- reads -------------------------------------------------------------------------------

    def describe(self, tenant_id: str) -> SecretState:
        name = self.name(tenant_id)
        try:
            raw = self._call("DescribeSecret", name, SecretId=name)
        except SecretStoreError as exc:
            if exc.code == "ResourceNotFoundException":
                raise TenantNotFound(tenant_id, name) from None
            raise
        return SecretState(
            name=name,
            # AWS lists only labelled versions here; moto also lists unlabelled ones.
            versions={v: list(s) for v, s in raw.get("VersionIdsToStages", {}).items() if s},
            tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
            scheduled_for_deletion="DeletedDate" in raw,
        )

    def exists(self, tenant_id: str) -> bool:
        try:
            self.describe(tenant_id)
        except TenantNotFound:
            return False
        return True

    def read(
        self, tenant_id: str, *, stage: str = CURRENT, version_id: str | None = None
    ) -> TenantKeyRecord:
        """The record at a label (or version). The key inside stays a SecretStr."""
        name = self.name(tenant_id)
        args: dict[str, Any] = {"SecretId": name, "VersionStage": stage}
        if version_id:
            args["VersionId"] = version_id
        try:
            raw = self._call("GetSecretValue", name, **args)
        except SecretStoreError as exc:
            if exc.code == "ResourceNotFoundException":
                raise TenantNotFound(tenant_id, name) from None
            raise
        try:
            return TenantKeyRecord.from_secret_string(raw.get("SecretString") or "")
        except ValueError as exc:
            raise CorruptSecret(name, stage, str(exc)) from None

    def iter_tenants(self) -> Iterator[str]:
        """Every tenant id with a secret under the prefix (ListSecrets may lag ~minutes behind writes)."""
        return (tenant_id for tenant_id, _ in self.iter_tenant_tags())

    def iter_tenant_tags(self) -> Iterator[tuple[str, dict[str, str]]]:
        """(tenant id, tags) of every tenant secret: ListSecrets carries the tags, so this costs
        one call per 100 tenants instead of a DescribeSecret each. A secret under the prefix that
        the tool did not create (no managed-by tag, or a name that is no tenant id) is not a
        tenant: skipped, with a warning."""
        paginator = self._client.get_paginator("list_secrets")
        pages = paginator.paginate(
            Filters=[{"Key": "name", "Values": [self.prefix]}], PaginationConfig={"PageSize": 100}
        )
        try:
            for page in pages:
                for entry in page["SecretList"]:
                    if not entry["Name"].startswith(self.prefix):
                        continue
                    tenant_id = self.tenant_of(entry["Name"])
                    tags = {t["Key"]: t["Value"] for t in entry.get("Tags", [])}
                    if tags.get(TAG_MANAGED_BY) != MANAGED_BY or not TENANT_ID_PATTERN.fullmatch(
                        tenant_id
                    ):
                        log.warning("secret %s is not the tool's: skipped", entry["Name"])
                        continue
                    yield tenant_id, tags
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("ListSecrets", self.prefix + "*", exc) from None

    # -- writes ------------------------------------------------------------------------------

    def create(
        self, tenant_id: str, record: TenantKeyRecord, *, token: str, tags: Mapping[str, str]
    ) -> str:
        """Create the tenant secret with `record` as AWSCURRENT; returns the version id."""
        name = self.name(tenant_id)
        all_tags = {TAG_TENANT: tenant_id, TAG_MANAGED_BY: MANAGED_BY, **tags}
        try:
            raw = self._write(
                "CreateSecret",
                name,
                Name=name,
                ClientRequestToken=token,
                SecretString=record.to_secret_string(),
                Description=f"LangSmith API key of tenant {tenant_id} (managed by tenant-keys)",
                Tags=[{"Key": k, "Value": v} for k, v in all_tags.items()],
            )
        except SecretStoreError as exc:
            if exc.code == "ResourceExistsException":
                raise TenantExists(tenant_id, name) from None
            raise
        return str(raw["VersionId"])

    def put_pending(self, tenant_id: str, record: TenantKeyRecord, *, token: str) -> None:
        """Store `record` as AWSPENDING under `token` (a retry with the same value is a no-op)."""
        self.put_version(tenant_id, record, token=token, stage=PENDING)

    def put_version(
        self, tenant_id: str, record: TenantKeyRecord, *, token: str, stage: str
    ) -> None:
        """Store `record` under `token` with the staging label `stage` (moved here if elsewhere).

        Used for an emergency replacement, whose label is then moved to AWSCURRENT with the
        compare-and-swap of `move_label`. A retry with the same token and value is a no-op.
        """
        name = self.name(tenant_id)
        self._write(
            "PutSecretValue",
            name,
            SecretId=name,
            ClientRequestToken=token,
            SecretString=record.to_secret_string(),
            VersionStages=[stage],
        )

    def move_label(
        self, tenant_id: str, label: str, *, to_version: str, from_version: str | None
    ) -> None:
        """Move `label` to `to_version`; fails unless it currently sits on `from_version` (CAS)."""
        name = self.name(tenant_id)
        args: dict[str, Any] = {
            "SecretId": name,
            "VersionStage": label,
            "MoveToVersionId": to_version,
        }
        if from_version:
            args["RemoveFromVersionId"] = from_version
        self._write("UpdateSecretVersionStage", name, **args)

    def remove_label(self, tenant_id: str, label: str, *, from_version: str) -> None:
        name = self.name(tenant_id)
        self._write(
            "UpdateSecretVersionStage",
            name,
            SecretId=name,
            VersionStage=label,
            RemoveFromVersionId=from_version,
        )

    def set_tags(self, tenant_id: str, tags: Mapping[str, str]) -> None:
        name = self.name(tenant_id)
        self._write(
            "TagResource",
            name,
            SecretId=name,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def delete(self, tenant_id: str, *, recovery_days: int | None) -> None:
        """Schedule deletion (`recovery_days` 7-30) or, with None, delete at once."""
        name = self.name(tenant_id)
        args: dict[str, Any] = {"SecretId": name}
        if recovery_days is None:
            args["ForceDeleteWithoutRecovery"] = True
        else:
            args["RecoveryWindowInDays"] = recovery_days
        self._write("DeleteSecret", name, **args)

    def restore(self, tenant_id: str) -> None:
        """Cancel a scheduled deletion (AWS refuses a force delete of a secret scheduled for one)."""
        name = self.name(tenant_id)
        self._write("RestoreSecret", name, SecretId=name)

    # -- plumbing ----------------------------------------------------------------------------

    def _write(self, operation: str, name: str, **kwargs: Any) -> dict[str, Any]:
        self._writes.acquire()
        return self._call(operation, name, **kwargs)

    def _call(self, operation: str, name: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self._client, _snake(operation))
        try:
            return dict(method(**kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise _store_error(operation, name, exc) from None


def quiet_request_bodies() -> None:
    """botocore logs each request's and response's body at DEBUG, secret values included:
    those two loggers stay at INFO whatever the logging settings (the redactor is the second
    net)."""
    for name in ("botocore.endpoint", "botocore.parsers"):
        logging.getLogger(name).setLevel(logging.INFO)


_HINTS = {
    "AccessDeniedException": "grant the IAM policy in deployments/iam-policy.json",
    "UnrecognizedClientException": "check the AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID)",
    "InvalidRequestException": "the secret may be scheduled for deletion: restore it or wait out the recovery window",
}


def _store_error(operation: str, name: str, exc: ClientError | BotoCoreError) -> Exception:
    if isinstance(exc, NoCredentialsError):
        return ConfigError(
            "AWS credentials not found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "ClientError")
    else:
        code = type(exc).__name__
    # The service's own message can quote request fields; only the code goes out.
    return SecretStoreError(operation, name, code, _HINTS.get(code, ""))


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
