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
