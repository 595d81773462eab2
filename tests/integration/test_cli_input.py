"""Bad input and bad settings: one line and exit code 2 from every command, before any flow
run, lock or write (inside a flow it would be a failed run and a traceback)."""

from __future__ import annotations

import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from devstack.stack import LocalStack
from tenant_keys.cli import app
from tenant_keys.services import get_services, reset_services
from tests.integration.tenants import onboard_directly

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
        (
            "TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET",
            None,
            "TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET is not set",
        ),
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


def _locks() -> set[str]:
    with get_client(sync_client=True) as client:
        return {limit.name for limit in client.read_global_concurrency_limits(limit=200)}


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["rotate", "{nosuch}", "{tenant}"], "is not onboarded"),
        (["rotate", "{nosuch}"], "is not onboarded"),
        (["rotate", "{tenant}", "--rotation-id", "x y"], "rotation id 'x y' is invalid"),
        (["rotate", "{tenant}", "--rotation-id", "r" * 3000], "is invalid: use 1-64"),
        (["onboard", "{nosuch}", "--budget", "-1"], "budget -1 is invalid"),
        (["migrate", "../x", "--to", "workspace"], "is invalid: use a lowercase slug"),
        (["check-isolation", "{tenant}", "{nosuch}"], "is not onboarded"),
        (["offboard", "Not_A_Slug"], "is invalid: use a lowercase slug"),
        (["budget", "set", "{tenant}", "-5"], "budget '-5' is invalid"),
        (["onboard", "{nosuch}", "--isolation", "tenant"], "isolation 'tenant' is invalid"),
        (["migrate", "{tenant}", "--to", "project"], "only `--to workspace` or `--to tagged`"),
        (["check-isolation", "{tenant}", "{tenant}"], "name two different tenants"),
    ],
    ids=[
        "unknown-among-known",
        "unknown",
        "rotation-id-space",
        "rotation-id-long",
        "negative-budget",
        "path-as-tenant",
        "isolation-unknown",
        "offboard-bad-id",
        "budget-negative",
        "isolation-value-unknown",
        "migrate-back",
        "check-isolation-same-tenant",
    ],
)
def test_bad_input_is_one_line_before_any_side_effect(
    stack: LocalStack, tenant_id: str, command: list[str], says: str
) -> None:
    onboard_directly([tenant_id])
    key = get_services().store.read(tenant_id).key_id
    nosuch = f"{tenant_id}-nosuch"
    runs, locks = _flow_runs(), _locks()

    args = [part.format(tenant=tenant_id, nosuch=nosuch) for part in command]
    result = CliRunner().invoke(app, args)

    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and says in lines[0], result.output
    assert "Traceback" not in result.output
    assert _flow_runs() == runs, "no flow run started"
    assert _locks() == locks, "no lock created"
    assert get_services().store.read(tenant_id).key_id == key, "the known tenant was not touched"
    assert not get_services().store.exists(nosuch)


@pytest.mark.parametrize(
    "url", ["not-a-url", "http://langsmith.example.com"], ids=["not-a-url", "plain-http"]
)
def test_a_langsmith_url_that_is_not_https_is_refused(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_URL", url)
    reset_services()
    try:
        result = CliRunner().invoke(app, ["list"])
    finally:
        monkeypatch.undo()
        reset_services()
    assert result.exit_code == 2 and "TENANT_KEYS_LANGSMITH_URL is invalid" in result.output


def test_commands_that_take_locks_need_the_real_prefect_server(
    stack: LocalStack, tenant_id: str
) -> None:
    """Without PREFECT_API_URL, Prefect would start a temporary server of its own, whose
    locks no other run sees."""
    onboard_directly([tenant_id])
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        refused = CliRunner().invoke(app, ["rotate", tenant_id])
    assert refused.exit_code == 2 and "PREFECT_API_URL is not set" in refused.output
