"""LangSmith's admin API: a typed httpx client and its models (errors: `tenant_keys.errors`)."""

from tenant_keys.langsmith.client import LangSmithAdmin
from tenant_keys.langsmith.models import ApiKeyInfo, CreatedApiKey, Project, Workspace

__all__ = ["ApiKeyInfo", "CreatedApiKey", "LangSmithAdmin", "Project", "Workspace"]
