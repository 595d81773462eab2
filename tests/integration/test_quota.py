"""Quota checks on the local stack: real traces through the `langsmith` SDK, real events.

Each test runs in a workspace and under a secret prefix of its own (the org admin key acts
on the new workspace), so the tenants of other tests neither count nor change here, and
this test's tenants never show up in another test's "all tenants" sweep.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import langsmith
import pytest
from langsmith import traceable
from pydantic import SecretStr
from typer.testing import CliRunner

from devstack.stack import LocalStack
from flows.quota import QuotaReport, check_quotas
from tasks.events import flush
from tenant_keys.cli import app
from tenant_keys.events import QUOTA_EVENTS
from tenant_keys.keys import record_for
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import TAG_BUDGET, TAG_PROJECT, TAG_QUOTA_STATUS, TenantKeyRecord
from tenant_keys.models import key_description, project_name, utcnow
from tenant_keys.quota import (
    QuotaRow,
    set_budget,
    window_start,
)
from tenant_keys.services import get_services, reset_services
from tests.integration.quota_seed import Target, delete_secrets, seed_tenants
from tests.integration.tenants import onboard_directly


@dataclass(frozen=True)
class QuotaEnv:
    workspace_id: str
    secret_prefix: str
    org: LangSmithAdmin  # org admin client, for workspaces of tenants' own


@pytest.fixture
def quota_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[QuotaEnv]:
    emulator = stack.langsmith
    org = LangSmithAdmin(
        emulator.url, SecretStr(emulator.org_admin_key), org_id=emulator.org_id, max_attempts=2
    )
    suffix = uuid.uuid4().hex[:8]
    workspace = org.create_workspace(f"quota-{suffix}").id
    prefix = f"quota-{suffix}/tenant"
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", emulator.org_admin_key)
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_WORKSPACE_ID", workspace)
    monkeypatch.setenv("TENANT_KEYS_SECRET_PREFIX", prefix)
    reset_services()
    yield QuotaEnv(workspace_id=workspace, secret_prefix=prefix, org=org)
    monkeypatch.undo()
    reset_services()
    org.close()


@traceable(run_type="llm", name="answer")
def _llm(question: str) -> str:
    return question.upper()


@traceable(run_type="chain", name="pipeline")
def _pipeline(question: str) -> str:
    return _llm(question)  # a child run: a trace counts once, however many runs it has


def send_traces(stack: LocalStack, tenant_id: str, n: int) -> None:
    """`n` traces of two runs each, with the tenant's own key read from the store, as its app would."""
    record = get_services().store.read(tenant_id)
    client = _client(stack, record)
    with langsmith.tracing_context(enabled=True, client=client, project_name=record.project_name):
        for i in range(n):
            _pipeline(f"q{i}")
    client.flush()


def send_old_trace(stack: LocalStack, tenant_id: str, when: datetime) -> None:
    record = get_services().store.read(tenant_id)
    client = _client(stack, record)
    client.create_run(
        "last-window",
        inputs={},
        run_type="chain",
        project_name=record.project_name,
        start_time=when,
        end_time=when + timedelta(seconds=1),
        id=uuid.uuid4(),
    )
    client.flush()


def _client(stack: LocalStack, record: TenantKeyRecord) -> langsmith.Client:
    return langsmith.Client(
        api_key=record.api_key.get_secret_value(),
        api_url=stack.langsmith.url,
        auto_batch_tracing=True,
    )


def onboard(*tenant_ids: str, budget: int) -> None:
    results = onboard_directly(list(tenant_ids), budget)
    assert all(r.outcome == "created" for r in results), results


def run_check(**params: object) -> QuotaReport:
    state = check_quotas(return_state=True, **params)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, QuotaReport)
    return report


def row_of(report: QuotaReport, tenant_id: str) -> QuotaRow:
    return next(r for r in report.rows if r.tenant_id == tenant_id)


