"""Pydantic models of the request bodies that cross the boundary (from the LangSmith spec,
openapi.json)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .abac import RESOURCE_PERMISSIONS
from .control_schema import FaultAction, FaultWhen
from .openapi import enum_values


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TraceTier(StrEnum):
    longlived = "longlived"
    shortlived = "shortlived"


class TracerSessionCreate(_Body):
    name: str | None = None
    description: str | None = None
    extra: dict[str, Any] | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    default_dataset_id: UUID | None = None
    reference_dataset_id: UUID | None = None
    trace_tier: TraceTier | None = None
    id: UUID | None = None
    # Not in the July spec's TracerSessionCreate: the SDK's create_project(tag_value_ids=...)
    # sends it and the resource-tags docs document it (at most 100, tags applied atomically).
    tag_value_ids: list[UUID] | None = Field(default=None, max_length=100)


class TracerSessionUpdate(_Body):
    name: str | None = None
    description: str | None = None
    default_dataset_id: UUID | None = None
    end_time: datetime | None = None
    extra: dict[str, Any] | None = None
    trace_tier: TraceTier | None = None


class APIKeyCreateRequest(_Body):
    description: str = "Default API key"
    read_only: bool = False
    expires_at: datetime | None = None
    workspaces: list[UUID] | None = None
    role_id: UUID | None = None
    org_role_id: UUID | None = None
    default_workspace_id: UUID | None = None


_DISPLAY_NAME = r"^[a-zA-Z0-9\-_ '@()]+$"


class WorkspaceCreate(_Body):
    id: UUID | None = None
    display_name: str = Field(min_length=1, pattern=_DISPLAY_NAME)
    tenant_handle: str | None = None


class WorkspacePatch(_Body):
    display_name: str = Field(min_length=1, pattern=_DISPLAY_NAME)


TagText = Annotated[str, Field(min_length=1, max_length=255)]


class TagKeyCreate(_Body):
    key: TagText
    description: str | None = None


class TagKeyUpdate(_Body):
    key: TagText | None = None
    description: str | None = None


class TagValueCreate(_Body):
    value: TagText
    description: str | None = None


class TagValueUpdate(_Body):
    value: TagText | None = None
    description: str | None = None


def _resource_type(value: str) -> str:
    if value not in enum_values("ResourceType"):
        raise ValueError(f"resource_type must be one of {sorted(enum_values('ResourceType'))}")
    return value


class TaggingCreate(_Body):
    tag_value_id: UUID
    resource_type: str
    resource_id: UUID

    _check_type = field_validator("resource_type")(_resource_type)


class ListTagsForResourceRequest(_Body):
    resource_id: UUID
    resource_type: str

    _check_type = field_validator("resource_type")(_resource_type)


class CreateRoleRequest(_Body):
    """``CreateRoleRequest`` (and ``UpdateRoleRequest``, the same fields). ``access_scope`` is
    not in the spec's body; the support article's example sends it, so it is accepted (only
    ``workspace``: custom organization roles do not exist)."""

    display_name: str = Field(min_length=1)
    description: str
    permissions: list[str]
    access_scope: Literal["workspace"] | None = None


class AbacConditionBody(_Body):
    """``authz_internal.Condition``."""

    attribute_name: Literal["resource_tag_key"] = "resource_tag_key"
    attribute_key: str = Field(min_length=1)
    operator: str
    attribute_value: str = Field(min_length=1)

    @field_validator("operator")
    @classmethod
    def _operator(cls, value: str) -> str:
        if value not in enum_values("authz_internal.AbacOperator"):
            raise ValueError(f"unknown operator {value!r}")
        return value


class AbacConditionGroupBody(_Body):
    """``authz_internal.ConditionGroup``: a permission ABAC evaluates for the resource type."""

    permission: str
    resource_type: str
    conditions: list[AbacConditionBody] = Field(min_length=1)

    @model_validator(mode="after")
    def _permission_for_type(self) -> AbacConditionGroupBody:
        if self.permission not in enum_values("authz_internal.Permission"):
            raise ValueError(f"unknown permission {self.permission!r}")
        supported = RESOURCE_PERMISSIONS.get(self.resource_type)
        if supported is None:
            raise ValueError(
                f"resource_type must be one of {sorted(RESOURCE_PERMISSIONS)}, "
                f"not {self.resource_type!r}"
            )
        if self.permission not in supported:
            raise ValueError(
                f"{self.permission} is not evaluated for {self.resource_type} resources"
            )
        return self


class CreateAccessPolicyPayload(_Body):
    """``authz_internal.CreateAccessPolicyPayload``."""

    name: str = Field(min_length=1)
    description: str | None = None
    effect: Literal["allow", "deny"]
    condition_groups: list[AbacConditionGroupBody] = Field(min_length=1)
    role_ids: list[str] | None = None  # if present, attach to these roles


class AttachAccessPoliciesPayload(_Body):
    """``authz_internal.AttachAccessPoliciesPayload``."""

    access_policy_ids: list[str] = Field(min_length=1)


class UsageLimitType(StrEnum):
    monthly_traces = "monthly_traces"
    monthly_longlived_traces = "monthly_longlived_traces"


class UpsertUsageLimit(_Body):
    limit_type: UsageLimitType
    limit_value: int
    id: UUID | None = None


class RunTypeEnum(StrEnum):
    tool = "tool"
    chain = "chain"
    llm = "llm"
    retriever = "retriever"
    embedding = "embedding"
    prompt = "prompt"
    parser = "parser"


class _RunFilter(_Body):
    id: list[UUID] | None = None
    trace: UUID | None = None
    parent_run: UUID | None = None
    run_type: RunTypeEnum | None = None
    session: list[UUID] | None = None
    reference_example: list[UUID] | None = None
    execution_order: int | None = Field(default=None, ge=1, le=1)
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: bool | None = None
    query: str | None = None
    filter: str | None = None
    trace_filter: str | None = None
    tree_filter: str | None = None
    is_root: bool | None = None
    data_source_type: str | None = None
    skip_pagination: bool | None = None
    search_filter: str | None = None
    use_experimental_search: bool = False


class RunStatsQueryParams(_RunFilter):
    group_by: dict[str, Any] | None = None
    groups: list[str | None] | None = None
    select: list[str] | None = None


class RunsQueryBody(_RunFilter):
    cursor: str | None = None
    limit: int = Field(default=100, ge=1, le=100)
    select: list[str] | None = None
    order: Literal["asc", "desc"] = "desc"
    skip_prev_cursor: bool = False


V2RunType = Literal["TOOL", "CHAIN", "LLM", "RETRIEVER", "EMBEDDING", "PROMPT", "PARSER"]


class QueryRunsBody(_Body):
    """``query.QueryRunsRequestBody`` (``POST /v2/runs/query``), plus the SDK's extra filters."""

    project_ids: list[UUID] | None = None
    reference_dataset_id: UUID | None = None
    min_start_time: datetime | None = None
    max_start_time: datetime | None = None
    page_size: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = None
    selects: list[str] | None = None  # query.RunSelectField, checked against the spec's enum
    is_root: bool | None = None
    has_error: bool | None = None
    ids: list[UUID] | None = None
    trace_id: UUID | None = None
    run_type: V2RunType | None = None
    reference_examples: list[UUID] | None = None
    sort_order: Literal["ASC", "DESC"] = "DESC"
    # Expressions and AI search, which the emulator does not evaluate (refused with a 400).
    filter: str | None = None
    trace_filter: str | None = None
    tree_filter: str | None = None
    ai_query: str | None = None
    ai_search: str | None = None
    sem_filter: str | None = None
    include_subtree_usage: bool = False


