"""Offboarding through Prefect and the CLI. The protocol is tested in
tests/core/test_offboarding.py."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from tenant_keys.keys import mint_key
from tenant_keys.services import get_services
from tests.integration.tenants import onboard_directly
from tests.invariants import live_tool_keys

pytestmark = pytest.mark.usefixtures("stack")


def test_the_cli_offboards_plans_and_refuses_in_one_line(
    stack: LocalStack, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tenant_keys.cli import app
    from tenant_keys.cli.app import console, err

    for output in (console, err):  # wide enough that no table cell or error line wraps
        monkeypatch.setattr(output, "width", 400)
    runner = CliRunner()
    onboard_directly([tenant_id])
    mint_key(get_services(), tenant_id, "r-cli-orphan")

    plan = runner.invoke(app, ["reconcile", tenant_id, "--orphan-min-age-seconds", "0"])
    assert plan.exit_code == 0, plan.output
    assert "delete-orphan" in plan.output and "planned" in plan.output
    assert "nothing changed" in plan.output

    first = runner.invoke(app, ["offboard", tenant_id])
    assert first.exit_code == 0, first.output
    assert "offboarded" in first.output and "scheduled (7 days)" in first.output
    again = runner.invoke(app, ["offboard", tenant_id])
    assert again.exit_code == 0 and "already-offboarded" in again.output

    refused = runner.invoke(app, ["onboard", tenant_id])
    assert refused.exit_code == 2
    assert f"tenant '{tenant_id}' was offboarded" in refused.output
    assert live_tool_keys(stack, tenant_id) == set()
