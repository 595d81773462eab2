"""The quota check's plain parts: windows, thresholds, ordering, which workspaces to limit."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tenant_keys.errors import BadInput
from tenant_keys.events import QuotaChangedEvent
from tenant_keys.quota import (
    ProjectUsage,
    QuotaRow,
    TenantBudget,
    assess,
    dedicated_workspaces,
    parse_budget,
    status_for,
    table_rows,
    window_start,
)


@pytest.mark.parametrize(
    ("now", "day", "start"),
    [
        (datetime(2026, 3, 17, 9, 30, tzinfo=UTC), 1, datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), 1, datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2026, 3, 17, tzinfo=UTC), 15, datetime(2026, 3, 15, tzinfo=UTC)),
        (datetime(2026, 3, 14, 23, 59, tzinfo=UTC), 15, datetime(2026, 2, 15, tzinfo=UTC)),
        (datetime(2026, 1, 3, tzinfo=UTC), 10, datetime(2025, 12, 10, tzinfo=UTC)),
    ],
)
def test_window_start(now: datetime, day: int, start: datetime) -> None:
    assert window_start(now, day) == start


@pytest.mark.parametrize("day", [0, 29, 31])
def test_window_start_refuses_days_not_in_every_month(day: int) -> None:
    with pytest.raises(BadInput, match="1-28"):
        window_start(datetime(2026, 3, 17, tzinfo=UTC), day)


@pytest.mark.parametrize(
    ("traces", "budget", "share", "status"),
    [
        (0, 10, 0.8, "ok"),
        (7, 10, 0.8, "ok"),
        (8, 10, 0.8, "warning"),  # at the threshold
        (10, 10, 0.8, "warning"),  # the budget used up, not exceeded
        (11, 10, 0.8, "exceeded"),
        (6, 10, 0.6, "warning"),
        (0, 0, 0.8, "ok"),  # no budget, no traces
        (1, 0, 0.8, "exceeded"),  # no budget: any trace is too many
    ],
)
def test_status_for(traces: int, budget: int, share: float, status: str) -> None:
    assert status_for(traces, budget, share) == status


@pytest.mark.parametrize(
    ("previous", "status", "name"),
    [
        ("ok", "warning", "tenant-keys.quota.warning"),
        ("warning", "exceeded", "tenant-keys.quota.exceeded"),
        ("exceeded", "warning", "tenant-keys.quota.warning"),
        ("exceeded", "ok", "tenant-keys.quota.recovered"),
    ],
)
def test_a_change_is_named_by_the_new_status(previous: str, status: str, name: str) -> None:
    event = QuotaChangedEvent(
        tenant_id="acme",
        status=status,
        previous=previous,
        project_id="p",
        traces=1,
        budget=1,
        percent_used=100.0,
        window_start=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert event.name == name
    assert event.payload()["status"] == status and "tenant_id" not in event.payload()


@pytest.mark.parametrize("text", ["-1", "1.5", "", "ten", "1e3"])
def test_parse_budget_refuses_anything_but_a_whole_number(text: str) -> None:
    with pytest.raises(BadInput, match="whole number"):
        parse_budget(text)


def test_assess_matches_by_project_id_sorts_by_share_and_reports_missing() -> None:
    tenants = [
        _budget("low", "p-low", 100),
        _budget("gone", "p-gone", 100),
        _budget("high", "p-high", 10, reported="warning"),
        _budget("untagged", None, 0),  # no project tag: matched by the project's name
    ]
    usage = {
        "p-low": _usage("p-low", "tenant-low", 5),
        "p-high": _usage("p-high", "tenant-high", 12),
        "p-untagged": _usage("p-untagged", "tenant-untagged", 1),
        "p-other": _usage("p-other", "tenant-someone-else", 999),  # not a tenant's
    }

    rows = assess(tenants, usage, 0.8)

    assert [r.tenant_id for r in rows] == ["untagged", "high", "low", "gone"]
    assert math.isinf(rows[0].share or 0) and rows[0].status == "exceeded"
    assert rows[1].new_status == "exceeded" and rows[2].new_status is None
    assert rows[3].status == "project-missing" and rows[3].new_status is None
    assert [r["%"] for r in table_rows(rows)] == ["∞", "120.0", "5.0", "-"]


def test_only_a_workspace_with_one_tenant_that_is_not_the_shared_one_is_dedicated() -> None:
    rows = [
        _row("a", "shared"),
        _row("b", "shared"),
        _row("c", "ws-c"),
        _row("d", "ws-de"),
        _row("e", "ws-de"),
        _row("f", None),
    ]
    assert dedicated_workspaces(rows, "shared") == {"ws-c"}
    assert dedicated_workspaces(rows[:1], "shared") == set()


def _budget(tenant: str, project: str | None, budget: int, reported: str = "ok") -> TenantBudget:
    return TenantBudget(
        tenant_id=tenant,
        project_id=project,
        budget=budget,
        reported=reported,
    )


def _usage(project_id: str, name: str, traces: int) -> ProjectUsage:
    return ProjectUsage(
        project_id=project_id, project_name=name, workspace_id="ws", traces=traces, last_run=None
    )


def _row(tenant: str, workspace: str | None) -> QuotaRow:
    return QuotaRow(
        tenant_id=tenant,
        project_id=f"p-{tenant}",
        project_name=f"tenant-{tenant}",
        workspace_id=workspace,
        traces=1,
        budget=10,
        share=0.1,
        status="ok",
        reported="ok",
        last_run=None,
    )


def test_a_project_named_by_two_tenants_or_not_named_for_its_tenant_is_a_conflict() -> None:
    usage = {
        "p-shared": ProjectUsage(
            project_id="p-shared",
            project_name="tenant-a",
            workspace_id="w",
            traces=900,
            last_run=None,
        ),
        "p-c": ProjectUsage(
            project_id="p-c", project_name="tenant-a", workspace_id="w", traces=5, last_run=None
        ),
    }
    budgets = [
        TenantBudget(tenant_id="a", project_id="p-shared", budget=100, reported="ok"),
        TenantBudget(tenant_id="b", project_id="p-shared", budget=100, reported="ok"),
        TenantBudget(tenant_id="c", project_id="p-c", budget=100, reported="ok"),
    ]

    rows = {r.tenant_id: r for r in assess(budgets, usage, 0.8)}

    assert {t: r.status for t, r in rows.items()} == {
        "a": "conflict",
        "b": "conflict",
        "c": "conflict",
    }
    assert all(r.new_status is None and r.traces is None for r in rows.values()), (
        "no alert, no count"
    )
