"""In-memory state of the emulator: organization, workspaces, keys, projects, runs, usage limits.

All mutation happens under ``Store.lock`` (an RLock), so the store may also be read from other
threads (e.g. a test inspecting ``srv.store``). HTTP handlers run on the server's single event
loop and never await while holding it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .abac import AbacSettings, AccessPolicy
from .audit import AuditLog
from .clock import Clock, iso
from .tags import WorkspaceTags

# Fixed role ids (deterministic, documented in docs/langsmith-emulator.md).
_ROLE_NS = uuid.UUID("6f1c8a52-0d4e-4b8e-9a57-3c2f0e7d1b90")
WORKSPACE_ADMIN = str(uuid.uuid5(_ROLE_NS, "WORKSPACE_ADMIN"))
WORKSPACE_READER = str(uuid.uuid5(_ROLE_NS, "WORKSPACE_READER"))
ORGANIZATION_ADMIN = str(uuid.uuid5(_ROLE_NS, "ORGANIZATION_ADMIN"))
ORGANIZATION_USER = str(uuid.uuid5(_ROLE_NS, "ORGANIZATION_USER"))
ROLE_NAMES = {
    WORKSPACE_ADMIN: "WORKSPACE_ADMIN",
    WORKSPACE_READER: "WORKSPACE_READER",
    ORGANIZATION_ADMIN: "ORGANIZATION_ADMIN",
    ORGANIZATION_USER: "ORGANIZATION_USER",
}
WORKSPACE_ROLES = {WORKSPACE_ADMIN, WORKSPACE_READER}
ORG_ROLES = {ORGANIZATION_ADMIN, ORGANIZATION_USER}

KEY_PREFIX = "lsv2_sk_"


def new_key_secret() -> str:
    """A service key shaped like LangSmith's: ``lsv2_sk_`` + 32 hex + ``_`` + 10 hex."""
    return f"{KEY_PREFIX}{secrets.token_hex(16)}_{secrets.token_hex(5)}"


def short_key_of(secret: str) -> str:
    """Display form: the prefix, ``...`` and the last 4 characters (``lsv2_sk_...1a2b``)."""
    prefix = secret[:8] if secret.startswith(("lsv2_sk_", "lsv2_pt_")) else secret[:4]
    return f"{prefix}...{secret[-4:]}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Org settings whose caps bound a minted key's lifetime (OrganizationInfo / OrganizationUpdate).
KEY_EXPIRY_CAPS = ("max_api_key_expiry_days", "max_service_key_expiry_days")


@dataclass(eq=False)
class Role:
    """A role: the four fixed ones (rbac.builtin_roles) or an org's custom workspace role."""

    id: str
    name: str
    display_name: str
    description: str
    permissions: list[str]
    access_scope: str  # "workspace" or "organization" (the spec's AccessScope)
    organization_id: str | None = None  # None for the fixed roles

    def to_json(self) -> dict[str, Any]:
        """``Role``."""
        return {
            "id": self.id,
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "organization_id": self.organization_id,
            "permissions": list(self.permissions),
            "access_scope": self.access_scope,
        }


@dataclass
class Organization:
    id: str
    display_name: str
    created_at: datetime
    # OrganizationUpdate fields set through PATCH /orgs/current/info or the control API.
    settings: dict[str, Any] = field(default_factory=dict)
    # Custom workspace roles (POST /orgs/current/roles), by id.
    roles: dict[str, Role] = field(default_factory=dict)
    # Access policies (POST /v1/platform/orgs/current/access-policies), by id.
    policies: dict[str, AccessPolicy] = field(default_factory=dict)
    # Whether the org has ABAC, and the readings of what LangSmith leaves unsaid (/_emulator/abac).
    abac: AbacSettings = field(default_factory=AbacSettings)

    def policies_of(self, role_id: str) -> list[AccessPolicy]:
        """The access policies attached to a role."""
        return [p for p in self.policies.values() if role_id in p.role_ids]

    def key_expiry_cap_days(self) -> int | None:
        """The cap on a service key's lifetime, in days, or None.

        The spec has both ``max_api_key_expiry_days`` and ``max_service_key_expiry_days`` and
        does not say which applies to which mint; both endpoints mint ``lsv2_sk_`` service
        keys, so the emulator applies the stricter of the two to both (a reading).
        """
        caps = [self.settings.get(name) for name in KEY_EXPIRY_CAPS]
        set_caps = [int(c) for c in caps if c is not None]
        return min(set_caps) if set_caps else None


