"""LangSmith's admin API: a typed httpx client, its models and its errors."""

from tenant_keys.langsmith.client import LangSmithAdmin
from tenant_keys.langsmith.errors import (
    AuthError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    LangSmithError,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    ValidationFailed,
)
from tenant_keys.langsmith.models import ApiKeyInfo, CreatedApiKey, Project, RunStats, Workspace

__all__ = [
    "ApiKeyInfo",
    "AuthError",
    "Conflict",
    "ConnectionFailed",
    "CreatedApiKey",
    "Forbidden",
    "LangSmithAdmin",
    "LangSmithError",
    "NotFound",
    "Project",
    "RateLimited",
    "RunStats",
    "ServerError",
    "Timeout",
    "ValidationFailed",
    "Workspace",
]
