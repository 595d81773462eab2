"""Tagged isolation (docs/isolation.md): tenants share one workspace, and each tenant's keys
may read only its own project, by LangSmith's resource tags, custom roles and access policies.

Per tenant, in the shared workspace:
- its project carries the tool's tag key `tenant-keys-tenant` with the tenant id as value;
- a workspace role with no read permission of its own (it writes traces, nothing else);
- an allow policy granting `projects:read` and `runs:read` on projects whose tag equals the
  tenant id, attached to that role;
- its keys are minted with that role.

The mode proves itself: before a key of this mode is stored or promoted, it must read its own
project and be refused the canary project (a project the tool keeps untagged) and its runs. If
it is not (an organization without ABAC, policies that do not apply to keys, a role that reads
everything), the caller fails closed with `IsolationNotProven`.

What proves an object is the tool's and this tenant's (as a key's description does for keys):
a role's display name and a policy's name are `tenant-keys tenant=<id>` and their description
carries the tool's marker; a tag value is the tenant id under the tool's tag key, described
with the marker. Nothing else is ever changed or deleted. The tag key is shared by every
tenant and never deleted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tenant_keys.errors import (
    ConfigError,
    Forbidden,
    IsolationNotProven,
    KeyTestFailed,
    LangSmithError,
    NotOwned,
)
from tenant_keys.langsmith import AccessPolicy, LangSmithAdmin, Project, Role, TagKeyWithValues
from tenant_keys.langsmith.client import TenantRead
from tenant_keys.langsmith.models import TagValue
from tenant_keys.layout import TenantKeyRecord
from tenant_keys.models import TENANT_ID_PATTERN
from tenant_keys.settings import TAGGED_MODE_NEEDS_ORG

log = logging.getLogger(__name__)

TAG_KEY = "tenant-keys-tenant"
# Never tagged: a tagged key must be refused here. Not `tenant-<slug>`, so no tenant's project
# can ever be it.
CANARY_PROJECT = "tenant-keys.canary"
MARKER = "(managed by tenant-keys)"
# The role writes traces and reads nothing by itself, so only the allow policy grants reads,
# whichever way LangSmith settles a permission no policy matches.
ROLE_PERMISSIONS: tuple[str, ...] = ("runs:create",)
GRANTED: tuple[str, ...] = ("projects:read", "runs:read")
_ACCESS_NAME = re.compile(r"^tenant-keys tenant=(?P<tenant>[a-z0-9-]+)$")

PROBE_ATTEMPTS = 4
PROBE_DELAY_SECONDS = 0.4

ONBOARDING_STOPPED = (
    "onboarding stopped: no secret was stored and what this run created was removed"
)
KEY_NOT_PROMOTED = "the new key was deleted and not promoted; the current key stays"


# -- names and proofs ----------------------------------------------------------------------------


def access_name(tenant_id: str) -> str:
    """The display name of the tenant's role, and the name of its policy."""
    return f"tenant-keys tenant={tenant_id}"


def tenant_of(name: str) -> str | None:
    """The tenant a role's or policy's name is for; None if it is not a name the tool gives
    (the tool names only valid tenant ids: anything else only looks like its own)."""
    match = _ACCESS_NAME.fullmatch(name)
    return match["tenant"] if match and TENANT_ID_PATTERN.fullmatch(match["tenant"]) else None


def role_description(tenant_id: str) -> str:
    return f"Keys of tenant {tenant_id}: write traces; reads come from its access policy {MARKER}"


def policy_description(tenant_id: str) -> str:
    return f"Reads of projects tagged {TAG_KEY}={tenant_id} {MARKER}"


def value_description(tenant_id: str) -> str:
    return f"Tenant {tenant_id}: its project {MARKER}"


def role_tenant(role: Role) -> str | None:
    """The tenant whose role this is, if the tool made it; None for anyone else's role."""
    if role.organization_id is None or MARKER not in role.description:
        return None
    return tenant_of(role.display_name)


def policy_tenant(policy: AccessPolicy) -> str | None:
    return tenant_of(policy.name) if MARKER in policy.description else None