@dataclass
class UsageLimit:
    id: str
    tenant_id: str
    limit_type: str
    limit_value: int
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "limit_type": self.limit_type,
            "limit_value": self.limit_value,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(eq=False)
class Workspace:
    id: str
    org_id: str
    display_name: str
    created_at: datetime
    tenant_handle: str | None = None
    is_deleted: bool = False
    is_personal: bool = False
    projects: dict[str, Project] = field(default_factory=dict)
    project_names: dict[str, str] = field(default_factory=dict)  # name -> project id
    projects_version: int = 0
    # (sort_by, desc) -> the workspace's projects in that order
    sorted_cache: dict[tuple[str, bool], list[Project]] = field(default_factory=dict)
    usage_limits: dict[str, UsageLimit] = field(default_factory=dict)
    # Root runs (traces) ingested into this workspace: (start_time, project_id, key_id).
    traces: list[tuple[datetime, str, str | None]] = field(default_factory=list)
    # (year, month, tier) -> number of traces whose first run arrived that month
    monthly_traces: dict[tuple[int, int, str], int] = field(default_factory=dict)
    # Resource tags (tag keys, values, taggings), with LangSmith's default keys.
    tags: WorkspaceTags = field(init=False)

    def __post_init__(self) -> None:
        self.tags = WorkspaceTags.with_defaults(self.created_at)

    def tenant_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organization_id": self.org_id,
            "created_at": iso(self.created_at),
            "display_name": self.display_name,
            "is_personal": self.is_personal,
            "is_deleted": self.is_deleted,
            "tenant_handle": self.tenant_handle,
            "data_plane_url": None,
        }


@dataclass(eq=False)
class ApiKey:
    id: str
    kind: str  # "workspace" (created at /api-key) or "org" (created at /orgs/current/service-keys)
    org_id: str
    secret_hash: str
    short_key: str
    description: str
    created_at: datetime
    workspace_id: str | None = None  # workspace keys: the workspace they were created in
    workspaces: list[str] | None = None  # org keys: scope; None means org-wide
    expires_at: datetime | None = None
    deleted_at: datetime | None = None
    last_used_at: datetime | None = None
    read_only: bool = False
    role_id: str = WORKSPACE_ADMIN
    org_role_id: str | None = None
    created_by_key_id: str | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def is_org_admin(self) -> bool:
        return (
            self.kind == "org"
            and self.workspaces is None
            and self.org_role_id == ORGANIZATION_ADMIN
        )

    def record(self, now: datetime) -> dict[str, Any]:
        """State-dump form: never the plaintext."""
        return {
            "id": self.id,
            "kind": self.kind,
            "short_key": self.short_key,
            "description": self.description,
            "org_id": self.org_id,
            "workspace_id": self.workspace_id,
            "workspaces": list(self.workspaces) if self.workspaces is not None else None,
            "role": ROLE_NAMES.get(self.role_id, self.role_id),
            "org_role": ROLE_NAMES.get(self.org_role_id or "", self.org_role_id),
            "read_only": self.read_only,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "deleted_at": iso(self.deleted_at),
            "last_used_at": iso(self.last_used_at),
            "deleted": self.deleted_at is not None,
            "expired": self.is_expired(now),
            "active": self.deleted_at is None and not self.is_expired(now),
            "created_by_key_id": self.created_by_key_id,
        }


