"""LangSmith's admin API: a typed httpx client and its models (errors: `tenant_keys.errors`)."""

from tenant_keys.langsmith.client import LangSmithAdmin
from tenant_keys.langsmith.models import (
    AccessPolicy,
    ApiKeyInfo,
    CreatedApiKey,
    Project,
    Role,
    TaggingsResponse,
    TagKeyWithValues,
    Workspace,
)

__all__ = [
    "AccessPolicy",
    "ApiKeyInfo",
    "CreatedApiKey",
    "LangSmithAdmin",
    "Project",
    "Role",
    "TagKeyWithValues",
    "TaggingsResponse",
    "Workspace",
]
