"""The isolation check reports what LangSmith allows, in both outcomes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from devstack.stack import LocalStack
from flows.isolation import check_isolation
from tenant_keys.keys import record_for
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.models import project_name, version_token
from tenant_keys.services import get_services
from tests.integration.tenants import onboard_directly

pytestmark = pytest.mark.usefixtures("stack")


def test_shared_workspace_keys_can_read_each_other_and_the_report_says_so(
    stack: LocalStack, tenant_id: str
) -> None:
    a, b = f"{tenant_id}-a", f"{tenant_id}-b"
    onboard_directly([a, b])

    report = check_isolation(a, b)

    assert report.own_reads_ok
    assert not report.isolated
    assert {(c.reader, c.outcome) for c in report.cross_reads} == {(a, "readable"), (b, "readable")}
    assert all(c.runs_seen == 1 for c in report.cross_reads)
    assert "NOT isolated" in report.markdown() and "Mitigation" in report.markdown()


def _onboard_in_own_workspace(stack: LocalStack, tenant_id: str) -> None:
    """A tenant in a workspace of its own, with an org service key scoped to it (by hand,
    as workspace-mode onboarding would do)."""
    org = LangSmithAdmin(
        stack.langsmith.url, SecretStr(stack.langsmith.org_admin_key), org_id=stack.langsmith.org_id
    )
    workspace = org.create_workspace(f"ws-{tenant_id}")
    scoped = LangSmithAdmin(
        stack.langsmith.url,
        SecretStr(stack.langsmith.org_admin_key),
        org_id=stack.langsmith.org_id,
        workspace_id=workspace.id,
    )
    project = scoped.create_project(project_name(tenant_id))
    key = org.create_service_key(
        f"tenant-keys tenant={tenant_id} rotation=onboard",
        expires_at=None,
        workspaces=[workspace.id],
    )
    record = record_for(
        key,
        project_id=project.id,
        project_name=project.name,
        workspace_id=workspace.id,
        rotation_id="onboard",
    )
    get_services().store.create(
        tenant_id, record, token=version_token(tenant_id, "onboard"), tags={}
    )


def test_workspace_per_tenant_refuses_the_cross_read(stack: LocalStack, tenant_id: str) -> None:
    a, b = f"{tenant_id}-a", f"{tenant_id}-b"
    _onboard_in_own_workspace(stack, a)
    _onboard_in_own_workspace(stack, b)

    report = check_isolation(a, b)

    assert report.own_reads_ok
    assert report.isolated, report.markdown()
    assert all(c.outcome == "refused" and c.runs_seen == 0 for c in report.cross_reads)