def quota_events(
    tenant_ids: list[str], expected: int, settle: float = 3.0
) -> list[tuple[str, str]]:
    """(tenant, event) of the quota events Prefect stored, oldest first, once `expected` arrived
    and `settle` more seconds brought no others."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventOrder,
        EventResourceFilter,
    )

    flush()
    query = EventFilter(
        occurred=EventOccurredFilter(since=utcnow() - timedelta(hours=1)),
        event=EventNameFilter(prefix=["tenant-keys.quota."]),
        resource=EventResourceFilter(id=[f"tenant.{t}" for t in tenant_ids]),
        order=EventOrder.ASC,
    )

    def read() -> list[tuple[str, str]]:
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=query, limit=50)
        return [(e.resource.id.removeprefix("tenant."), e.event) for e in page.events]

    deadline = time.monotonic() + 30
    seen = read()
    while len(seen) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = read()
    time.sleep(settle)
    return read()


# -- counts ----------------------------------------------------------------------------------


def test_counts_match_the_traces_sent_per_tenant_and_window(
    stack: LocalStack, quota_env: QuotaEnv
) -> None:
    busy, quiet, idle = (f"q-{uuid.uuid4().hex[:8]}" for _ in range(3))
    onboard(busy, quiet, idle, budget=100)
    send_traces(stack, busy, 5)
    send_traces(stack, quiet, 2)
    # A trace of the previous window, and a project that merely looks like a tenant's.
    send_old_trace(stack, busy, window_start(utcnow()) - timedelta(days=1))
    lookalike = get_services().langsmith.create_project("tenant-lookalike-not-onboarded")
    admin = _client(stack, get_services().store.read(busy))
    with langsmith.tracing_context(enabled=True, client=admin, project_name=lookalike.name):
        _pipeline("not a tenant")
    admin.flush()

    report = run_check()

    assert [(r.tenant_id, r.traces) for r in report.rows] == [(busy, 5), (quiet, 2), (idle, 0)]
    assert row_of(report, busy).project_id == get_services().store.read(busy).project_id
    assert row_of(report, busy).last_run is not None and row_of(report, idle).last_run is None
    assert all(r.status == "ok" for r in report.rows) and not report.transitions

    # An explicit window start counts only what came after it.
    middle = datetime.now(UTC)
    time.sleep(0.05)
    send_traces(stack, quiet, 3)
    later = run_check(since=middle)
    assert row_of(later, quiet).traces == 3 and row_of(later, busy).traces == 0
    assert row_of(run_check(), quiet).traces == 5


def test_a_deleted_project_is_reported_and_a_missing_budget_falls_back(
    stack: LocalStack, quota_env: QuotaEnv
) -> None:
    gone, untagged = (f"q-{uuid.uuid4().hex[:8]}" for _ in range(2))
    onboard(gone, untagged, budget=10)
    services = get_services()
    assert services.langsmith.delete_project(services.store.read(gone).project_id)
    # Someone deleted the budget tag by hand: the default budget applies.
    boto3.client(
        "secretsmanager", endpoint_url=stack.moto.url, region_name="us-east-1"
    ).untag_resource(SecretId=services.store.name(untagged), TagKeys=[TAG_BUDGET])
    send_traces(stack, untagged, 1)

    report = run_check()

    assert row_of(report, gone).status == "project-missing"
    assert row_of(report, gone).traces is None
    assert report.rows[-1].tenant_id == gone  # sorted by share; unmeasured last
    assert row_of(report, untagged).budget == services.settings.default_trace_budget
    assert row_of(report, untagged).traces == 1
    assert not report.transitions
    assert TAG_QUOTA_STATUS not in services.store.describe(gone).tags


# -- statuses, transitions, events -------------------------------------------------------------


def test_status_changes_emit_one_event_each_and_are_remembered(
    stack: LocalStack, quota_env: QuotaEnv
) -> None:
    tenant, steady = (f"q-{uuid.uuid4().hex[:8]}" for _ in range(2))
    onboard(tenant, steady, budget=10)
    store = get_services().store

    send_traces(stack, tenant, 8)  # 80 %: warning, exactly at the threshold
    send_traces(stack, steady, 7)  # 70 %: ok
    first = run_check()
    assert row_of(first, tenant).status == "warning" and row_of(first, steady).status == "ok"
    assert [(t.tenant_id, t.event) for t in first.transitions] == [
        (tenant, QUOTA_EVENTS["warning"])
    ]
    assert store.describe(tenant).tags[TAG_QUOTA_STATUS] == "warning"

    assert run_check().transitions == []  # unchanged: no second alert

    send_traces(stack, tenant, 3)  # 11 of 10
    exceeded = run_check()
    assert row_of(exceeded, tenant).status == "exceeded"
    assert math.isclose(row_of(exceeded, tenant).share or 0, 1.1)
    assert [t.event for t in exceeded.transitions] == [QUOTA_EVENTS["exceeded"]]
    assert run_check().transitions == []

    set_budget(store, tenant, 100)  # the budget is raised: back to ok
    recovered = run_check()
    assert [t.event for t in recovered.transitions] == [QUOTA_EVENTS["ok"]]
    assert store.describe(tenant).tags[TAG_QUOTA_STATUS] == "ok"

    # A lower warning share puts `steady` (70 %) in warning.
    assert row_of(run_check(warning_share=0.6), steady).status == "warning"

    events = quota_events([tenant, steady], expected=4)
    assert events == [
        (tenant, QUOTA_EVENTS["warning"]),
        (tenant, QUOTA_EVENTS["exceeded"]),
        (tenant, QUOTA_EVENTS["ok"]),
        (steady, QUOTA_EVENTS["warning"]),
    ]


def test_a_failed_status_write_repeats_the_alert_next_run(
    stack: LocalStack, quota_env: QuotaEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = f"q-{uuid.uuid4().hex[:8]}"
    onboard(tenant, budget=1)
    send_traces(stack, tenant, 2)
    store = get_services().store
    real_set_tags = store.set_tags

    # Mock: moto cannot be told to fail one TagResource, and this is the write that matters.
    def refuse(tenant_id: str, tags: dict[str, str]) -> None:
        from tenant_keys.errors import SecretStoreError

        raise SecretStoreError("TagResource", store.name(tenant_id), "ThrottlingException")

    monkeypatch.setattr(store, "set_tags", refuse)
    state = check_quotas(return_state=True)
    assert state.is_failed() and tenant in (state.message or "")
    assert TAG_QUOTA_STATUS not in store.describe(tenant).tags

    monkeypatch.setattr(store, "set_tags", real_set_tags)
    assert [t.event for t in run_check().transitions] == [QUOTA_EVENTS["exceeded"]]
    assert store.describe(tenant).tags[TAG_QUOTA_STATUS] == "exceeded"


# -- request counts ----------------------------------------------------------------------------


def test_langsmith_calls_grow_with_pages_not_tenants(
    stack: LocalStack, quota_env: QuotaEnv
) -> None:
    target = Target(
        langsmith_url=stack.langsmith.url,
        admin_key=stack.langsmith.org_admin_key,
        workspace_id=quota_env.workspace_id,
        aws_endpoint_url=stack.moto.url,
        secret_prefix=quota_env.secret_prefix,
    )
    tenant_ids = [f"s{i:04d}-{uuid.uuid4().hex[:6]}" for i in range(250)]
    seeded = seed_tenants(target, tenant_ids, budget=lambda i: 10, traces=lambda i: i % 12)
    control = stack.langsmith.control
    control.reset_request_counts()
    calls = _count_secrets_manager_calls(get_services().store)

    report = run_check()

    counts = control.request_counts()
    # 250 projects: pages of 100, 100 and 50, and nothing else at LangSmith.
    assert counts["by_route"] == {"GET /api/v1/sessions": 3}, counts["by_route"]
    assert {r.tenant_id: r.traces for r in report.rows} == {t.tenant_id: t.traces for t in seeded}
    over = {t.tenant_id for t in seeded if t.traces > 10}
    warned = {t.tenant_id for t in seeded if 8 <= t.traces <= 10}
    assert {t.tenant_id for t in report.transitions if t.status == "exceeded"} == over
    assert {t.tenant_id for t in report.transitions if t.status == "warning"} == warned
    # Secrets Manager: 3 list pages, and one tag write per changed tenant.
    assert calls == {"ListSecrets": 3, "TagResource": len(over) + len(warned)}
    delete_secrets(target, tenant_ids)


def _count_secrets_manager_calls(store: object) -> dict[str, int]:
    """Count the store's boto3 calls by operation, with botocore's event hooks (no mock; the
    client is private to the store, and counting its calls is the point)."""
    counts: dict[str, int] = {}

    def count(model: object, **_: object) -> None:
        name = model.name  # type: ignore[attr-defined]
        counts[name] = counts.get(name, 0) + 1

    store._client.meta.events.register("before-call.secrets-manager.*", count)  # type: ignore[attr-defined]
    return counts


# -- enforcement -------------------------------------------------------------------------------


def test_enforcement_limits_only_a_tenant_with_its_own_workspace(
    stack: LocalStack, quota_env: QuotaEnv
) -> None:
    shared_tenant, own_tenant = (f"q-{uuid.uuid4().hex[:8]}" for _ in range(2))
    onboard(shared_tenant, budget=1)
    own_workspace = _tenant_in_own_workspace(stack, quota_env, own_tenant, budget=1)
    send_traces(stack, shared_tenant, 2)
    send_traces(stack, own_tenant, 3)
    store = get_services().store

    off = run_check()  # enforcement is off by default: alerts only
    assert row_of(off, own_tenant).traces == 3  # measured in its own workspace
    assert {t.tenant_id: t.status for t in off.transitions} == {
        shared_tenant: "exceeded",
        own_tenant: "exceeded",
    }
    assert not quota_env.org.list_usage_limits(workspace_id=own_workspace)

    for tenant in (shared_tenant, own_tenant):
        set_budget(store, tenant, 10)
    recovered = run_check(enforce=True)  # a raised budget lifts the limit with it
    assert {t.tenant_id: t.usage_limit for t in recovered.transitions} == {
        shared_tenant: None,
        own_tenant: 10,
    }

    set_budget(store, own_tenant, 2)
    set_budget(store, shared_tenant, 1)
    exceeded = run_check(enforce=True)
    assert {t.tenant_id: t.usage_limit for t in exceeded.transitions} == {
        shared_tenant: None,  # a limit on the shared workspace would stop every tenant
        own_tenant: 2,
    }
    [limit] = quota_env.org.list_usage_limits(workspace_id=own_workspace)
    assert (limit.limit_type, limit.limit_value) == ("monthly_traces", 2)
    assert not quota_env.org.list_usage_limits(workspace_id=quota_env.workspace_id)


def _tenant_in_own_workspace(
    stack: LocalStack, env: QuotaEnv, tenant_id: str, *, budget: int
) -> str:
    """A tenant as onboarding would leave it if it gave each tenant a workspace of its own."""
    workspace = env.org.create_workspace(f"own-{tenant_id}").id
    org_sdk = langsmith.Client(
        api_key=stack.langsmith.org_admin_key, api_url=stack.langsmith.url, workspace_id=workspace
    )
    project = org_sdk.create_project(project_name(tenant_id))
    services = get_services()
    created = services.langsmith.create_key(
        key_description(tenant_id, "onboard"), expires_at=None, workspace_id=workspace
    )
    record = record_for(
        created,
        project_id=str(project.id),
        project_name=str(project.name),
        workspace_id=workspace,
        rotation_id="onboard",
    )
    services.store.create(
        tenant_id,
        record,
        token=str(uuid.uuid4()),
        tags={TAG_PROJECT: str(project.id), TAG_BUDGET: str(budget)},
    )
    return workspace


# -- CLI -------------------------------------------------------------------------------------


def test_cli_budget_set_validates_then_updates_the_tag(quota_env: QuotaEnv) -> None:
    tenant = f"q-{uuid.uuid4().hex[:8]}"
    onboard(tenant, budget=10)
    runner = CliRunner()

    for args, says in [
        (["budget", "set", tenant, "-5"], "whole number"),
        (["budget", "set", tenant, "1.5"], "whole number"),
        (["budget", "set", "Not_A_Slug", "5"], "lowercase slug"),
        (["budget", "set", "q-nobody-here", "5"], "not onboarded"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert get_services().store.describe(tenant).tags[TAG_BUDGET] == "10"

    result = runner.invoke(app, ["budget", "set", tenant, "250"])
    assert result.exit_code == 0, result.output
    assert get_services().store.describe(tenant).tags[TAG_BUDGET] == "250"


def test_cli_quota_prints_the_table(stack: LocalStack, quota_env: QuotaEnv) -> None:
    tenant = f"q-{uuid.uuid4().hex[:8]}"
    onboard(tenant, budget=4)
    send_traces(stack, tenant, 1)

    result = CliRunner().invoke(app, ["quota"], terminal_width=200)

    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if tenant in line)
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells[0] == tenant and cells[2:6] == ["1", "4", "25.0", "ok"], cells
    assert "1 tenant(s)" in result.output

    bad = CliRunner().invoke(app, ["quota", "--billing-day", "31"])
    assert bad.exit_code == 2 and "billing day" in bad.output
