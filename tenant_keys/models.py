"""Models for what crosses a boundary: tenant ids, the tenant secret, key descriptions."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, ValidationError

from tenant_keys.errors import BadInput

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
MANAGED_BY = "tenant-keys"
# Where a tenant lives: a project in the shared workspace, or a workspace of its own
# (docs/isolation.md). Stored per tenant as a tag on its secret.
IsolationMode = Literal["project", "workspace"]
# Every key the tool mints carries this description, so reconcile can tell
# its keys from anyone else's and name the tenant and rotation they belong to.
KEY_DESCRIPTION_PREFIX = "tenant-keys"
_DESCRIPTION = re.compile(
    r"^tenant-keys tenant=(?P<tenant>[a-z0-9-]+) rotation=(?P<rotation>[A-Za-z0-9:._-]+)$"
)
# Stable namespace for ClientRequestTokens: uuid5(namespace, "tenant:rotation").
_TOKEN_NAMESPACE = uuid.UUID("6f1d2b0e-3c5a-5b7e-9a41-7c2d8e0f4b19")


def validate_tenant_id(value: str) -> str:
    if not TENANT_ID_PATTERN.fullmatch(value):
        raise BadInput(
            f"tenant id {value!r} is invalid: use a lowercase slug of 1-48 letters, digits "
            "and inner dashes, e.g. 'acme-corp'"
        )
    return value


TenantId = Annotated[str, AfterValidator(validate_tenant_id)]


def project_name(tenant_id: str) -> str:
    return f"tenant-{tenant_id}"


def key_description(tenant_id: str, rotation_id: str) -> str:
    return f"{KEY_DESCRIPTION_PREFIX} tenant={tenant_id} rotation={rotation_id}"


def parse_key_description(description: str) -> tuple[str, str] | None:
    """(tenant, rotation) of a key this tool minted, or None for anyone else's key."""
    match = _DESCRIPTION.fullmatch(description)
    return (match["tenant"], match["rotation"]) if match else None


def version_token(tenant_id: str, rotation_id: str) -> str:
    """The ClientRequestToken of a rotation: every retry writes the same version."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{tenant_id}:{rotation_id}"))


def new_rotation_id(now: datetime | None = None) -> str:
    return (now or utcnow()).strftime("r%Y%m%dT%H%M%SZ")


def utcnow() -> datetime:
    return datetime.now(UTC)


class TenantKeyRecord(BaseModel):
    """The SecretString of one version of a tenant secret (DESIGN: secret layout)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    key_id: str
    project_id: str
    project_name: str
    workspace_id: str | None
    issued_at: datetime
    expires_at: datetime | None
    rotation_id: str

    def to_secret_string(self) -> str:
        data = self.model_dump(mode="json")
        data["api_key"] = self.api_key.get_secret_value()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_secret_string(cls, text: str) -> TenantKeyRecord:
        """Parse a stored record; raises ValueError with a message that holds no key."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            # pydantic's message may echo the input (the key): keep field names only.
            fields = sorted({".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors()})
            raise ValueError(f"bad or missing fields: {', '.join(fields)}") from None
