"""Access policies (attribute-based access control) and how they decide.

Sources: docs.langchain.com/langsmith/abac (structure, operators, the RBAC/ABAC table), the
spec's ``authz_internal.*`` schemas, enterprise-hub.langchain.com/tools/abac-policy-builder.

A policy (org-level) has an ``effect`` (allow or deny) and ``condition_groups``; it applies to
the workspace roles it is attached to. A group names a ``permission`` and a ``resource_type``
and holds ``conditions`` on the resource's tags. Groups are OR'ed, conditions AND'ed. For a key
asking for ``permission`` on a resource (a project; a run is judged by its project's tags):

1. a deny policy of its role with a matching group: denied, whatever else matches;
2. else an allow policy of its role with a matching group: allowed, even without the
   permission in the role (RBAC);
3. else the role's RBAC permissions decide. (The policy builder page says instead that when
   an allow policy exists for the role and none matches, access is denied: ``unmatched="deny"``
   selects that reading, for the (permission, resource type) the allow policy covers.)

A condition compares the values the resource carries for the tag key ``attribute_key``:
``equals`` / ``equals_ignore_case`` / ``matches`` (a glob: ``*`` any string, ``?`` one
character, everything else literal, the whole value) hold when some value matches; their
``not_`` forms when the key is present and no value matches. Without the tag key every operator
is false, and every ``_if_exists`` variant true.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from .clock import iso

Effect = Literal["allow", "deny"]
Unmatched = Literal["rbac", "deny"]
ProjectList = Literal["filter", "forbid"]
WhenDisabled = Literal["accept", "refuse"]

ATTRIBUTE_NAME = "resource_tag_key"  # the only attribute ABAC supports
IF_EXISTS = "_if_exists"

# The docs' table of resource types and the permissions ABAC evaluates for them, kept to the
# names of the spec's Permission enum (prompts:tag, datasets:download, datasets:clone are not in
# it). runs:create is accepted on projects (the docs' note lists it) but ingest never evaluates
# it: tags do not restrict writing traces (docs/langsmith-emulator.md).
RESOURCE_PERMISSIONS: dict[str, frozenset[str]] = {
    "project": frozenset(
        {
            "projects:read",
            "projects:update",
            "projects:delete",
            "projects:increase-trace-tier",
            "projects:decrease-trace-tier",
            "runs:read",
            "runs:share",
            "runs:delete",
            "runs:create",
        }
    ),
    "prompt": frozenset({"prompts:read", "prompts:update", "prompts:delete", "prompts:share"}),
    "dataset": frozenset({"datasets:read", "datasets:update", "datasets:delete", "datasets:share"}),
    "deployment": frozenset({"deployments:read", "deployments:update", "deployments:delete"}),
    "queue": frozenset(
        {
            "annotation-queues:create",
            "annotation-queues:delete",
            "annotation-queues:read",
            "annotation-queues:update",
        }
    ),
    "mcp_server": frozenset(
        {"mcp-servers:read", "mcp-servers:invoke", "mcp-servers:update", "mcp-servers:delete"}
    ),
    "fleet_integration": frozenset({"mcp-servers:read", "mcp-servers:invoke"}),
}


@dataclass(frozen=True)
class Condition:
    attribute_key: str
    operator: str  # authz_internal.AbacOperator
    attribute_value: str
    attribute_name: str = ATTRIBUTE_NAME

    def to_json(self) -> dict[str, Any]:
        return {
            "attribute_name": self.attribute_name,
            "attribute_key": self.attribute_key,
            "operator": self.operator,
            "attribute_value": self.attribute_value,
        }


@dataclass(frozen=True)
class ConditionGroup:
    permission: str
    resource_type: str
    conditions: tuple[Condition, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "permission": self.permission,
            "resource_type": self.resource_type,
            "conditions": [c.to_json() for c in self.conditions],
        }


@dataclass(eq=False)
class AccessPolicy:
    id: str
    name: str
    description: str
    effect: Effect
    condition_groups: tuple[ConditionGroup, ...]
    role_ids: list[str]
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """``authz_internal.AccessPolicy``."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "effect": self.effect,
            "condition_groups": [g.to_json() for g in self.condition_groups],
            "role_ids": list(self.role_ids),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class AbacSettings:
    """How the emulated org treats access policies (``/_emulator/abac``)."""

    enabled: bool = True  # OrganizationConfig.can_use_abac
    # With ABAC off: policies are accepted and stored but never enforced, or refused (403).
    when_disabled: WhenDisabled = "accept"
    # A project list (or an unscoped run read) with a project the key may not read: left out of
    # the answer, or the whole request refused with a 403.
    project_list: ProjectList = "filter"
    # No policy matches although an allow policy covers the permission: RBAC decides, or deny.
    unmatched: Unmatched = "rbac"

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "when_disabled": self.when_disabled,
            "project_list": self.project_list,
            "unmatched": self.unmatched,
        }


# ------------------------------------------------------------------------------ evaluation


@lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` any string (empty too), ``?`` exactly one character, the rest literal."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _compare(base: str, actual: str, expected: str) -> bool:
    if base == "equals":
        return actual == expected
    if base == "equals_ignore_case":
        return actual.casefold() == expected.casefold()
    if base == "matches":
        return glob_regex(expected).fullmatch(actual) is not None
    raise ValueError(f"unknown operator {base!r}")


def condition_holds(condition: Condition, tags: Mapping[str, set[str]]) -> bool:
    """Whether ``condition`` holds on a resource whose tags are ``{key: {values}}``."""
    operator = condition.operator
    if_exists = operator.endswith(IF_EXISTS)
    base = operator.removesuffix(IF_EXISTS)
    values = tags.get(condition.attribute_key)
    if not values:
        return if_exists
    negated = base.startswith("not_")
    base = base.removeprefix("not_")
    hit = any(_compare(base, value, condition.attribute_value) for value in values)
    return not hit if negated else hit


def group_matches(group: ConditionGroup, tags: Mapping[str, set[str]]) -> bool:
    return all(condition_holds(c, tags) for c in group.conditions)


def _groups_for(
    policy: AccessPolicy, permission: str, resource_type: str
) -> Iterable[ConditionGroup]:
    return (
        g
        for g in policy.condition_groups
        if g.permission == permission and g.resource_type == resource_type
    )


def decide(
    policies: Iterable[AccessPolicy],
    permission: str,
    resource_type: str,
    tags: Mapping[str, set[str]],
    *,
    rbac: bool,
    unmatched: Unmatched = "rbac",
) -> bool:
    """Deny beats allow, allow beats RBAC, RBAC decides when nothing matches."""
    allowed = covered = False
    for policy in policies:
        for group in _groups_for(policy, permission, resource_type):
            if policy.effect == "allow":
                covered = True
            if group_matches(group, tags):
                if policy.effect == "deny":
                    return False
                allowed = True
    if allowed:
        return True
    if covered and unmatched == "deny":
        return False
    return rbac


def may_grant(policies: Iterable[AccessPolicy], permission: str, resource_type: str) -> bool:
    """Whether some allow policy has a group for ``permission`` on ``resource_type`` (so it
    may grant it on some resource)."""
    return any(
        policy.effect == "allow" and any(_groups_for(policy, permission, resource_type))
        for policy in policies
    )
