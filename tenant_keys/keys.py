"""Minting, testing and deleting tenant keys at LangSmith: the calls every flow shares.

A minted key's secret lives only inside `mint_key`'s caller until it is written
to Secrets Manager; everything returned from here to a flow is an id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from tenant_keys.errors import KeyTestFailed, SecretStoreError, TenantNotFound
from tenant_keys.langsmith import (
    ApiKeyInfo,
    CreatedApiKey,
    Forbidden,
    LangSmithAdmin,
    LangSmithError,
)
from tenant_keys.models import (
    IsolationMode,
    TenantKeyRecord,
    key_description,
    utcnow,
    version_token,
)
from tenant_keys.services import Services

log = logging.getLogger(__name__)

# A tenant's isolation mode and, in workspace mode, its own workspace: tags on its secret.
TAG_ISOLATION = "tenant-keys:isolation"
TAG_WORKSPACE = "tenant-keys:workspace-id"


class KeyScope(BaseModel):
    """Where a tenant's keys live, and so which LangSmith endpoints manage them: the one seam
    between the isolation modes (docs/isolation.md).

    - project mode: workspace keys of the shared workspace (`/api-key`);
    - workspace mode: org service keys scoped to exactly the tenant's workspace
      (`/orgs/current/service-keys`, `workspaces: [id]`); the admin key is org-scoped.
    """

    model_config = ConfigDict(frozen=True)

    mode: IsolationMode = "project"
    workspace_id: str | None = None  # workspace mode: the tenant's own workspace

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> KeyScope:
        """The scope a tenant secret's tags record (no tag: project mode, as before the modes)."""
        if tags.get(TAG_ISOLATION) == "workspace":
            return cls(mode="workspace", workspace_id=tags.get(TAG_WORKSPACE))
        return PROJECT_SCOPE

    def tags(self) -> dict[str, str]:
        if self.mode == "workspace":
            assert self.workspace_id, "a workspace scope names its workspace"
            return {TAG_ISOLATION: "workspace", TAG_WORKSPACE: self.workspace_id}
        return {TAG_ISOLATION: "project"}

    def mint(
        self, langsmith: LangSmithAdmin, description: str, *, expires_at: datetime | None
    ) -> CreatedApiKey:
        if self.mode == "workspace":
            assert self.workspace_id, "a workspace scope names its workspace"
            return langsmith.create_service_key(
                description, expires_at=expires_at, workspaces=[self.workspace_id]
            )
        return langsmith.create_key(description, expires_at=expires_at)

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


PROJECT_SCOPE = KeyScope()


def tenant_scope(services: Services, tenant_id: str) -> KeyScope:
    """The tenant's scope, from its secret's tags (no secret: project mode)."""
    try:
        return KeyScope.of(services.store.describe(tenant_id).tags)
    except TenantNotFound:
        return PROJECT_SCOPE


def workspace_scope(workspace_id: str) -> KeyScope:
    return KeyScope(mode="workspace", workspace_id=workspace_id)


def keys_by_mode(services: Services) -> dict[IsolationMode, list[ApiKeyInfo]]:
    """Every key of both kinds the admin key can list. A workspace admin key cannot list org
    service keys (403): then no tenant can be in workspace mode, and there are none to see."""
    found: dict[IsolationMode, list[ApiKeyInfo]] = {
        "project": PROJECT_SCOPE.list_keys(services.langsmith)
    }
    if services.settings.langsmith_org_id:
        try:
            found["workspace"] = services.langsmith.list_service_keys()
        except Forbidden:
            log.debug("the admin key cannot list org service keys: no workspace-mode keys")
    return found


class KeyRef(BaseModel):
    """What flows pass around instead of a key."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    key_id: str
    short_key: str
    version_id: str | None = None


def mint_key(
    services: Services, tenant_id: str, rotation_id: str, scope: KeyScope = PROJECT_SCOPE
) -> CreatedApiKey:
    """Mint a key whose description names tenant and rotation, expiring after the key lifetime.

    If the create call may have been applied although no answer came back (a
    timeout, a dropped connection, a 5xx), the key may exist without anyone
    holding its secret: delete every key with this rotation's description,
    then mint once more. So a lost response never leaves an orphan behind.
    """
    description = key_description(tenant_id, rotation_id)
    expires_at = utcnow() + timedelta(days=services.settings.key_lifetime_days)
    try:
        return scope.mint(services.langsmith, description, expires_at=expires_at)
    except LangSmithError as exc:
        if not exc.maybe_applied:
            raise
        log.warning(
            "key create for %s may have been applied (%s): cleaning up and minting again",
            tenant_id,
            type(exc).__name__,
        )
    delete_keys_described(services.langsmith, description, scope)
    return scope.mint(services.langsmith, description, expires_at=expires_at)


def delete_keys_described(
    langsmith: LangSmithAdmin, description: str, scope: KeyScope = PROJECT_SCOPE
) -> list[str]:
    """Delete every key of the scope's kind with exactly this description; returns their ids."""
    deleted = [key.id for key in scope.list_keys(langsmith) if key.description == description]
    for key_id in deleted:
        scope.delete(langsmith, key_id)
    return deleted


def rotation_tokens(tenant_id: str, rotation_id: str, count: int = 10) -> list[str]:
    """The ClientRequestTokens a rotation may use, in order. A token whose version was rolled
    back cannot carry a new value (AWS refuses it), so a retried rotation moves to the next."""
    return [
        version_token(tenant_id, rotation_id if n == 0 else f"{rotation_id}#{n}")
        for n in range(count)
    ]


def mint_and_store(
    services: Services,
    tenant_id: str,
    rotation_id: str,
    *,
    base: TenantKeyRecord,
    stage: str,
    scope: KeyScope = PROJECT_SCOPE,
) -> KeyRef:
    """Mint a key for `rotation_id` in `scope` and store it at once under the label `stage`, in
    the first of the rotation's tokens no earlier attempt used; the key serves `base`'s project.

    A failed store deletes the key just minted: no key outlives a failed store.
    """
    store = services.store
    created = mint_key(services, tenant_id, rotation_id, scope)
    record = record_for(
        created,
        project_id=base.project_id,
        project_name=base.project_name,
        workspace_id=base.workspace_id,
        rotation_id=rotation_id,
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
            )
        raise SecretStoreError(
            "PutSecretValue",
            store.name(tenant_id),
            "TooManyAttempts",
            "start a new rotation (omit --rotation-id)",
        )
    except BaseException:
        scope.delete(services.langsmith, created.id)
        raise


def record_for(
    created: CreatedApiKey,
    *,
    project_id: str,
    project_name: str,
    workspace_id: str | None,
    rotation_id: str,
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
    )


def check_key(
    langsmith: LangSmithAdmin,
    record: TenantKeyRecord,
    tenant_id: str,
    *,
    attempts: int = 5,
    delay: float = 0.5,
) -> None:
    """The key authenticates, or `KeyTestFailed` after bounded retries (new keys may take a moment)."""
    reason = "rejected with 401"
    for attempt in range(attempts):
        try:
            if langsmith.authenticates(record.api_key, workspace_id=record.workspace_id):
                return
            reason = "rejected with 401"
        except LangSmithError as exc:
            if not exc.transient:
                raise KeyTestFailed(tenant_id, record.key_id, str(exc)) from None
            reason = type(exc).__name__
        if attempt < attempts - 1:
            time.sleep(delay * (attempt + 1))
    raise KeyTestFailed(tenant_id, record.key_id, reason)
