"""The admin key secret in Secrets Manager: a `SecretStore` of exactly one secret.

Every tenant-secret call of `SecretStore` (describe, put a version, move or remove a label)
names its secret through `name()`; here every name is the admin secret's (a name or an ARN),
so the rotation's label moves (`tenant_keys.rotation.promote_pending_key`) work on it
unchanged, with the same pacing and the same compare-and-swap. The tenant argument those
calls take is ignored: pass `ADMIN_SUBJECT`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenant_keys.admin_layout import AdminKeyRecord
from tenant_keys.errors import ConfigError, CorruptSecret, SecretStoreError, TenantNotFound
from tenant_keys.layout import CURRENT, SecretState
from tenant_keys.secret_store import SecretStore

# What the admin secret's calls pass where a tenant secret's pass a tenant id; also the
# namespace of its rotation tokens, so they can never equal a tenant's.
ADMIN_SUBJECT = "(admin key)"


class AdminSecretStore(SecretStore):
    def __init__(
        self,
        secret_id: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        writes_per_second: float = 50.0,
    ) -> None:
        super().__init__(
            prefix="-",  # unused: every name is the admin secret's
            region=region,
            endpoint_url=endpoint_url,
            writes_per_second=writes_per_second,
            max_connections=4,
        )
        self.secret_id = secret_id

    def name(self, tenant_id: str = ADMIN_SUBJECT) -> str:
        return self.secret_id

    def describe_admin(self) -> SecretState:
        try:
            return self.describe(ADMIN_SUBJECT)
        except TenantNotFound:
            raise self.missing() from None

    def read_admin(self, *, stage: str = CURRENT, version_id: str | None = None) -> AdminKeyRecord:
        """The admin key record at a label (or version). The key inside stays a SecretStr."""
        args: dict[str, str] = {"SecretId": self.secret_id, "VersionStage": stage}
        if version_id:
            args["VersionId"] = version_id
        try:
            raw = self._call("GetSecretValue", self.secret_id, **args)
        except SecretStoreError as exc:
            if exc.code == "ResourceNotFoundException":
                raise self.missing() from None
            raise
        try:
            return AdminKeyRecord.from_secret_string(raw.get("SecretString") or "")
        except ValueError as exc:
            raise CorruptSecret(self.secret_id, stage, str(exc)) from None

    def put_admin_version(self, record: AdminKeyRecord, *, token: str, stage: str) -> None:
        """Store `record` under `token` with the label `stage` (a retry with the same token and
        value is a no-op; `ResourceExistsException`: that token holds another value)."""
        self._write(
            "PutSecretValue",
            self.secret_id,
            SecretId=self.secret_id,
            ClientRequestToken=token,
            SecretString=record.to_secret_string(),
            VersionStages=[stage],
        )

    def create_admin(self, record: AdminKeyRecord, *, token: str, tags: Mapping[str, str]) -> str:
        """Create the secret with `record` as AWSCURRENT; returns the version id. A secret of that
        name that exists already is refused (`ConfigError`): the tool never overwrites one."""
        try:
            raw = self._write(
                "CreateSecret",
                self.secret_id,
                Name=self.secret_id,
                ClientRequestToken=token,
                SecretString=record.to_secret_string(),
                Description="LangSmith admin key of tenant-keys (rotated by `tenant-keys rotate-admin`)",
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
        except SecretStoreError as exc:
            if exc.code == "ResourceExistsException":
                raise ConfigError(
                    f"the admin key secret {self.secret_id} exists already: nothing was changed "
                    "(rotate it with `tenant-keys rotate-admin`)"
                ) from None
            raise
        return str(raw["VersionId"])

    def missing(self) -> ConfigError:
        return ConfigError(
            f"the admin key secret {self.secret_id} does not exist: create it with "
            "`tenant-keys admin-key init` (README, The admin key)"
        )