@dataclass(eq=False)
class Run:
    id: str
    project_id: str
    trace_id: str
    dotted_order: str
    parent_run_id: str | None
    name: str
    run_type: str
    start_time: datetime
    end_time: datetime | None
    data: dict[str, Any]  # inputs, outputs, extra, events, tags, serialized, error, ...
    key_id: str | None
    received_at: datetime
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_cost: float | None = None
    completion_cost: float | None = None
    total_cost: float | None = None

    @property
    def is_root(self) -> bool:
        return self.parent_run_id is None

    @property
    def error(self) -> str | None:
        err = self.data.get("error")
        return None if err in (None, "") else str(err)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "success" if self.end_time is not None else "pending"


@dataclass(eq=False)
class Project:
    id: str
    tenant_id: str
    name: str
    start_time: datetime
    description: str | None = None
    extra: dict[str, Any] | None = None
    end_time: datetime | None = None
    default_dataset_id: str | None = None
    reference_dataset_id: str | None = None
    trace_tier: str | None = None
    runs: dict[str, Run] = field(default_factory=dict)
    version: int = 0  # bumped on every run change, invalidates the stats cache
    # (version, stats start) -> the project's stats
    stats_cache: dict[tuple[int, datetime | None], dict[str, Any]] = field(default_factory=dict)
    last_run_start_time: datetime | None = None

    def base_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "description": self.description,
            "extra": self.extra,
            "start_time": iso(self.start_time),
            "end_time": iso(self.end_time),
            "default_dataset_id": self.default_dataset_id,
            "reference_dataset_id": self.reference_dataset_id,
            "trace_tier": self.trace_tier,
            "last_run_start_time_live": iso(self.last_run_start_time),
        }


@dataclass
class Bootstrap:
    org_id: str
    workspace_id: str
    admin_key: str
    org_admin_key: str
    admin_key_id: str
    org_admin_key_id: str


