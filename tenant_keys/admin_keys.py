"""Admin keys at LangSmith: minting one like another, proving one works and has the rights the
flows need, proving one is the tool's, deleting one.

Each function takes the LangSmith client acting with the key it should act with
(`LangSmithAdmin.with_key`): the admin rotation mints with the current key, tests with the new
one, and deletes the old one with the new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_incrementing,
)

from tenant_keys import minting
from tenant_keys.admin_layout import (
    AdminKeyKind,
    AdminKeyRecord,
    parse_admin_description,
    probe_key_description,
)
from tenant_keys.errors import (
    AuthError,
    Forbidden,
    LangSmithError,
    NotOwned,
    TenantKeysError,
)
from tenant_keys.langsmith import ApiKeyInfo, CreatedApiKey, LangSmithAdmin
from tenant_keys.models import utcnow

PROBE_LIFETIME = timedelta(days=1)  # a probe key that outlives a crash dies on its own


class AdminKeyTestFailed(TenantKeysError):
    """A new admin key did not authenticate, or lacks a right the flows need: not promoted."""

    def __init__(self, key_id: str, reason: str) -> None:
        super().__init__(
            f"new admin key {key_id} failed its test ({reason}); it was deleted and the current "
            "admin key stays"
        )
        self.key_id = key_id


class ProbeLifetime:
    """A probe key lives a day: a probe that outlives a crash dies on its own, and no org cap is
    that short."""

    def expires_at(self, *, service_key: bool) -> datetime:
        return utcnow() + PROBE_LIFETIME

    def shorten(self, *, service_key: bool) -> bool:
        return False


class AdminScope(BaseModel):
    """What an admin key is, as its record says: the seam between the two kinds."""

    model_config = ConfigDict(frozen=True)

    kind: AdminKeyKind
    workspace_id: str | None = None
    workspaces: list[str] | None = None
    role_id: str | None = None
    org_role_id: str | None = None

    @classmethod
    def of(cls, record: AdminKeyRecord) -> AdminScope:
        return cls(
            kind=record.kind,
            workspace_id=record.workspace_id,
            workspaces=record.workspaces,
            role_id=record.role_id,
            org_role_id=record.org_role_id,
        )

    @property
    def service_key(self) -> bool:
        return self.kind == "org"

    def create(
        self, langsmith: LangSmithAdmin, description: str, *, expires_at: datetime
    ) -> CreatedApiKey:
        """A key of this kind, role and scope."""
        if self.service_key:
            return langsmith.create_service_key(
                description,
                expires_at=expires_at,
                workspaces=self.workspaces,
                org_role_id=self.org_role_id,
            )
        return langsmith.create_key(
            description, expires_at=expires_at, workspace_id=self.workspace_id, role_id=self.role_id
        )

    def list_keys(self, langsmith: LangSmithAdmin) -> list[ApiKeyInfo]:
        if self.service_key:
            return langsmith.list_service_keys()
        return langsmith.list_keys(workspace_id=self.workspace_id)

    def delete(self, langsmith: LangSmithAdmin, key_id: str) -> bool:
        """Delete a key of this kind; False: it was already gone (404)."""
        if self.service_key:
            return langsmith.delete_service_key(key_id)
        return langsmith.delete_key(key_id, workspace_id=self.workspace_id)


def record_of(
    created: CreatedApiKey,
    scope: AdminScope,
    rotation_id: str,
    *,
    previous_key_id: str | None = None,
) -> AdminKeyRecord:
    return AdminKeyRecord(
        api_key=created.key,
        key_id=created.id,
        kind=scope.kind,
        workspace_id=scope.workspace_id,
        workspaces=scope.workspaces,
        role_id=scope.role_id,
        org_role_id=scope.org_role_id,
        issued_at=created.created_at or utcnow(),
        expires_at=created.expires_at,
        rotation_id=rotation_id,
        previous_key_id=previous_key_id,
    )


def owned(langsmith: LangSmithAdmin, scope: AdminScope, key_id: str) -> bool:
    """True: LangSmith lists the key as an admin key the tool minted. False: not listed (gone).
    `NotOwned` when it is listed but the tool did not mint it as an admin key: a secret someone
    edited; the key is left alone."""
    found = next((k for k in scope.list_keys(langsmith) if k.id == key_id), None)
    if found is None:
        return False
    parsed = parse_admin_description(found.description)
    if parsed is None or parsed[0] != "admin":
        raise NotOwned("(admin key)", f"key {key_id}", "the tool did not mint it as an admin key")
    return True


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, LangSmithError) and exc.transient


def works(langsmith: LangSmithAdmin, scope: AdminScope) -> bool:
    """Whether the key `langsmith` acts with is accepted now: a listing of its own kind (an
    org-scoped key has no workspace of its own to ask). A 401 is a definite no; transient
    failures are retried a few times, then raised."""
    retrying = Retrying(
        stop=stop_after_attempt(3),
        wait=wait_incrementing(start=0.2, increment=0.3),
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    try:
        retrying(scope.list_keys, langsmith)
    except AuthError:
        return False
    except Forbidden:
        return (
            True  # accepted, only not allowed this listing: `prove_rights` is the judge of rights
        )
    return True


def prove_rights(
    langsmith: LangSmithAdmin,
    scope: AdminScope,
    key_id: str,
    rotation_id: str,
    *,
    tenant_workspace: str | None,
    shared_workspace: str | None,
    attempts: int = 5,
    delay: float = 0.5,
) -> None:
    """The key `langsmith` acts with authenticates (bounded retries: a new key may take a
    moment) and can do what the flows do with it: list, create and delete keys where tenants'
    keys live. `AdminKeyTestFailed` otherwise.

    Workspace key: workspace keys of its workspace. Org key: service keys scoped to a tenant's
    workspace (`tenant_workspace`, or the shared one), and workspace keys of the shared workspace
    (`shared_workspace`) when project-mode tenants live there. Each create is of a probe key
    (its own description, a day's life) deleted at once; a rerun first deletes any probe a crash
    left behind.
    """
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_incrementing(start=delay, increment=delay),
        retry=retry_if_exception(lambda e: isinstance(e, AuthError) or _transient(e)),
        reraise=True,
    )
    description = probe_key_description(rotation_id)
    try:
        retrying(scope.list_keys, langsmith)
        probes: list[AdminScope] = []
        if scope.service_key:
            where = tenant_workspace or shared_workspace
            # Scoped to a workspace, as a tenant's key is (a scoped key takes no org role).
            scoped = {"workspaces": [where] if where else None, "org_role_id": None}
            probes.append(scope.model_copy(update=scoped))
            if shared_workspace:
                probes.append(AdminScope(kind="workspace", workspace_id=shared_workspace))
        else:
            probes.append(scope.model_copy(update={"role_id": None}))
        for probe in probes:
            minting.delete_described(langsmith, probe, description)  # a crashed run's probe
            created = minting.mint(langsmith, probe, description, ProbeLifetime())
            if not probe.delete(langsmith, created.id):
                raise AdminKeyTestFailed(key_id, f"its probe key {created.id} could not be deleted")
    except LangSmithError as exc:
        raise AdminKeyTestFailed(key_id, f"{type(exc).__name__} on {exc.route}") from None
