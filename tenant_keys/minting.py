"""Minting a key so that none is left behind that nobody holds: one mechanism for tenant keys
(`keys.KeyHome`) and admin keys (`admin_keys.AdminScope`).

Two refusals are mended here. An organization that caps key lifetime refuses a longer expiry:
the mint is tried again with what it allows. A create that may have been applied although no
answer came back (a timeout, a dropped connection, a 5xx) may have made a key whose secret
nobody holds: every key with this description is deleted, then the mint is tried once more;
if that one is lost too, the keys are deleted again and the failure is raised.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from tenant_keys.errors import LangSmithError, ValidationFailed
from tenant_keys.langsmith import ApiKeyInfo, CreatedApiKey, LangSmithAdmin

log = logging.getLogger(__name__)

# A lost create is cleaned up and tried again once; the second loss is raised.
LOST_CREATES_TOLERATED = 1


class KeyKind(Protocol):
    """Where keys of one kind are created, listed and deleted."""

    @property
    def service_key(self) -> bool:
        """An org service key (its own lifetime cap), not a workspace key."""
        ...

    def create(
        self, langsmith: LangSmithAdmin, description: str, *, expires_at: datetime
    ) -> CreatedApiKey: ...

    def list_keys(self, langsmith: LangSmithAdmin) -> list[ApiKeyInfo]: ...

    def delete(self, langsmith: LangSmithAdmin, key_id: str) -> bool:
        """Delete a key of this kind; False: it was already gone (404)."""
        ...


class Lifetime(Protocol):
    """When a minted key expires (`tenant_keys.lifetime.KeyLifetime`)."""

    def expires_at(self, *, service_key: bool) -> datetime: ...

    def shorten(self, *, service_key: bool) -> bool: ...


def mint(
    langsmith: LangSmithAdmin, kind: KeyKind, description: str, lifetime: Lifetime
) -> CreatedApiKey:
    """A new key of `kind` with this description, and no other key with it left behind by a
    lost create."""
    lost = 0
    while True:
        expires_at = lifetime.expires_at(service_key=kind.service_key)
        try:
            return kind.create(langsmith, description, expires_at=expires_at)
        except ValidationFailed as exc:
            if "expires_at" in exc.detail and lifetime.shorten(service_key=kind.service_key):
                continue
            raise
        except LangSmithError as exc:
            if not exc.maybe_applied:
                raise
            lost += 1
            again = lost <= LOST_CREATES_TOLERATED
            log.warning(
                "key create %r may have been applied (%s): cleaning up%s",
                description,
                type(exc).__name__,
                " and minting again" if again else "",
            )
            delete_described(langsmith, kind, description)
            if not again:
                raise


def delete_described(langsmith: LangSmithAdmin, kind: KeyKind, description: str) -> list[str]:
    """Delete every key of `kind` with exactly this description; returns their ids."""
    doomed = [key.id for key in kind.list_keys(langsmith) if key.description == description]
    for key_id in doomed:
        kind.delete(langsmith, key_id)
    return doomed
