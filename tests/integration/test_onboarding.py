"""Onboarding end to end on the local stack: real HTTP to the emulator, real boto3 to moto,
flows recorded by a real Prefect server."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from flows.onboarding import onboard_tenants
from tenant_keys.errors import BadInput
from tenant_keys.layout import CURRENT, TAG_BUDGET, TAG_MANAGED_BY, TAG_PROJECT, TAG_TENANT
from tenant_keys.models import project_name
from tenant_keys.services import get_services
from tests.invariants import assert_no_orphans, current_key_works, live_tool_keys

pytestmark = pytest.mark.usefixtures("stack")


def test_onboarding_creates_project_key_and_secret(stack: LocalStack, tenant_id: str) -> None:
    [result] = onboard_tenants([tenant_id], trace_budget=1234)
    assert result.outcome == "created"

    services = get_services()
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
    assert live_tool_keys(stack, tenant_id) == {record.key_id}


def test_rerun_reports_the_tenant_and_changes_nothing(stack: LocalStack, tenant_id: str) -> None:
    [first] = onboard_tenants([tenant_id])
    before = get_services().store.describe(tenant_id)
    calls_before = stack.langsmith.control.request_counts()["by_route"].get(
        "POST /api/v1/api-key", 0
    )

    [again] = onboard_tenants([tenant_id])

    assert again.outcome == "exists"
    assert again.key_id == first.key_id
    assert get_services().store.describe(tenant_id) == before
    calls_after = stack.langsmith.control.request_counts()["by_route"].get(
        "POST /api/v1/api-key", 0
    )
    assert calls_after == calls_before, "a rerun must not mint a key"


def test_many_tenants_in_one_run(stack: LocalStack, tenant_id: str) -> None:
    ids = [f"{tenant_id}-{n}" for n in range(5)]
    results = onboard_tenants(ids)
    assert [r.outcome for r in results] == ["created"] * 5
    assert len({r.key_id for r in results}) == 5
    for t in ids:
        assert current_key_works(t)
        assert_no_orphans(stack, t)


@pytest.mark.parametrize("bad", [["Bad_Id"], ["ok-one", "ok-one"], []])
def test_bad_input_fails_before_any_side_effect(stack: LocalStack, bad: list[str]) -> None:
    before = stack.langsmith.control.request_counts()["total"]
    with pytest.raises(BadInput):
        onboard_tenants(bad)
    assert stack.langsmith.control.request_counts()["total"] == before


def _fault_leaves_nothing(stack: LocalStack, tenant_id: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the flow reports the tenant's failure
        onboard_tenants([tenant_id])
    stack.langsmith.control.clear_faults()
    assert not get_services().store.exists(tenant_id), "no secret may survive a failed onboarding"
    assert live_tool_keys(stack, tenant_id) == set(), "no key may survive a failed onboarding"


def test_mint_failure_leaves_nothing(stack: LocalStack, tenant_id: str) -> None:
    stack.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", action="status", status=403, count=1
    )
    _fault_leaves_nothing(stack, tenant_id)


def test_lost_mint_response_leaves_no_orphan(stack: LocalStack, tenant_id: str) -> None:
    # The key is created but the answer never arrives: the retry must clean it up.
    stack.langsmith.control.inject_fault(
        method="POST", route="/api/v1/api-key", action="drop", when="after", count=1
    )
    [result] = onboard_tenants([tenant_id])
    assert result.outcome == "created"
    assert live_tool_keys(stack, tenant_id) == {result.key_id}


def test_store_failure_deletes_the_minted_key(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto cannot be made to fail one CreateSecret on demand: a secret name that AWS rejects
    # would fail validation earlier, so this one fault is provoked with a patched store call.
    from tenant_keys.errors import SecretStoreError
    from tenant_keys.secret_store import SecretStore

    def refuse(self: SecretStore, tenant: str, *args: object, **kwargs: object) -> str:
        raise SecretStoreError("CreateSecret", self.name(tenant), "InternalServiceError")

    monkeypatch.setattr(SecretStore, "create", refuse)
    _fault_leaves_nothing(stack, tenant_id)


def test_verification_failure_deletes_key_and_secret(stack: LocalStack, tenant_id: str) -> None:
    # Every verification attempt with the new key is refused.
    stack.langsmith.control.inject_fault(
        method="GET", route="/api/v1/sessions", action="status", status=401, count=5, skip=1
    )  # skip=1: the project lookup before minting
    _fault_leaves_nothing(stack, tenant_id)


def test_list_shows_every_tenant_even_when_one_secret_is_corrupt(
    stack: LocalStack, tenant_id: str
) -> None:
    import boto3
    from typer.testing import CliRunner

    from tenant_keys.cli import app

    # A long id makes the table wider than the runner's 80 columns: nothing may be cut.
    good, bad = f"{tenant_id}-{'g' * 30}", f"{tenant_id}-bad"
    onboard_tenants([good, bad])
    sm = boto3.client("secretsmanager", endpoint_url=stack.moto.url, region_name="us-east-1")
    sm.put_secret_value(SecretId=get_services().store.name(bad), SecretString="{edited by hand")

    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    lines = {t: next(line for line in result.output.splitlines() if t in line) for t in (good, bad)}
    assert "ok" in lines[good] and get_services().store.read(good).key_id in lines[good]
    assert "CorruptSecret" in lines[bad]
