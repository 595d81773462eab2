"""Tenant keys at LangSmith: where they live (`KeyHome`), minting, testing, deleting.

A minted key's secret lives only inside `mint_and_store` (or onboarding's `issue_key`)
until it is written to Secrets Manager; everything returned from here is an id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
    wait_incrementing,
)

from tenant_keys import minting
from tenant_keys.errors import (
    Forbidden,
    IsolationNotProven,
    KeyTestFailed,
    LangSmithError,
    RevokeFailed,
    SecretStoreError,
    TenantNotFound,
)
from tenant_keys.langsmith import ApiKeyInfo, CreatedApiKey, LangSmithAdmin
from tenant_keys.layout import (
    TAG_ISOLATION,
    TAG_POLICY,
    TAG_ROLE,
    TAG_TAG_VALUE,
    TAG_WORKSPACE,
    TenantKeyRecord,
)
from tenant_keys.models import (
    IsolationMode,
    key_description,
    parse_key_description,
    utcnow,
    version_token,
)
from tenant_keys.services import Services
from tenant_keys.tagged import KEY_NOT_PROMOTED, prove_isolation

log = logging.getLogger(__name__)


class KeyHome(BaseModel):
    """Where a tenant's keys live, and so which LangSmith endpoints manage them: the one seam
    between the isolation modes (docs/isolation.md).

    - project mode: workspace keys of the shared workspace (`/api-key`);
    - workspace mode: org service keys scoped to exactly the tenant's workspace
      (`/orgs/current/service-keys`, `workspaces: [id]`); the admin key is org-scoped;
    - tagged mode: workspace keys of the shared workspace minted with the tenant's role, whose
      access policy lets them read only the project tagged with the tenant's id
      (`tenant_keys.tagged`). A new key is put in use only once the probe has seen it confined.
    """

    model_config = ConfigDict(frozen=True)

    mode: IsolationMode = "project"
    workspace_id: str | None = None  # workspace mode: the tenant's own workspace
    # Tagged mode: the role its keys are minted with, the policy attached to it, and the tag
    # value on its project.
    role_id: str | None = None
    policy_id: str | None = None
    tag_value_id: str | None = None

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> KeyHome:
        """Where a tenant secret's tags say its keys live (no tag: project mode)."""
        mode = tags.get(TAG_ISOLATION)
        if mode == "workspace":
            return cls(mode="workspace", workspace_id=tags.get(TAG_WORKSPACE))
        if mode == "tagged":
            return cls(
                mode="tagged",
                role_id=tags.get(TAG_ROLE) or None,
                policy_id=tags.get(TAG_POLICY) or None,
                tag_value_id=tags.get(TAG_TAG_VALUE) or None,
            )
        return PROJECT_HOME

    def tags(self) -> dict[str, str]:
        if self.mode == "workspace":
            assert self.workspace_id, "a workspace home names its workspace"
            return {TAG_ISOLATION: "workspace", TAG_WORKSPACE: self.workspace_id}
        if self.mode == "tagged":
            assert self.role_id and self.policy_id and self.tag_value_id, "a tagged home names all"
            return {
                TAG_ISOLATION: "tagged",
                TAG_ROLE: self.role_id,
                TAG_POLICY: self.policy_id,
                TAG_TAG_VALUE: self.tag_value_id,
            }
        return {TAG_ISOLATION: "project"}

    @property
    def service_key(self) -> bool:
        return self.mode == "workspace"

    def create(
        self, langsmith: LangSmithAdmin, description: str, *, expires_at: datetime | None
    ) -> CreatedApiKey:
        if self.mode == "workspace":
            assert self.workspace_id, "a workspace home names its workspace"
            return langsmith.create_service_key(
                description, expires_at=expires_at, workspaces=[self.workspace_id]
            )
        if self.mode == "tagged":
            if not self.role_id:
                # Without its role a key would get LangSmith's default: Workspace Admin.
                owner = parse_key_description(description)
                raise IsolationNotProven(
                    owner[0] if owner else description,
                    "its secret names no role (tag tenant-keys:role-id)",
                    "no key was minted: run `tenant-keys reconcile --apply`",
                )
            return langsmith.create_key(description, expires_at=expires_at, role_id=self.role_id)
        return langsmith.create_key(description, expires_at=expires_at)

    def confine(
        self,
        langsmith: LangSmithAdmin,
        record: TenantKeyRecord,
        tenant_id: str,
        *,
        consequence: str = KEY_NOT_PROMOTED,
    ) -> None:
        """What a new key must show before it is stored or put in use, beyond authenticating:
        in tagged mode, the probe sees it read its own project and refused the canary project
        and its runs (`IsolationNotProven` otherwise); the other modes have nothing to show."""
        if self.mode == "tagged":
            prove_isolation(langsmith, record, tenant_id, consequence)

    def test(
        self,
        langsmith: LangSmithAdmin,
        record: TenantKeyRecord,
        tenant_id: str,
        *,
        consequence: str = KEY_NOT_PROMOTED,
    ) -> None:
        """A new key is fit for use: it authenticates (bounded retries), and is confined."""
        if self.mode == "tagged":
            self.confine(langsmith, record, tenant_id, consequence=consequence)  # reads prove it
        else:
            check_key(langsmith, record, tenant_id)

    def delete(self, langsmith: LangSmithAdmin, key_id: str) -> bool:
        """Revoke a key; False if it was already gone (404)."""
        if self.mode == "workspace":
            return langsmith.delete_service_key(key_id)
        return langsmith.delete_key(key_id)

    def list_keys(self, langsmith: LangSmithAdmin) -> list[ApiKeyInfo]:
        """The keys of this kind (workspace mode: every org service key; filter by description)."""
        if self.mode == "workspace":
            return langsmith.list_service_keys()
        return langsmith.list_keys()


