"""The secret layout (DESIGN: secret layout): one secret per tenant, `{prefix}/{tenant_id}`.

Its SecretString is a `TenantKeyRecord`; staging labels carry the rotation state; tags carry
what the tool knows of the tenant. Every label, tag and record field the tool reads or writes
is named here and nowhere else.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from tenant_keys.redact import remember

# -- staging labels --------------------------------------------------------------------------
CURRENT = "AWSCURRENT"  # the live key; apps read this
PENDING = "AWSPENDING"  # a key minted by an unfinished rotation
PREVIOUS = "AWSPREVIOUS"  # the key before the last promotion
RETIRE_PENDING = "RETIRE_PENDING"  # an old key that still exists at LangSmith and must go
REVOKE_REPLACEMENT = "REVOKE_REPLACEMENT"  # a revoke's replacement, written, not yet promoted
MIGRATING = "MIGRATING"  # a migration's new key, written, not yet promoted

# -- tags (all `tenant-keys:`-prefixed) -----------------------------------------------------
MANAGED_BY = "tenant-keys"
TAG_MANAGED_BY = "tenant-keys:managed-by"  # value MANAGED_BY: the tool created this secret
TAG_TENANT = "tenant-keys:tenant"
TAG_PROJECT = "tenant-keys:project-id"
TAG_BUDGET = "tenant-keys:trace-budget"
TAG_ISOLATION = "tenant-keys:isolation"  # project | workspace | tagged
TAG_WORKSPACE = "tenant-keys:workspace-id"  # workspace isolation: the tenant's own workspace
# Tagged isolation: the LangSmith objects that confine the tenant's keys to its project.
TAG_ROLE = "tenant-keys:role-id"  # the workspace role its keys are minted with
TAG_POLICY = "tenant-keys:policy-id"  # the allow policy attached to that role
TAG_TAG_VALUE = "tenant-keys:tag-value-id"  # its value of the tool's tag key, on its project
TAG_QUOTA_STATUS = "tenant-keys:quota-status"  # the quota status last reported (ok when absent)
# "pending" from the secret's creation until its key is verified, then "done": only a pending
# secret may be deleted without a recovery window (deployments/iam-policy.json denies the rest).
TAG_ONBOARDING = "tenant-keys:onboarding"
# Set when an offboarding starts: reconcile finishes it, onboarding refuses the id meanwhile.
TAG_OFFBOARDING = "tenant-keys:offboarding"
# "The emergency replacement failed: this tenant has no working key." It names the dead key
# it is about, so it goes stale by itself once another key is put in AWSCURRENT.
TAG_STATUS = "tenant-keys:status"
TAG_STATUS_KEY = "tenant-keys:status-key-id"
STATUS_NO_KEY = "revoked-no-key"
STATUS_ACTIVE = "active"


class KeyRecord(BaseModel):
    """A stored key record (one version's SecretString): the key, held as a secret from the
    moment it is parsed, and a JSON form whose errors never echo it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr

    def model_post_init(self, context: object) -> None:
        remember(self.api_key)  # from here on, no text this process writes may hold it

    def to_secret_string(self) -> str:
        data = self.model_dump(mode="json")
        data["api_key"] = self.api_key.get_secret_value()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_secret_string(cls, text: str) -> Self:
        """Parse a stored record; raises ValueError with a message that holds no key."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            # pydantic's message may echo the input (the key): keep field names only.
            fields = sorted({".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors()})
            raise ValueError(f"bad or missing fields: {', '.join(fields)}") from None


class TenantKeyRecord(KeyRecord):
    """The SecretString of one version of a tenant secret."""

    key_id: str
    project_id: str
    project_name: str
    workspace_id: str | None
    issued_at: datetime
    expires_at: datetime | None
    rotation_id: str
    # The key this one replaced: while LangSmith still lists it, it waits to be retired.
    previous_key_id: str | None = None


class SecretState(BaseModel):
    """What DescribeSecret says of a tenant secret: labels per version, tags, deletion."""

    model_config = ConfigDict(frozen=True)

    name: str
    versions: dict[str, list[str]]
    tags: dict[str, str]
    scheduled_for_deletion: bool = False

    @property
    def leaving(self) -> bool:
        """The tenant is being offboarded (tagged) or was (scheduled for deletion)."""
        return self.scheduled_for_deletion or TAG_OFFBOARDING in self.tags

    def version_with(self, label: str) -> str | None:
        return next((v for v, labels in self.versions.items() if label in labels), None)

    def has_no_key(self, current_key_id: str) -> bool:
        """An emergency revoke left the tenant without a working key: its AWSCURRENT key is
        the dead one the status tag names."""
        return (
            self.tags.get(TAG_STATUS) == STATUS_NO_KEY
            and self.tags.get(TAG_STATUS_KEY) == current_key_id
        )