class Store:
    """The whole emulated LangSmith organization."""

    def __init__(
        self,
        *,
        admin_key: str | None = None,
        org_admin_key: str | None = None,
        org_id: str | None = None,
        workspace_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.bootstrap = Bootstrap(
            org_id=org_id or str(uuid.uuid4()),
            workspace_id=workspace_id or str(uuid.uuid4()),
            admin_key=admin_key or new_key_secret(),
            org_admin_key=org_admin_key or new_key_secret(),
            admin_key_id=str(uuid.uuid4()),
            org_admin_key_id=str(uuid.uuid4()),
        )
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Back to the bootstrap state (same ids and keys as at start-up)."""
        with self.lock:
            b = self.bootstrap
            now = self.clock.now()
            self.orgs: dict[str, Organization] = {
                b.org_id: Organization(b.org_id, "Emulated Organization", now)
            }
            self.workspaces: dict[str, Workspace] = {}
            self.keys: dict[str, ApiKey] = {}
            self.key_index: dict[str, str] = {}  # sha256(secret) -> key id
            self.project_index: dict[str, str] = {}  # project id -> workspace id
            self.run_index: dict[str, str] = {}  # run id -> project id
            self.pending_patches: dict[str, dict[str, Any]] = {}
            self.audit = AuditLog()
            ws = Workspace(b.workspace_id, b.org_id, "Default Workspace", now)
            self.workspaces[ws.id] = ws
            self._add_key(
                ApiKey(
                    id=b.admin_key_id,
                    kind="workspace",
                    org_id=b.org_id,
                    secret_hash=hash_secret(b.admin_key),
                    short_key=short_key_of(b.admin_key),
                    description="Emulator bootstrap workspace admin key",
                    created_at=now,
                    workspace_id=ws.id,
                )
            )
            self._add_key(
                ApiKey(
                    id=b.org_admin_key_id,
                    kind="org",
                    org_id=b.org_id,
                    secret_hash=hash_secret(b.org_admin_key),
                    short_key=short_key_of(b.org_admin_key),
                    description="Emulator bootstrap org admin service key",
                    created_at=now,
                    workspaces=None,
                    org_role_id=ORGANIZATION_ADMIN,
                )
            )

    def _add_key(self, key: ApiKey) -> None:
        self.keys[key.id] = key
        self.key_index[key.secret_hash] = key.id

    # ------------------------------------------------------------------ keys
    def find_key(self, secret: str) -> ApiKey | None:
        key_id = self.key_index.get(hash_secret(secret))
        return self.keys.get(key_id) if key_id else None

    def mint_key(self, **fields: Any) -> tuple[ApiKey, str]:
        secret = new_key_secret()
        with self.lock:
            key = ApiKey(
                id=str(uuid.uuid4()),
                secret_hash=hash_secret(secret),
                short_key=short_key_of(secret),
                created_at=self.clock.now(),
                **fields,
            )
            self._add_key(key)
        return key, secret

    def key_get_json(self, key: ApiKey) -> dict[str, Any]:
        """APIKeyGetResponse."""
        if key.kind == "workspace":
            ws = self.workspaces.get(key.workspace_id or "")
            names = [ws.display_name] if ws else []
        elif key.workspaces is None:
            names = None
        else:
            names = [
                self.workspaces[w].display_name for w in key.workspaces if w in self.workspaces
            ]
        return {
            "id": key.id,
            "short_key": key.short_key,
            "description": key.description,
            "created_at": iso(key.created_at),
            "read_only": key.read_only,
            "last_used_at": iso(key.last_used_at),
            "expires_at": iso(key.expires_at),
            "workspace_names": names,
            "default_workspace_name": None,
        }

    # ------------------------------------------------------------------ projects
    def create_project(self, ws: Workspace, name: str, **fields: Any) -> Project:
        with self.lock:
            pid = fields.pop("id", None) or str(uuid.uuid4())
            start = fields.pop("start_time", None) or self.clock.now()
            project = Project(id=pid, tenant_id=ws.id, name=name, start_time=start, **fields)
            ws.projects[pid] = project
            ws.project_names[name] = pid
            ws.projects_version += 1
            ws.sorted_cache.clear()
            self.project_index[pid] = ws.id
            return project

    def rename_project(self, ws: Workspace, project: Project, new_name: str) -> None:
        with self.lock:
            ws.project_names.pop(project.name, None)
            project.name = new_name
            ws.project_names[new_name] = project.id
            ws.projects_version += 1
            ws.sorted_cache.clear()

    def delete_project(self, ws: Workspace, project: Project) -> None:
        with self.lock:
            ws.projects.pop(project.id, None)
            if ws.project_names.get(project.name) == project.id:
                del ws.project_names[project.name]
            self.project_index.pop(project.id, None)
            ws.tags.drop_resource("project", project.id)
            for run_id in project.runs:
                self.run_index.pop(run_id, None)
            ws.projects_version += 1
            ws.sorted_cache.clear()

    def project_in(self, ws: Workspace, project_id: str) -> Project | None:
        return ws.projects.get(str(project_id))

    def find_run(self, ws: Workspace, run_id: str) -> Run | None:
        pid = self.run_index.get(run_id)
        project = ws.projects.get(pid) if pid else None
        return project.runs.get(run_id) if project else None

    # ------------------------------------------------------------------ dump
    def dump(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock.now()
            return {
                "organization": {
                    "id": self.bootstrap.org_id,
                    "display_name": self.orgs[self.bootstrap.org_id].display_name,
                },
                "default_workspace_id": self.bootstrap.workspace_id,
                "clock_offset_seconds": self.clock.offset_seconds,
                "workspaces": [
                    {
                        **ws.tenant_json(),
                        "project_count": len(ws.projects),
                        "trace_count": len(ws.traces),
                        "usage_limits": [u.to_json() for u in ws.usage_limits.values()],
                    }
                    for ws in self.workspaces.values()
                ],
                "keys": [k.record(now) for k in self.keys.values()],
                "projects": [
                    {
                        "id": p.id,
                        "name": p.name,
                        "workspace_id": ws.id,
                        "run_count": len(p.runs),
                    }
                    for ws in self.workspaces.values()
                    for p in ws.projects.values()
                ],
                "run_count": len(self.run_index),
                "abac": self.orgs[self.bootstrap.org_id].abac.to_json(),
                "roles": [r.to_json() for o in self.orgs.values() for r in o.roles.values()],
                "access_policies": [
                    p.to_json() for o in self.orgs.values() for p in o.policies.values()
                ],
            }