def value_tenant(key: TagKeyWithValues, value: TagValue) -> str | None:
    if key.key != TAG_KEY or MARKER not in (value.description or ""):
        return None
    return value.value if tenant_of(access_name(value.value)) else None


def policy_groups(tenant_id: str) -> list[dict[str, Any]]:
    condition = {
        "attribute_name": "resource_tag_key",
        "attribute_key": TAG_KEY,
        "operator": "equals",
        "attribute_value": tenant_id,
    }
    return [
        {"permission": permission, "resource_type": "project", "conditions": [condition]}
        for permission in GRANTED
    ]


def policy_matches(policy: AccessPolicy, tenant_id: str) -> bool:
    """The policy grants exactly the tenant's reads: allow, the two groups, on its tag only."""

    def canonical(groups: list[dict[str, Any]]) -> list[tuple[str, str, list[list[Any]]]]:
        return sorted(
            (
                g["permission"],
                g["resource_type"],
                sorted(sorted(c.items()) for c in g["conditions"]),
            )
            for g in groups
        )

    listed = [g.model_dump() for g in policy.condition_groups]
    return policy.effect == "allow" and canonical(listed) == canonical(policy_groups(tenant_id))


def role_matches(role: Role) -> bool:
    return sorted(role.permissions) == sorted(ROLE_PERMISSIONS)


# -- what LangSmith has of the tool's objects -----------------------------------------------------


class ToolAccess(BaseModel):
    """The tool's objects of tagged isolation as LangSmith lists them, by tenant (four listing
    calls); objects the tool cannot prove its own are left out, so nothing can touch them."""

    model_config = ConfigDict(frozen=True)

    tag_key_id: str | None = None
    values: dict[str, list[TagValue]] = {}
    # Tag value id -> the projects it tags.
    tagged: dict[str, list[str]] = {}
    roles: dict[str, list[Role]] = {}
    policies: dict[str, list[AccessPolicy]] = {}
    # Every policy's id -> the roles it is attached to, the tool's or not.
    attached: dict[str, list[str]] = {}

    @property
    def tenants(self) -> set[str]:
        return set(self.values) | set(self.roles) | set(self.policies)

    def policies_on(self, role_id: str) -> list[str]:
        return sorted(p for p, roles in self.attached.items() if role_id in roles)


def list_tool_access(langsmith: LangSmithAdmin) -> ToolAccess:
    tags = langsmith.list_tags()
    key = next((k for k in tags if k.key == TAG_KEY), None)
    values: dict[str, list[TagValue]] = {}
    if key is not None:
        for value in key.values:
            if (tenant := value_tenant(key, value)) is not None:
                values.setdefault(tenant, []).append(value)
    ours = {v.id for found in values.values() for v in found}
    tagged = {
        t.tag_value_id: [p.resource_id for p in t.resources.projects]
        for t in langsmith.list_taggings()
        if t.tag_value_id in ours
    }
    roles: dict[str, list[Role]] = {}
    for role in langsmith.list_roles():
        if (tenant := role_tenant(role)) is not None:
            roles.setdefault(tenant, []).append(role)
    policies: dict[str, list[AccessPolicy]] = {}
    attached: dict[str, list[str]] = {}
    for policy in langsmith.list_access_policies():
        attached[policy.id] = list(policy.role_ids)
        if (tenant := policy_tenant(policy)) is not None:
            policies.setdefault(tenant, []).append(policy)
    return ToolAccess(
        tag_key_id=key.id if key else None,
        values=values,
        tagged=tagged,
        roles=roles,
        policies=policies,
        attached=attached,
    )


# -- provisioning: each step finds before it creates ----------------------------------------------

Created = Literal["tag-key", "tag-value", "tagging", "role", "policy"]


class Provisioned(BaseModel):
    """The tenant's objects of tagged isolation, and which of them this run created (what a
    failure removes again)."""

    tag_key_id: str
    tag_value_id: str
    role_id: str
    policy_id: str
    tagging_id: str | None = None
    created: list[Created] = []


