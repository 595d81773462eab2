"""A LangSmith emulator and a moto of their own, for tests that look at *every* tenant and key
(the posture report): the session's servers hold every other test's tenants. The admin key is an
org-wide Organization Admin service key kept in its secret, so LangSmith's audit log is readable.
Prefect stays the session's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from devstack.langsmith_emulator import ORGANIZATION_ADMIN
from devstack.stack import LocalStack
from tenant_keys.admin_bootstrap import init_admin_secret
from tenant_keys.services import get_services, reset_services

ORG_ADMIN_SECRET = "langsmith/admin-org"


@contextmanager
def fresh_backends(state_dir: Path) -> Iterator[LocalStack]:
    """Its own emulator and moto, the process's settings pointed at them for the block. Both run
    as processes of their own: moto's state is global to a process, so a second moto server in
    this one would serve the session's secrets."""
    local = LocalStack(state_dir=state_dir, with_prefect=False, separate_processes=True)
    local.langsmith.start()
    local.moto.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for name, value in local.env().items():
                env.setenv(name, value)
            env.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET", ORG_ADMIN_SECRET)
            env.delenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", raising=False)
            env.setenv("TENANT_KEYS_INCIDENT_DIR", str(state_dir / "incidents"))
            env.setenv("TENANT_KEYS_LANGSMITH_TIMEOUT_SECONDS", "2")
            env.setenv("TENANT_KEYS_GRACE_SECONDS", "0")
            reset_services()
            services = get_services()
            assert services.admin_secret is not None
            init_admin_secret(
                services.langsmith.with_key(SecretStr(local.langsmith.org_admin_key)),
                services.admin_secret,
                org_id=services.settings.langsmith_org_id,
                workspace_id=services.settings.langsmith_workspace_id,
                org_role_id=ORGANIZATION_ADMIN,
                lifetime_days=services.settings.admin_key_lifetime_days,
            )
            try:
                yield local
            finally:
                reset_services()
    finally:
        local.stop()
        reset_services()
