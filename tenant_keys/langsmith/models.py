"""Pydantic models of the LangSmith admin API, cut from the OpenAPI subset.

Only the fields the tool reads are declared; unknown fields are ignored so a
newer server does not break the client.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, SecretStr

from tenant_keys.redact import remember


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Project(_Response):
    """TracerSession (with stats when asked for)."""

    id: str
    name: str
    tenant_id: str
    description: str | None = None
    extra: dict[str, object] | None = None
    run_count: int | None = None
    total_tokens: int | None = None
    total_cost: Decimal | None = None
    error_rate: float | None = None
    last_run_start_time: datetime | None = None


class ApiKeyInfo(_Response):
    """APIKeyGetResponse."""

    id: str
    short_key: str
    description: str
    created_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    workspace_names: list[str] | None = None


class CreatedApiKey(ApiKeyInfo):
    """APIKeyCreateResponse: the only response that carries the secret."""

    key: SecretStr

    def model_post_init(self, context: object) -> None:
        remember(self.key)  # from here on, no text this process writes may hold it


class Workspace(_Response):
    """Tenant (a LangSmith workspace; 'workspaces were formerly called tenants')."""

    id: str
    display_name: str
    organization_id: str | None = None
    is_deleted: bool = False


class OrgInfo(_Response):
    """OrganizationInfo: only the settings the tool reads."""

    id: str
    max_api_key_expiry_days: int | None = None
    max_service_key_expiry_days: int | None = None


class UsageLimit(_Response):
    id: str
    limit_type: str
    limit_value: int


# -- tagged isolation: resource tags, roles, access policies ----------------------------------


class TagValue(_Response):
    id: str
    value: str
    tag_key_id: str
    description: str | None = None


class TagKeyWithValues(_Response):
    """TagKeyWithValues (`GET /workspaces/current/tags`); also TagKey, with no values."""

    id: str
    key: str
    description: str | None = None
    values: list[TagValue] = []


class Tagging(_Response):
    id: str
    tag_value_id: str
    resource_type: str
    resource_id: str


class TagValueWithTaggings(TagValue):
    taggings: list[Tagging] = []


class TagKeyWithTaggings(_Response):
    """TagKeyWithValuesAndTaggings: the tags on one resource."""

    id: str
    key: str
    values: list[TagValueWithTaggings] = []


class TaggedResource(_Response):
    tagging_id: str
    resource_id: str


class TaggedResources(_Response):
    projects: list[TaggedResource] = []


class TaggingsResponse(_Response):
    """TaggingsResponse: one tag value and the resources it tags."""

    tag_key: str
    tag_key_id: str
    tag_value: str
    tag_value_id: str
    resources: TaggedResources


class Role(_Response):
    id: str
    name: str
    display_name: str
    description: str
    organization_id: str | None = None
    permissions: list[str] = []


class Condition(_Response):
    """authz_internal.Condition."""

    attribute_name: str
    attribute_key: str
    operator: str
    attribute_value: str


class ConditionGroup(_Response):
    """authz_internal.ConditionGroup."""

    permission: str
    resource_type: str
    conditions: list[Condition] = []


class AccessPolicy(_Response):
    """authz_internal.AccessPolicy."""

    id: str
    name: str
    description: str = ""
    effect: str
    condition_groups: list[ConditionGroup] = []
    role_ids: list[str] = []
    created_at: str | None = None  # the spec gives no format


class AccessPolicyList(_Response):
    """authz_internal.ListAccessPoliciesResponse."""

    access_policies: list[AccessPolicy] = []


class Created(_Response):
    """authz_internal.AccessPolicyCreateResponse."""

    id: str