def _find_or_create(
    find: Callable[[], str | None],
    create: Callable[[], str],
    *,
    known: tuple[str | None] | None = None,
) -> tuple[str, bool]:
    """(id, created now). `known` is what a listing already taken found, to save a call. A
    create whose answer was lost, or that a racer beat (409), is found again rather than
    repeated."""
    found = find() if known is None else known[0]
    if found is not None:
        return found, False
    try:
        return create(), True
    except LangSmithError as exc:
        if exc.status != 409 and not exc.maybe_applied:
            raise
        again = find()
        if again is None:
            raise
        return again, exc.maybe_applied


def _tool_key(tags: list[TagKeyWithValues]) -> TagKeyWithValues | None:
    return next((k for k in tags if k.key == TAG_KEY), None)


def _value_id(key: TagKeyWithValues | None, tenant_id: str) -> str | None:
    """The tenant's value under the tool's key; `NotOwned` if that value is not the tool's."""
    value = next((v for v in key.values if v.value == tenant_id), None) if key else None
    if value is None or key is None:
        return None
    if value_tenant(key, value) != tenant_id:
        raise NotOwned(tenant_id, f"tag value {TAG_KEY}={tenant_id}", "the tool did not make it")
    return value.id


def ensure_tag_value(langsmith: LangSmithAdmin, tenant_id: str) -> tuple[str, str, list[Created]]:
    """(tag key id, the tenant's tag value id, which of the two were created now): one listing
    when both exist."""
    tags = langsmith.list_tags()
    listed = _tool_key(tags)

    def create_key() -> str:
        description = f"The tenant whose keys may read the project {MARKER}"
        return langsmith.create_tag_key(TAG_KEY, description=description).id

    key_id, new_key = _find_or_create(
        lambda: getattr(_tool_key(langsmith.list_tags()), "id", None),
        create_key,
        known=(listed.id if listed else None,),
    )

    def find_value() -> str | None:
        return _value_id(
            next((k for k in langsmith.list_tags() if k.id == key_id), None), tenant_id
        )

    def create_value() -> str:
        description = value_description(tenant_id)
        return langsmith.create_tag_value(key_id, tenant_id, description=description).id

    value_id, new_value = _find_or_create(
        find_value,
        create_value,
        known=(_value_id(listed, tenant_id),) if listed and listed.id == key_id else None,
    )
    created: list[Created] = ["tag-key"] if new_key else []
    return key_id, value_id, created + (["tag-value"] if new_value else [])


def ensure_tagging(
    langsmith: LangSmithAdmin, tag_value_id: str, project_id: str
) -> tuple[str | None, bool]:
    def find() -> str | None:
        for key in langsmith.project_tags(project_id):
            for value in key.values:
                if value.id == tag_value_id:
                    return next((t.id for t in value.taggings), "")
        return None

    def create() -> str:
        return langsmith.tag_project(tag_value_id, project_id).id

    tagging_id, created = _find_or_create(find, create)
    return tagging_id or None, created


def ensure_role(langsmith: LangSmithAdmin, tenant_id: str) -> tuple[str, bool]:
    """The tenant's role, with exactly the role's permissions (a found role that has others is
    set back, loudly: a read permission of its own would reach every project)."""

    def find() -> str | None:
        role = next((r for r in langsmith.list_roles() if role_tenant(r) == tenant_id), None)
        if role is not None and not role_matches(role):
            log.warning(
                "tenant=%s role %s had permissions %s: set back to %s",
                tenant_id,
                role.id,
                sorted(role.permissions),
                list(ROLE_PERMISSIONS),
            )
            set_role_permissions(langsmith, tenant_id, role.id)
        return role.id if role else None

    def create() -> str:
        try:
            role = langsmith.create_role(
                access_name(tenant_id),
                description=role_description(tenant_id),
                permissions=list(ROLE_PERMISSIONS),
            )
        except Forbidden:
            raise ConfigError(
                f"LangSmith refused to create a role: {TAGGED_MODE_NEEDS_ORG}"
            ) from None
        return role.id

    return _find_or_create(find, create)