PROJECT_HOME = KeyHome()


def workspace_home(workspace_id: str) -> KeyHome:
    return KeyHome(mode="workspace", workspace_id=workspace_id)


def tagged_home(role_id: str, policy_id: str, tag_value_id: str) -> KeyHome:
    return KeyHome(mode="tagged", role_id=role_id, policy_id=policy_id, tag_value_id=tag_value_id)


def tenant_home(services: Services, tenant_id: str) -> KeyHome:
    """Where the tenant's keys live, from its secret's tags (no secret: project mode)."""
    try:
        return KeyHome.of(services.store.describe(tenant_id).tags)
    except TenantNotFound:
        return PROJECT_HOME


def keys_by_mode(services: Services) -> dict[IsolationMode, list[ApiKeyInfo]]:
    """Every key of both kinds the admin key can list (a tagged tenant's keys are workspace keys,
    listed under "project"). A workspace admin key cannot list org service keys (403): then no
    tenant can be in workspace mode, and there are none to see."""
    found: dict[IsolationMode, list[ApiKeyInfo]] = {
        "project": PROJECT_HOME.list_keys(services.langsmith)
    }
    if services.settings.langsmith_org_id:
        try:
            found["workspace"] = services.langsmith.list_service_keys()
        except Forbidden:
            log.debug("the admin key cannot list org service keys: no workspace-mode keys")
    return found


