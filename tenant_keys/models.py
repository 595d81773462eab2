"""Names and ids that cross a boundary: tenant ids, project names, key descriptions, rotation
ids and tokens, key fingerprints."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, SecretStr

from tenant_keys.errors import BadInput

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
# Where a tenant lives: a project in the shared workspace, a workspace of its own, or a tagged
# project in the shared workspace that only its keys may read (docs/isolation.md). Stored per
# tenant as a tag on its secret.
IsolationMode = Literal["project", "workspace", "tagged"]
# Every key the tool mints carries this description, so reconcile can tell
# its keys from anyone else's and name the tenant and rotation they belong to.
KEY_DESCRIPTION_PREFIX = "tenant-keys"
_DESCRIPTION = re.compile(
    r"^tenant-keys tenant=(?P<tenant>[a-z0-9-]+) rotation=(?P<rotation>[A-Za-z0-9:._-]{1,64})$"
)
# A rotation id goes into key descriptions and ClientRequestTokens: keep it short and plain.
ROTATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$")
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


# The tool's mark on the projects it creates: only those may it ever delete.
PROJECT_MARKER = "(managed by tenant-keys)"


def project_description(tenant_id: str) -> str:
    return f"Traces of tenant {tenant_id} {PROJECT_MARKER}"


def key_description(tenant_id: str, rotation_id: str) -> str:
    return f"{KEY_DESCRIPTION_PREFIX} tenant={tenant_id} rotation={rotation_id}"


def parse_key_description(description: str) -> tuple[str, str] | None:
    """(tenant, rotation) of a key this tool minted, or None for anyone else's key."""
    match = _DESCRIPTION.fullmatch(description)
    return (match["tenant"], match["rotation"]) if match else None


def version_token(tenant_id: str, rotation_id: str) -> str:
    """The ClientRequestToken of a rotation: every retry writes the same version."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{tenant_id}:{rotation_id}"))


def validate_rotation_id(value: str) -> str:
    if not ROTATION_ID_PATTERN.fullmatch(value):
        raise BadInput(
            f"rotation id {value[:80]!r} is invalid: use 1-64 letters, digits and . _ : -, "
            "starting with a letter or digit, e.g. 'r20260105T030000Z'"
        )
    return value


def new_rotation_id(now: datetime | None = None) -> str:
    return (now or utcnow()).strftime("r%Y%m%dT%H%M%SZ")


def utcnow() -> datetime:
    return datetime.now(UTC)


def key_fingerprint(api_key: SecretStr | str) -> str:
    """SHA-256 of a key, hex: names a leaked key in events and parameters without carrying it."""
    text = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    return hashlib.sha256(text.strip().encode()).hexdigest()
