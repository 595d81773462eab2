"""Role-based access: the permissions of each role, and the permission each workspace route needs.

Permission names are the spec's ``authz_internal.Permission`` enum. A workspace role holds the
workspace permissions (all but ``organization:*``); the built-in roles are the emulator's four
fixed ids (state.py). Which permission an operation needs is LangSmith's operations reference
(docs.langchain.com/langsmith/organization-workspace-operations), for the routes the emulator
serves: ``ROUTE_PERMISSIONS``, keyed by the normalised route the request counters use.

On the ``PER_PROJECT`` routes the answer depends on the project too: the role's access policies
(abac.py) may allow or deny a permission on a project whatever the role's own permissions, so
the dependency only refuses a key that cannot have the permission on any project, and the
handler decides per project (``Principal.may``).
"""

from __future__ import annotations

from functools import cache

from .openapi import enum_values
from .state import (
    ORGANIZATION_ADMIN,
    ORGANIZATION_USER,
    WORKSPACE_ADMIN,
    WORKSPACE_READER,
    Role,
)

ORG_PERMISSION_PREFIX = "organization:"


@cache
def all_permissions() -> frozenset[str]:
    return enum_values("authz_internal.Permission")


@cache
def workspace_permissions() -> frozenset[str]:
    """The permissions a workspace role may hold (every one but ``organization:*``)."""
    return frozenset(p for p in all_permissions() if not p.startswith(ORG_PERMISSION_PREFIX))


@cache
def reader_permissions() -> frozenset[str]:
    return frozenset(p for p in workspace_permissions() if p.endswith(":read"))


@cache
def builtin_roles() -> dict[str, Role]:
    """The fixed roles, as ``GET /orgs/current/roles`` lists them (no organization id)."""
    org = sorted(p for p in all_permissions() if p.startswith(ORG_PERMISSION_PREFIX))
    return {
        role.id: role
        for role in (
            Role(
                WORKSPACE_ADMIN,
                "WORKSPACE_ADMIN",
                "Admin",
                "Full access to every resource of the workspace",
                sorted(workspace_permissions()),
                "workspace",
            ),
            Role(
                WORKSPACE_READER,
                "WORKSPACE_READER",
                "Reader",
                "Read-only access to the resources of the workspace",
                sorted(reader_permissions()),
                "workspace",
            ),
            Role(
                ORGANIZATION_ADMIN,
                "ORGANIZATION_ADMIN",
                "Organization Admin",
                "Full access to the organization",
                org,
                "organization",
            ),
            Role(
                ORGANIZATION_USER,
                "ORGANIZATION_USER",
                "Organization User",
                "Reads the organization",
                [p for p in org if p != "organization:manage"],
                "organization",
            ),
        )
    }


# Normalised route -> the workspace permission it needs (the operations reference).
ROUTE_PERMISSIONS: dict[str, str] = {
    # Projects.
    "POST /api/v1/sessions": "projects:create",
    "GET /api/v1/sessions": "projects:read",
    "GET /api/v1/sessions/{session_id}": "projects:read",
    "PATCH /api/v1/sessions/{session_id}": "projects:update",
    "DELETE /api/v1/sessions/{session_id}": "projects:delete",
    "DELETE /api/v1/sessions": "projects:delete",
    # Runs: "send traces" (single, batch, multipart) and "update a run" are runs:create.
    "POST /api/v1/runs": "runs:create",
    "POST /api/v1/runs/batch": "runs:create",
    "POST /api/v1/runs/multipart": "runs:create",
    "PATCH /api/v1/runs/{run_id}": "runs:create",
    "POST /api/v1/runs/query": "runs:read",
    "POST /api/v1/runs/stats": "runs:read",
    "GET /api/v1/runs/{run_id}": "runs:read",
    "POST /api/v2/runs/query": "runs:read",
    "GET /api/v2/runs/{run_id}": "runs:read",
    # Workspace settings, keys and usage limits.
    "POST /api/v1/api-key": "workspaces:manage",
    "GET /api/v1/api-key": "workspaces:read",
    "DELETE /api/v1/api-key/{api_key_id}": "workspaces:manage",
    "PATCH /api/v1/workspaces/{workspace_id}": "workspaces:manage",
    "DELETE /api/v1/workspaces/{workspace_id}": "workspaces:manage",
    "GET /api/v1/workspaces/current/stats": "workspaces:read",
    "GET /api/v1/workspaces/current/usage_limits": "workspaces:read",
    "GET /api/v1/usage-limits": "workspaces:read",
    "PUT /api/v1/usage-limits": "workspaces:manage",
    "DELETE /api/v1/usage-limits/{usage_limit_id}": "workspaces:manage",
    # Tags.
    "GET /api/v1/workspaces/current/tag-keys": "workspaces:read",
    "POST /api/v1/workspaces/current/tag-keys": "workspaces:manage",
    "GET /api/v1/workspaces/current/tag-keys/{tag_key_id}": "workspaces:read",
    "PATCH /api/v1/workspaces/current/tag-keys/{tag_key_id}": "workspaces:manage",
    "DELETE /api/v1/workspaces/current/tag-keys/{tag_key_id}": "workspaces:manage",
    "GET /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values": "workspaces:read",
    "POST /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values": "workspaces:manage",
    "GET /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values/{tag_value_id}": (
        "workspaces:read"
    ),
    "PATCH /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values/{tag_value_id}": (
        "workspaces:manage"
    ),
    "DELETE /api/v1/workspaces/current/tag-keys/{tag_key_id}/tag-values/{tag_value_id}": (
        "workspaces:manage"
    ),
    "POST /api/v1/workspaces/current/taggings": "workspaces:manage",
    "GET /api/v1/workspaces/current/taggings": "workspaces:read",
    "DELETE /api/v1/workspaces/current/taggings/{tagging_id}": "workspaces:manage",
    "GET /api/v1/workspaces/current/tags": "workspaces:read",
    "GET /api/v1/workspaces/current/tags/resource": "workspaces:read",
    "POST /api/v1/workspaces/current/tags/resources": "workspaces:read",
}

# Routes on which access policies can change the answer per project: project reads, updates
# and deletes, and run reads (a run is judged by its project's tags). Ingest (runs:create) is
# not among them: tags do not restrict writing traces (docs/langsmith-emulator.md).
PER_PROJECT: frozenset[str] = frozenset(
    {
        "GET /api/v1/sessions",
        "GET /api/v1/sessions/{session_id}",
        "PATCH /api/v1/sessions/{session_id}",
        "DELETE /api/v1/sessions/{session_id}",
        "DELETE /api/v1/sessions",
        "POST /api/v1/runs/query",
        "POST /api/v1/runs/stats",
        "GET /api/v1/runs/{run_id}",
        "POST /api/v2/runs/query",
        "GET /api/v2/runs/{run_id}",
    }
)