def set_role_permissions(langsmith: LangSmithAdmin, tenant_id: str, role_id: str) -> None:
    langsmith.update_role(
        role_id,
        access_name(tenant_id),
        description=role_description(tenant_id),
        permissions=list(ROLE_PERMISSIONS),
    )


def ensure_policy(
    langsmith: LangSmithAdmin, tenant_id: str, role_id: str, consequence: str
) -> tuple[str, bool]:
    """The tenant's allow policy, attached to its role. A policy of the tool for this tenant that
    no longer grants exactly its reads is deleted, never reused."""

    def find() -> str | None:
        found = None
        listed = langsmith.list_access_policies()
        refuse_foreign_policies(listed, tenant_id, role_id, consequence)
        for policy in listed:
            if policy_tenant(policy) != tenant_id:
                continue
            if not policy_matches(policy, tenant_id):
                log.warning(
                    "tenant=%s access policy %s no longer matches its tenant: deleted",
                    tenant_id,
                    policy.id,
                )
                langsmith.delete_access_policy(policy.id)
            elif found is None or role_id in policy.role_ids:
                found = policy
        if found is not None and role_id not in found.role_ids:
            langsmith.attach_access_policies(role_id, [found.id])
        return found.id if found else None

    def create() -> str:
        return langsmith.create_access_policy(
            access_name(tenant_id),
            description=policy_description(tenant_id),
            effect="allow",
            condition_groups=policy_groups(tenant_id),
            role_ids=[role_id],
        )

    try:
        return _find_or_create(find, create)
    except Forbidden as exc:
        raise IsolationNotProven(
            tenant_id,
            f"LangSmith refused the access policy ({exc.detail or 403}): access policies "
            "(ABAC) need an Enterprise plan and an Organization Admin key",
            consequence,
        ) from None


def refuse_foreign_policies(
    policies: list[AccessPolicy], tenant_id: str, role_id: str, consequence: str
) -> None:
    """Only the tenant's own policies may be attached to its role: any other could grant reads
    of other tenants' projects, and the tool may not remove it (it is not the tool's)."""
    others = [p.id for p in policies if role_id in p.role_ids and policy_tenant(p) != tenant_id]
    if others:
        raise IsolationNotProven(
            tenant_id,
            f"its role {role_id} has other access policies attached ({', '.join(others)}): "
            "detach them in LangSmith, then rerun",
            consequence,
        )


def provision(
    langsmith: LangSmithAdmin, tenant_id: str, project: Project, consequence: str
) -> Provisioned:
    """Tag the tenant's project and make its role and policy; each found if it exists. Raises
    after removing what this call created (`consequence` ends a refusal's message)."""
    created: list[Created] = []
    done = Provisioned(tag_key_id="", tag_value_id="", role_id="", policy_id="")
    try:
        tag_key_id, value_id, created = ensure_tag_value(langsmith, tenant_id)
        done = done.model_copy(update={"tag_key_id": tag_key_id, "tag_value_id": value_id})
        tagging_id, new = ensure_tagging(langsmith, value_id, project.id)
        done = done.model_copy(update={"tagging_id": tagging_id})
        created += ["tagging"] if new else []
        role_id, new = ensure_role(langsmith, tenant_id)
        done = done.model_copy(update={"role_id": role_id})
        created += ["role"] if new else []
        policy_id, new = ensure_policy(langsmith, tenant_id, role_id, consequence)
        done = done.model_copy(update={"policy_id": policy_id})
        created += ["policy"] if new else []
    except BaseException:
        undo(langsmith, tenant_id, done.model_copy(update={"created": created}))
        raise
    return done.model_copy(update={"created": created})


