"""A missing or bad setting is one line and exit code 2 from every command that runs a
flow, before any flow run starts (inside a flow it would be a failed run and a traceback)."""

from __future__ import annotations

import pytest
from prefect import get_client
from typer.testing import CliRunner

from devstack.stack import LocalStack
from tenant_keys.cli import app
from tenant_keys.services import reset_services

COMMANDS = [
    ["onboard", "acme"],
    ["list"],
    ["rotate", "acme"],
    ["revoke", "acme", "--reason", "test"],
    ["quota"],
    ["reconcile"],
    ["offboard", "acme"],
    ["migrate", "acme", "--to", "workspace"],
    ["check-isolation", "acme", "initech"],
]


def _flow_runs() -> int:
    with get_client(sync_client=True) as client:
        return client.count_flow_runs()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TENANT_KEYS_LANGSMITH_ADMIN_KEY", None, "TENANT_KEYS_LANGSMITH_ADMIN_KEY is not set"),
        ("TENANT_KEYS_MAX_CONCURRENCY", "many", "TENANT_KEYS_MAX_CONCURRENCY is invalid"),
    ],
    ids=["missing", "invalid"],
)
def test_a_bad_setting_is_one_line_before_any_flow_run(
    stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str | None,
    says: str,
) -> None:
    runs = _flow_runs()
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    reset_services()
    try:
        results = {" ".join(c): CliRunner().invoke(app, c) for c in COMMANDS}
    finally:
        monkeypatch.undo()
        reset_services()

    for command, result in results.items():
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2, (command, result.output)
        assert len(lines) == 1 and lines[0].startswith(f"error: {says}"), (command, lines)
    assert _flow_runs() == runs, "no flow run started"