class KeyRef(BaseModel):
    """What protocols pass around instead of a key (the record stays in this process)."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    key_id: str
    short_key: str
    version_id: str | None = None
    record: TenantKeyRecord | None = Field(default=None, exclude=True, repr=False)


# -- minting ---------------------------------------------------------------------------------


def mint_key(
    services: Services, tenant_id: str, rotation_id: str, home: KeyHome = PROJECT_HOME
) -> CreatedApiKey:
    """Mint a key whose description names tenant and rotation, expiring after the key lifetime;
    a lost create leaves no key behind (`tenant_keys.minting`)."""
    description = key_description(tenant_id, rotation_id)
    return minting.mint(services.langsmith, home, description, services.key_lifetime)


def delete_owned(services: Services, tenant_id: str, home: KeyHome, key_id: str) -> bool:
    """Delete a key of the tenant after proving at LangSmith that it is the tenant's (`NotOwned`
    otherwise: nothing is deleted); False: it was already gone."""
    if not services.ownership.key(tenant_id, key_id, service_key=home.service_key):
        return False
    return home.delete(services.langsmith, key_id)


def rotation_tokens(tenant_id: str, rotation_id: str, count: int = 10) -> list[str]:
    """The ClientRequestTokens a rotation may use, in order. A token whose version was rolled
    back cannot carry a new value (AWS refuses it), so a retried rotation moves to the next."""
    return [
        version_token(tenant_id, rotation_id if n == 0 else f"{rotation_id}#{n}")
        for n in range(count)
    ]


def record_for(
    created: CreatedApiKey,
    *,
    project_id: str,
    project_name: str,
    workspace_id: str | None,
    rotation_id: str,
    previous_key_id: str | None = None,
) -> TenantKeyRecord:
    return TenantKeyRecord(
        api_key=created.key,
        key_id=created.id,
        project_id=project_id,
        project_name=project_name,
        workspace_id=workspace_id,
        issued_at=created.created_at or utcnow(),
        expires_at=created.expires_at,
        rotation_id=rotation_id,
        previous_key_id=previous_key_id,
    )


def mint_and_store(
    services: Services,
    tenant_id: str,
    rotation_id: str,
    *,
    base: TenantKeyRecord,
    stage: str,
    home: KeyHome = PROJECT_HOME,
) -> KeyRef:
    """Mint a key for `rotation_id` in `home` and store it at once under the label `stage`, in
    the first of the rotation's tokens no earlier attempt used; the key serves `base`'s project
    and replaces `base`'s key (the record names it, so it is retired once this one is current).

    A failed store deletes the key just minted: no key outlives a failed store.
    """
    store = services.store
    created = mint_key(services, tenant_id, rotation_id, home)
    record = record_for(
        created,
        project_id=base.project_id,
        project_name=base.project_name,
        workspace_id=base.workspace_id,
        rotation_id=rotation_id,
        previous_key_id=base.key_id,
    )
    try:
        for token in rotation_tokens(tenant_id, rotation_id):
            try:
                store.put_version(tenant_id, record, token=token, stage=stage)
            except SecretStoreError as exc:
                if exc.code == "ResourceExistsException":
                    continue  # an earlier, rolled-back attempt of this rotation used that token
                raise
            return KeyRef(
                tenant_id=tenant_id,
                key_id=created.id,
                short_key=created.short_key,
                version_id=token,
                record=record,
            )
        raise SecretStoreError(
            "PutSecretValue",
            store.name(tenant_id),
            "TooManyAttempts",
            "start a new rotation (omit --rotation-id)",
        )
    except BaseException:
        home.delete(services.langsmith, created.id)
        raise


# -- testing and deleting ------------------------------------------------------------------


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, LangSmithError) and exc.transient


def key_works(langsmith: LangSmithAdmin, record: TenantKeyRecord, *, attempts: int = 3) -> bool:
    """Whether the record's key is accepted right now, asked with the key itself (it costs none
    of the admin key's rate limit). A 401 is a definite no; a 403 a yes (the key authenticated;
    its role was refused the read, as a tagged key whose policy is gone is); transient failures
    are retried a few times, then raised, so a network blip is never mistaken for a dead key."""

    def accepted() -> bool:
        try:
            return langsmith.authenticates(
                record.api_key, workspace_id=record.workspace_id, project_id=record.project_id
            )
        except Forbidden:
            return True

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_incrementing(start=0.2, increment=0.3),
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    return retrying(accepted)


def check_key(
    langsmith: LangSmithAdmin,
    record: TenantKeyRecord,
    tenant_id: str,
    *,
    attempts: int = 5,
    delay: float = 0.5,
) -> None:
    """The key authenticates, or `KeyTestFailed` after bounded retries (new keys may take a
    moment to be accepted, so a 401 is retried too)."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_incrementing(start=delay, increment=delay),
        retry=retry_if_result(lambda accepted: not accepted) | retry_if_exception(_transient),
        retry_error_callback=lambda state: state.outcome.exception() if state.outcome else None,
    )
    try:
        outcome = retrying(
            langsmith.authenticates,
            record.api_key,
            workspace_id=record.workspace_id,
            project_id=record.project_id,
        )
    except LangSmithError as exc:
        raise KeyTestFailed(tenant_id, record.key_id, str(exc)) from None
    if outcome is not True:
        reason = type(outcome).__name__ if isinstance(outcome, Exception) else "rejected with 401"
        raise KeyTestFailed(tenant_id, record.key_id, reason)


def delete_hard(
    langsmith: LangSmithAdmin,
    tenant_id: str,
    key_id: str,
    *,
    home: KeyHome,
    deadline_seconds: float,
) -> bool:
    """Delete a key, retrying transient failures until the deadline; False: it was already gone.
    Deleting it is the point of a revoke: keep trying, then give up loudly (`RevokeFailed`)."""
    retrying = Retrying(
        stop=stop_after_delay(deadline_seconds),
        wait=wait_fixed(0.2),
        retry=retry_if_exception(_transient),
        before_sleep=lambda state: log.warning(
            "tenant=%s delete of key %s failed (%s): retrying",
            tenant_id,
            key_id,
            type(state.outcome.exception()).__name__ if state.outcome else "?",
        ),
        reraise=True,
    )
    try:
        return retrying(home.delete, langsmith, key_id)
    except LangSmithError as exc:
        raise RevokeFailed(tenant_id, key_id, type(exc).__name__) from None
