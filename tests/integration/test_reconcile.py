"""Reconcile through Prefect: the flow's report, artifact and final state, and its bad input.
The repairs themselves are tested in tests/core/test_reconcile.py."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from flows.reconcile import reconcile
from tenant_keys.errors import BadInput
from tenant_keys.keys import mint_key
from tenant_keys.reconcile import ReconcileReport
from tenant_keys.rotation import (
    create_pending_key,
    promote_pending_key,
)
from tenant_keys.rotation import (
    test_pending_key as check_pending_key,  # renamed: pytest would collect a test_* name
)
from tenant_keys.services import get_services
from tests.integration.tenants import onboard_directly
from tests.invariants import live_tool_keys

pytestmark = pytest.mark.usefixtures("stack")


def _onboarded(tenant_id: str) -> str:
    [result] = onboard_directly([tenant_id])
    assert result.key_id
    return result.key_id


def _reconcile(tenants: list[str] | str, *, apply: bool, **params: float) -> ReconcileReport:
    params.setdefault("orphan_min_age_seconds", 0.0)
    state = reconcile(tenants, apply=apply, return_state=True, **params)
    report = state.result(raise_on_failure=False)
    assert isinstance(report, ReconcileReport)
    return report


def _repairs(report: ReconcileReport, tenant_id: str) -> list[tuple[str, str]]:
    return [(r.kind, r.outcome) for r in report.rows if r.tenant_id == tenant_id]


def _assert_nothing_to_do(tenant_id: str) -> None:
    report = _reconcile([tenant_id], apply=False)
    assert report.rows == [], f"a second reconcile still plans: {report.rows}"


def _labels(tenant_id: str) -> set[str]:
    state = get_services().store.describe(tenant_id)
    return {label for labels in state.versions.values() for label in labels}


def _key_states(stack: LocalStack) -> dict[str, object]:
    """Every key's id and deletion date (last_used_at moves with every call, so it is left out)."""
    return {key["id"]: key["deleted_at"] for key in stack.langsmith.control.keys()}  # noqa: SIM118


def _stop_after_promote(tenant_id: str, rotation_id: str) -> str:
    """A rotation that promoted its key and died before the retire: the old key lives on."""
    services = get_services()
    state, current = services.store.describe(tenant_id), services.store.read(tenant_id)
    pending = create_pending_key(services, tenant_id, rotation_id, state, current)
    assert pending is not None
    check_pending_key(services, tenant_id, pending)
    promote_pending_key(services, tenant_id, pending, state)
    return pending.key_id


def test_dry_run_plans_every_repair_and_changes_nothing(stack: LocalStack, tenant_id: str) -> None:
    _onboarded(tenant_id)
    services = get_services()
    _stop_after_promote(tenant_id, "r-dry")  # the old key left alive
    orphan = mint_key(services, tenant_id, "r-dry-orphan").id
    secret_before = services.store.describe(tenant_id)
    keys_before = _key_states(stack)
    counts_before = stack.langsmith.control.request_counts()["by_route"]

    report = _reconcile([tenant_id], apply=False)

    assert not report.applied
    assert sorted(_repairs(report, tenant_id)) == [
        ("delete-orphan", "planned"),
        ("retire", "planned"),
    ]
    assert services.store.describe(tenant_id) == secret_before
    assert _key_states(stack) == keys_before
    writes = {
        route: n - counts_before.get(route, 0)
        for route, n in stack.langsmith.control.request_counts()["by_route"].items()
        if not route.startswith("GET") and n != counts_before.get(route, 0)
    }
    assert writes == {}, f"a dry run made LangSmith calls that change things: {writes}"

    applied = _reconcile([tenant_id], apply=True)
    assert sorted(_repairs(applied, tenant_id)) == [("delete-orphan", "done"), ("retire", "done")]
    assert orphan not in live_tool_keys(stack, tenant_id)
    _assert_nothing_to_do(tenant_id)


def test_a_secret_edited_into_bad_json_needs_attention_and_keeps_its_keys(
    stack: LocalStack, tenant_id: str
) -> None:
    import boto3

    key = _onboarded(tenant_id)
    sm = boto3.client("secretsmanager", endpoint_url=stack.moto.url, region_name="us-east-1")
    sm.put_secret_value(SecretId=get_services().store.name(tenant_id), SecretString="{oops")

    state = reconcile([tenant_id], apply=True, orphan_min_age_seconds=0.0, return_state=True)

    assert state.is_failed() and tenant_id in (state.message or "")
    report = state.result(raise_on_failure=False)
    assert isinstance(report, ReconcileReport)
    assert _repairs(report, tenant_id) == [("attention", "needs-attention")]
    assert key in live_tool_keys(stack, tenant_id), "no key of an unreadable tenant is an orphan"


def test_bad_parameters_are_refused_before_any_side_effect() -> None:
    with pytest.raises(BadInput, match="key lifetime"):
        reconcile(["acme"], expiring_within_days=30)
    with pytest.raises(BadInput, match="lowercase slug"):
        reconcile(["Not A Tenant"])