ExpiryDays = Annotated[int, Field(ge=1)]  # a cap of zero days or fewer would refuse every key


class OrganizationUpdate(_Body):
    """The spec's ``OrganizationUpdate`` (``unshare_all``, an action, is not emulated)."""

    display_name: str | None = Field(default=None, min_length=1, pattern=r"^[a-zA-Z0-9\-_ ]+$")
    public_sharing_disabled: bool | None = None
    pat_creation_disabled: bool | None = None
    jit_provisioning_enabled: bool | None = None
    workspace_admin_can_invite_to_org: bool | None = None
    invites_enabled: bool | None = None
    max_api_key_expiry_days: ExpiryDays | None = None
    security_contact: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    max_pat_expiry_days: ExpiryDays | None = None
    max_service_key_expiry_days: ExpiryDays | None = None
    scim_group_name_separator: str | None = Field(default=None, min_length=1, max_length=1)
    llm_auth_proxy_enabled: bool | None = None
    llm_auth_proxy_jwt_audience: str | None = None
    ip_allowlist: list[str] | None = None
    restrict_browser_secrets: bool | None = None
    llm_auth_proxy_allowed_urls: list[str] | None = None
    engine_enabled: bool | None = None


# ---------------------------------------------------------------- control API (/_emulator/*)


class FaultSpec(_Body):
    method: str = "*"
    route: str | None = None  # route template, /api/v1 or unprefixed form; None = any
    action: FaultAction = "status"
    status: int = Field(default=503, ge=100, le=599)
    count: int | None = Field(default=1, ge=1)  # None = until cleared
    retry_after: float | None = Field(default=None, ge=0)
    hang_seconds: float | None = Field(default=None, ge=0)
    when: FaultWhen = "before"
    skip: int = Field(default=0, ge=0)
    key_id: str | None = None
    # status: the JSON body to answer with; mangle: fields merged over the real reply
    body: dict[str, Any] | None = None
    remove: list[str] = Field(default_factory=list)  # mangle: the real reply's fields to drop

    @model_validator(mode="after")
    def _mangle_after_only(self) -> FaultSpec:
        if self.action == "mangle" and self.when != "after":
            raise ValueError('action "mangle" rewrites the real reply: it needs when="after"')
        if self.remove and self.action != "mangle":
            raise ValueError('"remove" is for action "mangle" only')
        return self


class ConfigureBody(_Body):
    latency_ms: float | None = Field(default=None, ge=0)
    latency_jitter_ms: float | None = Field(default=None, ge=0)
    route_latency_ms: dict[str, float] | None = None  # {"POST /api/v1/api-key": 120}
    # True: the Cloud table; a dict overrides classes (count, "count/seconds" or an object).
    rate_limits: bool | dict[str, int | str | dict[str, float]] | None = None
    rate_window_seconds: float | None = Field(default=None, gt=0)


class OrgSettingsBody(_Body):
    """``POST /_emulator/org``: the org's key-lifetime caps (an explicit null clears one)."""

    model_config = ConfigDict(extra="forbid")
    max_api_key_expiry_days: ExpiryDays | None = None
    max_service_key_expiry_days: ExpiryDays | None = None
    max_pat_expiry_days: ExpiryDays | None = None


class AbacSettingsBody(_Body):
    """``POST /_emulator/abac``: the fields sent are set (abac.AbacSettings)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    when_disabled: Literal["accept", "refuse"] | None = None
    project_list: Literal["filter", "forbid"] | None = None
    unmatched: Literal["rbac", "deny"] | None = None


class ClockBody(_Body):
    advance_seconds: float
