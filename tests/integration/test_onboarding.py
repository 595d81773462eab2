"""Onboarding through Prefect: a task per tenant, the flow refusing bad input, `list`.
The protocol and its compensation are tested in tests/core/test_onboarding.py."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from flows.onboarding import onboard_tenants
from tenant_keys.errors import BadInput
from tenant_keys.services import get_services
from tests.invariants import assert_no_orphans, current_key_works

pytestmark = pytest.mark.usefixtures("stack")


def test_many_tenants_in_one_run(stack: LocalStack, tenant_id: str) -> None:
    ids = [f"{tenant_id}-{n}" for n in range(5)]
    results = onboard_tenants(ids, trace_budget=1234)
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
