"""The first admin key in its secret (`tenant-keys admin-key init`; the local stack does it too).

A human gives a *seed*: an admin key they made in LangSmith's UI. The tool mints its own admin
key with it (same kind; described as the tool's, so later rotations can prove it is theirs to
delete), tests it like a rotation's new key, and creates the secret with it as AWSCURRENT. The
seed is never stored: the human deletes it at LangSmith afterwards, and from then on no person
has seen the key the flows use.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tenant_keys import minting
from tenant_keys.admin_keys import (
    AdminScope,
    prove_rights,
    record_of,
)
from tenant_keys.admin_layout import (
    INIT_ROTATION_PREFIX,
    AdminKeyKind,
    admin_key_description,
    admin_secret_tags,
)
from tenant_keys.admin_secret import ADMIN_SUBJECT, AdminSecretStore
from tenant_keys.errors import BadInput, ConfigError, Forbidden
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.lifetime import KeyLifetime
from tenant_keys.models import new_rotation_id, version_token


class InitResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    secret: str
    key_id: str
    kind: AdminKeyKind
    rotation_id: str


def seed_kind(seed: LangSmithAdmin, org_id: str | None) -> AdminKeyKind:
    """What the seed is: an org-wide Organization Admin service key may list the org's service
    keys; any other admin key is taken for a workspace admin key."""
    if not org_id:
        return "workspace"
    try:
        seed.list_service_keys()
    except Forbidden:
        return "workspace"
    return "org"


def init_admin_secret(
    seed: LangSmithAdmin,
    store: AdminSecretStore,
    *,
    org_id: str | None,
    workspace_id: str | None,
    org_role_id: str | None,
    lifetime_days: int,
) -> InitResult:
    """Mint the tool's admin key with the `seed` client, test it, and create the secret with it.

    Refused before anything is minted (`ConfigError`) if the secret exists, and (`BadInput`) for
    an org key without the Organization Admin role's id. A key that fails its test, or a secret
    that cannot be created, deletes the key just minted.
    """
    try:
        store.describe_admin()
    except ConfigError:
        pass  # it does not exist: the one case to go on
    else:
        raise ConfigError(
            f"the admin key secret {store.secret_id} exists already: nothing was changed "
            "(rotate it with `tenant-keys rotate-admin`)"
        )
    kind = seed_kind(seed, org_id)
    if kind == "org" and not org_role_id:
        raise BadInput(
            "the seed is an org service key: pass --org-role-id, the id of the Organization "
            "Admin role (GET /api/v1/orgs/current/roles lists it)"
        )
    scope = AdminScope(
        kind=kind,
        workspace_id=workspace_id if kind == "workspace" else None,
        org_role_id=org_role_id if kind == "org" else None,
    )
    rotation_id = INIT_ROTATION_PREFIX + new_rotation_id()
    created = minting.mint(
        seed, scope, admin_key_description(rotation_id), KeyLifetime(seed, lifetime_days)
    )
    record = record_of(created, scope, rotation_id)
    try:
        prove_rights(
            seed.with_key(record.api_key),
            scope,
            record.key_id,
            rotation_id,
            tenant_workspace=None,
            shared_workspace=workspace_id if kind == "org" else None,
        )
        store.create_admin(
            record, token=version_token(ADMIN_SUBJECT, rotation_id), tags=admin_secret_tags(kind)
        )
    except Exception:
        scope.delete(seed, created.id)  # no admin key outlives a failed init
        raise
    return InitResult(
        secret=store.secret_id, key_id=record.key_id, kind=kind, rotation_id=rotation_id
    )