def undo(langsmith: LangSmithAdmin, tenant_id: str, provisioned: Provisioned) -> None:
    """Remove what a provisioning created, newest first (the shared tag key stays). Best effort:
    the caller is already failing, and what is left is found by reconcile as the tool's."""
    steps: list[tuple[Created, Callable[[], object]]] = [
        ("policy", lambda: langsmith.delete_access_policy(provisioned.policy_id)),
        ("role", lambda: langsmith.delete_role(provisioned.role_id)),
        (
            "tag-value",
            lambda: langsmith.delete_tag_value(provisioned.tag_key_id, provisioned.tag_value_id),
        ),
        ("tagging", lambda: langsmith.delete_tagging(provisioned.tagging_id or "")),
    ]
    for what, step in steps:
        if what not in provisioned.created:
            continue
        if what == "tagging" and (
            "tag-value" in provisioned.created or provisioned.tagging_id is None
        ):
            continue  # went with its value
        try:
            step()
        except LangSmithError as exc:
            log.warning("tenant=%s could not remove its %s: %s", tenant_id, what, exc)


# -- repair (reconcile) ----------------------------------------------------------------------------

REPAIR_STOPPED = "reconcile left the tenant's access as it was"


def restore(
    langsmith: LangSmithAdmin,
    tenant_id: str,
    project_id: str,
    *,
    role_id: str | None,
) -> Provisioned:
    """Make the tenant's objects what the tool makes them, keeping those its secret names where
    they are sound: its tag value on its project; its role (the one named, else another of the
    tool's for it, else a new one) with exactly the role's permissions; one matching policy
    attached to it (others of the tool for the tenant are deleted). Every change is logged."""
    found = list_tool_access(langsmith)
    tag_key_id, value_id, created = ensure_tag_value(langsmith, tenant_id)
    tagging_id, tagged_now = ensure_tagging(langsmith, value_id, project_id)
    created += ["tagging"] if tagged_now else []
    roles = found.roles.get(tenant_id, [])
    role = next((r for r in roles if r.id == role_id), roles[0] if roles else None)
    if role is None:
        kept_role, _ = ensure_role(langsmith, tenant_id)
        created.append("role")
    else:
        kept_role = role.id
        if not role_matches(role):
            log.warning("tenant=%s role %s had other permissions: set back", tenant_id, role.id)
            set_role_permissions(langsmith, tenant_id, role.id)
    kept_policy, new = ensure_policy(langsmith, tenant_id, kept_role, REPAIR_STOPPED)
    created += ["policy"] if new else []
    for policy in langsmith.list_access_policies():
        if policy_tenant(policy) == tenant_id and policy.id != kept_policy:
            log.warning(
                "tenant=%s second access policy %s of the tool: deleted", tenant_id, policy.id
            )
            langsmith.delete_access_policy(policy.id)
    if created:
        log.warning("tenant=%s access objects made again: %s", tenant_id, ", ".join(created))
    return Provisioned(
        tag_key_id=tag_key_id,
        tag_value_id=value_id,
        role_id=kept_role,
        policy_id=kept_policy,
        tagging_id=tagging_id,
        created=created,
    )


def remove_other_roles(langsmith: LangSmithAdmin, tenant_id: str, keep: str) -> list[str]:
    """Delete the tool's roles of the tenant but `keep` (once no key carries them)."""
    return [
        role.id
        for role in langsmith.list_roles()
        if role_tenant(role) == tenant_id and role.id != keep and langsmith.delete_role(role.id)
    ]


# -- removal (offboarding, reconcile) --------------------------------------------------------------


class Removed(BaseModel):
    policies: list[str] = []
    roles: list[str] = []
    tag_values: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.policies or self.roles or self.tag_values)


def remove_access(
    langsmith: LangSmithAdmin, tenant_id: str, *, keep_roles: frozenset[str] = frozenset()
) -> Removed:
    """Delete every object of tagged isolation that LangSmith lists as the tool's for this
    tenant (the listing is the proof): policies first, then roles (a role that keys still carry
    is refused by LangSmith: revoke them first), then its tag value (and so its taggings)."""
    found = list_tool_access(langsmith)
    removed = Removed()
    for policy in found.policies.get(tenant_id, []):
        if langsmith.delete_access_policy(policy.id):
            removed.policies.append(policy.id)
    for role in found.roles.get(tenant_id, []):
        if role.id not in keep_roles and langsmith.delete_role(role.id):
            removed.roles.append(role.id)
    for value in found.values.get(tenant_id, []):
        if found.tag_key_id and langsmith.delete_tag_value(found.tag_key_id, value.id):
            removed.tag_values.append(value.id)
    return removed


