"""Admin key secrets of their own for the tests that rotate one, so the session's admin key (the
local stack's, `langsmith/admin`) is rotated only by the test that means to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr

from devstack.langsmith_emulator import ORGANIZATION_ADMIN
from devstack.stack import LocalStack
from tenant_keys.admin_bootstrap import init_admin_secret
from tenant_keys.admin_layout import parse_admin_description
from tenant_keys.services import Services
from tenant_keys.settings import Settings


def admin_settings(secret: str, **overrides: Any) -> Settings:
    """The session's settings, with the admin key read from `secret`."""
    return Settings(langsmith_admin_key=None, langsmith_admin_key_secret=secret, **overrides)


def new_admin_secret(backends: LocalStack, kind: str = "workspace") -> str:
    """A fresh admin key secret, initialised from the emulator's bootstrap key of that kind
    (`tenant-keys admin-key init`); returns its name."""
    name = f"langsmith/admin-test-{uuid.uuid4().hex[:8]}"
    settings = admin_settings(name)
    services = Services.from_settings(settings)
    seed = backends.langsmith.org_admin_key if kind == "org" else backends.langsmith.admin_key
    try:
        assert services.admin_secret is not None
        init_admin_secret(
            services.langsmith.with_key(SecretStr(seed)),
            services.admin_secret,
            org_id=settings.langsmith_org_id,
            workspace_id=settings.langsmith_workspace_id,
            org_role_id=ORGANIZATION_ADMIN if kind == "org" else None,
            lifetime_days=settings.admin_key_lifetime_days,
        )
    finally:
        services.close()
    return name


@contextmanager
def services_for(secret: str, **overrides: Any) -> Iterator[Services]:
    services = Services.from_settings(admin_settings(secret, **overrides))
    try:
        yield services
    finally:
        services.close()


def admin_keys(backends: LocalStack, rotation_id: str | None = None) -> list[dict[str, Any]]:
    """Every admin key (and probe key) the tool minted, deleted ones included, as the emulator
    recorded them; only `rotation_id`'s if given."""
    found = []
    for key in backends.langsmith.control.keys():  # noqa: SIM118 - the emulator's dump, a list
        parsed = parse_admin_description(key.get("description") or "")
        if parsed and rotation_id in (None, parsed[1]):
            found.append({**key, "role_in_tool": parsed[0]})
    return found


def key_state(backends: LocalStack, key_id: str) -> dict[str, Any]:
    [key] = [k for k in backends.langsmith.control.keys() if k["id"] == key_id]  # noqa: SIM118
    return key
