"""Onboarding, run directly: project, key and secret; a rerun changes nothing; every failure
leaves nothing behind (the key it minted is deleted, its secret removed)."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from tenant_keys.errors import KeyTestFailed, LangSmithError, SecretStoreError
from tenant_keys.layout import CURRENT, TAG_BUDGET, TAG_MANAGED_BY, TAG_PROJECT, TAG_TENANT
from tenant_keys.models import project_name
from tenant_keys.onboarding import onboard
from tenant_keys.secret_store import SecretStore
from tenant_keys.services import Services
from tests.invariants import current_key_works, live_tool_keys, minted_keys

MINT, DELETE = "POST /api/v1/api-key", "DELETE /api/v1/api-key/{api_key_id}"


def _count(stack: LocalStack, route: str) -> int:
    return int(stack.langsmith.control.request_counts()["by_route"].get(route, 0))


def test_onboarding_creates_project_key_and_secret(
    backends: LocalStack, services: Services, tenant_id: str
) -> None:
    result = onboard(services, tenant_id, trace_budget=1234)

    assert result.outcome == "created"
    project = services.langsmith.find_project(project_name(tenant_id))
    assert project is not None and project.id == result.project_id
    record = services.store.read(tenant_id)
    assert (record.key_id, record.project_id, record.rotation_id) == (
        result.key_id,
        project.id,
        "onboard",
    )
    assert record.expires_at is not None and record.expires_at > record.issued_at
    state = services.store.describe(tenant_id)
    assert state.version_with(CURRENT) is not None
    assert state.tags[TAG_TENANT] == tenant_id
    assert state.tags[TAG_PROJECT] == project.id
    assert state.tags[TAG_BUDGET] == "1234"
    assert state.tags[TAG_MANAGED_BY] == "tenant-keys"
    assert current_key_works(tenant_id)
    assert live_tool_keys(backends, tenant_id) == {record.key_id}
    assert [e.name for e in result.events] == ["tenant-keys.tenant.onboarded"]


def test_rerun_reports_the_tenant_and_changes_nothing(
    backends: LocalStack, services: Services, tenant_id: str
) -> None:
    first = onboard(services, tenant_id)
    before, mints = services.store.describe(tenant_id), _count(backends, MINT)

    again = onboard(services, tenant_id)

    assert again.outcome == "exists" and again.key_id == first.key_id
    assert services.store.describe(tenant_id) == before
    assert _count(backends, MINT) == mints, "a rerun must not mint a key"


def _leaves_nothing(
    stack: LocalStack, services: Services, tenant_id: str, error: type[Exception]
) -> None:
    mints, deletes = _count(stack, MINT), _count(stack, DELETE)
    with pytest.raises(error):
        onboard(services, tenant_id)
    stack.langsmith.control.clear_faults()
    assert not services.store.exists(tenant_id), "no secret may survive a failed onboarding"
    assert live_tool_keys(stack, tenant_id) == set(), "no key may survive a failed onboarding"
    assert _count(stack, MINT) == mints + 1 and _count(stack, DELETE) == deletes + 1, (
        "the key was minted, then deleted"
    )


def test_store_failure_deletes_the_minted_key(
    backends: LocalStack,
    services: Services,
    tenant_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # moto cannot be made to fail one CreateSecret on demand: a secret name that AWS rejects
    # would fail validation earlier, so this one fault is provoked with a patched store call.
    def refuse(self: SecretStore, tenant: str, *args: object, **kwargs: object) -> str:
        raise SecretStoreError("CreateSecret", self.name(tenant), "InternalServiceError")

    monkeypatch.setattr(SecretStore, "create", refuse)
    _leaves_nothing(backends, services, tenant_id, SecretStoreError)


def test_verification_failure_deletes_key_and_secret(
    backends: LocalStack, services: Services, tenant_id: str
) -> None:
    # Every verification attempt with the new key is refused.
    backends.langsmith.control.inject_fault(
        method="GET", route="/api/v1/sessions", action="status", status=401, count=5, skip=1
    )  # skip=1: the project lookup before minting
    _leaves_nothing(backends, services, tenant_id, KeyTestFailed)


def test_mint_failure_leaves_nothing(
    backends: LocalStack, services: Services, tenant_id: str
) -> None:
    backends.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", action="status", status=403, count=1
    )
    mints = _count(backends, MINT)
    with pytest.raises(LangSmithError):
        onboard(services, tenant_id)
    backends.langsmith.control.clear_faults()
    assert _count(backends, MINT) == mints + 1
    assert not services.store.exists(tenant_id) and live_tool_keys(backends, tenant_id) == set()


def test_lost_mint_response_leaves_no_orphan(
    backends: LocalStack, services: Services, tenant_id: str
) -> None:
    # The key is created but the answer never arrives: the retry must clean it up.
    backends.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", action="drop", when="after", count=1
    )
    result = onboard(services, tenant_id)
    assert result.outcome == "created"
    assert live_tool_keys(backends, tenant_id) == {result.key_id}
    assert len(minted_keys(backends, tenant_id)) == 2, "the lost key, deleted, and the one stored"