# -- the probe -------------------------------------------------------------------------------------


def ensure_canary(langsmith: LangSmithAdmin) -> Project:
    """The untagged project every tagged key must be refused (made if missing)."""
    return langsmith.ensure_project(
        CANARY_PROJECT,
        description="Never tagged: tenant keys of tagged isolation must be refused here " + MARKER,
    )


class Probe(BaseModel):
    """What a key got: its own project, and another project and that project's runs."""

    model_config = ConfigDict(frozen=True)

    target: str  # the other project, as a reader would name it
    own_project: TenantRead
    other_project: TenantRead
    other_runs: TenantRead

    @property
    def authenticated(self) -> bool:
        return "unauthenticated" not in (self.own_project, self.other_project, self.other_runs)

    @property
    def confined(self) -> bool:
        return (self.own_project, self.other_project, self.other_runs) == (
            "readable",
            "refused",
            "refused",
        )

    def failure(self) -> str | None:
        """Why the key is not confined, in one line; None if it is."""
        if self.confined:
            return None
        if not self.authenticated:
            return "the key was not accepted (401)"
        read = [
            what
            for what, outcome in (("project", self.other_project), ("runs", self.other_runs))
            if outcome == "readable"
        ]
        if read:
            return (
                f"the key read the {' and '.join(read)} of {self.target}, which is not tagged for "
                "it: its role reads projects of its own accord, or the organization does not "
                "enforce access policies"
            )
        return (
            "the key was refused its own project: its access policy did not apply (an "
            "organization without ABAC, an Enterprise feature, or a LangSmith that does not "
            "apply access policies to API keys)"
        )


def probe(
    langsmith: LangSmithAdmin,
    record: TenantKeyRecord,
    target_project_id: str,
    target: str,
    *,
    attempts: int = PROBE_ATTEMPTS,
    delay: float = PROBE_DELAY_SECONDS,
) -> Probe:
    """Read with the record's key: its own project, then the target project and its runs. A
    new key, tag or policy may take a moment to apply: asked again a few times until the key
    is confined, then the last answer is returned. Three calls per attempt, all with the key
    itself (none of the admin key's rate limit)."""
    result: Probe | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(delay * attempt)
        key, workspace = record.api_key, record.workspace_id
        result = Probe(
            target=target,
            own_project=langsmith.reads_project_as(key, record.project_id, workspace_id=workspace),
            other_project=langsmith.reads_project_as(
                key, target_project_id, workspace_id=workspace
            ),
            other_runs=langsmith.reads_runs_as(key, target_project_id, workspace_id=workspace),
        )
        if result.confined:
            return result
    assert result is not None
    return result


def prove_isolation(
    langsmith: LangSmithAdmin, record: TenantKeyRecord, tenant_id: str, consequence: str
) -> Probe:
    """The key reads its own project and is refused the canary project and its runs; else
    `IsolationNotProven` (or `KeyTestFailed` if the key is never accepted)."""
    canary = ensure_canary(langsmith)
    seen = probe(langsmith, record, canary.id, f"the canary project {CANARY_PROJECT}")
    if not seen.authenticated:
        raise KeyTestFailed(tenant_id, record.key_id, "rejected with 401")
    if not seen.confined:
        reason = seen.failure() or ""
        carried = [
            f"{k.key}={v.value}" for k in langsmith.project_tags(canary.id) for v in k.values
        ]
        if carried and "readable" in (seen.other_project, seen.other_runs):
            reason = (
                f"the key read the canary project {CANARY_PROJECT}, which must carry no tags "
                f"but carries {', '.join(carried)}: remove them in LangSmith"
            )
        raise IsolationNotProven(tenant_id, reason, consequence)
    return seen
