"""An organization that caps key lifetime: minting follows the cap, learned from the first
refusal, said once in the log; a mint is never refused twice for its expiry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from pydantic import SecretStr

from devstack.stack import LocalStack
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.lifetime import KeyLifetime
from tenant_keys.models import utcnow
from tenant_keys.onboarding import onboard
from tenant_keys.rotation import rotate
from tenant_keys.services import Services

REFUSED = "POST /api/v1/api-key"


@pytest.fixture
def capped_org(backends: LocalStack) -> Iterator[None]:
    backends.langsmith.control.configure_org(max_api_key_expiry_days=5)
    yield
    backends.langsmith.control.configure_org(max_api_key_expiry_days=None)


def _fresh(services: Services, langsmith: LangSmithAdmin | None = None) -> Services:
    """Services whose key lifetime has learned nothing yet (the setting's 30 days)."""
    admin = langsmith or services.langsmith
    return replace(services, langsmith=admin, key_lifetime=KeyLifetime(admin, 30))


def _refusals(stack: LocalStack) -> int:
    log = stack.langsmith.control.request_log()
    return sum(1 for e in log if f"{e['method']} {e['route']}" == REFUSED and e["status"] == "422")


@pytest.mark.usefixtures("capped_org")
def test_the_cap_read_from_the_org_settings_is_followed(
    backends: LocalStack, services: Services, tenant_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The org admin key may read the org's settings (and names the shared workspace).
    org_admin = LangSmithAdmin(
        backends.langsmith.url,
        SecretStr(backends.langsmith.org_admin_key),
        workspace_id=backends.langsmith.workspace_id,
        org_id=backends.langsmith.org_id,
    )
    capped = _fresh(services, org_admin)
    refusals = _refusals(backends)

    with caplog.at_level(logging.WARNING, logger="tenant_keys.lifetime"):
        result = onboard(capped, tenant_id)
        rotated = rotate(capped, tenant_id, "r-capped", retire_now=True)

    assert result.outcome == "created" and rotated.outcome == "rotated", rotated.error
    record = capped.store.read(tenant_id)
    assert record.expires_at is not None
    assert timedelta(days=4) < record.expires_at - utcnow() <= timedelta(days=5)
    assert _refusals(backends) == refusals + 1, "one refusal taught the cap"
    [warning] = [r for r in caplog.records if r.name == "tenant_keys.lifetime"]
    assert "minting with 5 days" in warning.getMessage()


@pytest.mark.usefixtures("capped_org")
def test_without_the_right_to_read_the_cap_the_lifetime_steps_down(
    backends: LocalStack, services: Services, tenant_id: str
) -> None:
    capped = _fresh(services)  # the workspace admin key: no X-Organization-Id, no org settings

    result = onboard(capped, tenant_id)

    assert result.outcome == "created"
    expires_at = capped.store.read(tenant_id).expires_at
    assert expires_at is not None and expires_at - utcnow() <= timedelta(days=5)
