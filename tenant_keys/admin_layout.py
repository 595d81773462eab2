"""The admin key secret's layout, in the style of `tenant_keys.layout` (README, "The admin key").

One secret, named by TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET (a name or an ARN), outside the
tenant prefix. Its SecretString is an `AdminKeyRecord`; the staging labels are the tenant
secrets' (`AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`) with the same meaning, and so is the
record's `previous_key_id`; its tags mark it as the tool's admin key secret. Every admin key in it was minted by the tool
(`tenant-keys admin-key init` mints the first from a seed key a human gives), with a
description that proves it at LangSmith before the tool deletes one.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from tenant_keys.layout import MANAGED_BY, TAG_MANAGED_BY, KeyRecord

# A suggestion for TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET (the local stack uses it).
DEFAULT_ADMIN_SECRET_NAME = "langsmith/admin"
# The rotation ids of the keys `tenant-keys admin-key init` mints start so (then a timestamp):
# such a key was never rotated.
INIT_ROTATION_PREFIX = "init-"

# A workspace admin key (project isolation) or an org-wide Organization Admin service key
# (workspace isolation): the two kinds LangSmith offers for what the flows do.
AdminKeyKind = Literal["workspace", "org"]

# -- tags -------------------------------------------------------------------------------------
TAG_ROLE = "tenant-keys:role"  # value ROLE_ADMIN_KEY: this secret holds the admin key
ROLE_ADMIN_KEY = "admin-key"
TAG_ADMIN_KIND = "tenant-keys:admin-kind"  # workspace | org


def admin_secret_tags(kind: AdminKeyKind) -> dict[str, str]:
    return {TAG_MANAGED_BY: MANAGED_BY, TAG_ROLE: ROLE_ADMIN_KEY, TAG_ADMIN_KIND: kind}


# -- the keys ---------------------------------------------------------------------------------
ADMIN_DESCRIPTION_PREFIX = "tenant-keys admin"
# What the tool writes on an admin key it mints, and on the short-lived key the test step
# mints with a new admin key to prove it may create and delete keys. Neither matches a tenant
# key's description (`tenant-keys tenant=...`), so no tenant sweep ever touches them.
_ADMIN = re.compile(
    r"^tenant-keys admin(?P<probe>-probe)? rotation=(?P<rotation>[A-Za-z0-9:._-]{1,64})$"
)


def admin_key_description(rotation_id: str) -> str:
    return f"{ADMIN_DESCRIPTION_PREFIX} rotation={rotation_id}"


def probe_key_description(rotation_id: str) -> str:
    return f"{ADMIN_DESCRIPTION_PREFIX}-probe rotation={rotation_id}"


def parse_admin_description(description: str) -> tuple[Literal["admin", "probe"], str] | None:
    """("admin" | "probe", rotation id) of a key the tool minted as (or for testing) an admin
    key; None for any other key."""
    match = _ADMIN.fullmatch(description)
    if match is None:
        return None
    return ("probe" if match["probe"] else "admin", match["rotation"])


# -- the record -------------------------------------------------------------------------------


class AdminKeyRecord(KeyRecord):
    """The SecretString of one version of the admin key secret: the key and what a rotation
    needs to mint its successor (same kind, same role, same workspaces)."""

    key_id: str
    kind: AdminKeyKind
    # Workspace key: the workspace it acts in (None: the key's own). Org key: None.
    workspace_id: str | None = None
    # Org key: the workspaces it is scoped to (None: org-wide, as the flows need).
    workspaces: list[str] | None = None
    role_id: str | None = None  # workspace key's role; None: LangSmith's default (Admin)
    org_role_id: str | None = None  # org key's organization role (Organization Admin)
    issued_at: datetime
    expires_at: datetime | None
    rotation_id: str
    # The admin key this one replaced: while LangSmith still lists it, it waits to be retired.
    previous_key_id: str | None = None
