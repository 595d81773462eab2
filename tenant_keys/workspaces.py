"""A tenant's own LangSmith workspace (workspace isolation, docs/isolation.md): found by its
display name, or created through the organization API. Needs an org-scoped admin key."""

from __future__ import annotations

from tenant_keys.errors import BadInput, LangSmithError
from tenant_keys.langsmith import LangSmithAdmin, Workspace
from tenant_keys.models import IsolationMode
from tenant_keys.settings import TAGGED_MODE_NEEDS_ORG, WORKSPACE_MODE_NEEDS_ORG, Settings


def workspace_name(tenant_id: str) -> str:
    return f"tenant-{tenant_id}"


def find_tenant_workspace(langsmith: LangSmithAdmin, tenant_id: str) -> Workspace | None:
    name = workspace_name(tenant_id)
    return next(
        (w for w in langsmith.list_workspaces() if w.display_name == name and not w.is_deleted),
        None,
    )


def ensure_tenant_workspace(langsmith: LangSmithAdmin, tenant_id: str) -> Workspace:
    """The tenant's workspace, created if missing. A create whose answer was lost is looked up
    again rather than repeated, so a rerun never makes a second workspace."""
    existing = find_tenant_workspace(langsmith, tenant_id)
    if existing is not None:
        return existing
    try:
        return langsmith.create_workspace(workspace_name(tenant_id))
    except LangSmithError as exc:
        if exc.status != 409 and not exc.maybe_applied:
            raise
        found = find_tenant_workspace(langsmith, tenant_id)
        if found is None:
            raise
        return found


def isolation_for(settings: Settings, override: str | None) -> IsolationMode:
    """The mode for new tenants: the override, else the setting; checked before any side effect."""
    mode = (override or settings.isolation).strip().lower()
    if mode not in ("project", "workspace", "tagged"):
        raise BadInput(f"isolation {override!r} is invalid: use 'project', 'workspace' or 'tagged'")
    if mode == "workspace" and not settings.langsmith_org_id:
        raise BadInput(WORKSPACE_MODE_NEEDS_ORG)
    if mode == "tagged" and not settings.langsmith_org_id:
        raise BadInput(TAGGED_MODE_NEEDS_ORG)
    return mode  # type: ignore[return-value]  # checked just above
