"""Reconcile in tagged isolation: each drift is made for real at the emulator (a policy deleted,
the tag taken off the project, the role given reads, a policy of the tool pointed at another
tenant, the role and the key gone), then reconcile repairs it loudly, the key is confined
again (replaced when it had to be), and a second reconcile finds nothing to do. Orphans of an
onboarding that stopped are removed; what the tool did not make is never touched."""

from __future__ import annotations

from devstack.stack import LocalStack
from tenant_keys import tagged
from tenant_keys.keys import KeyHome
from tenant_keys.layout import TAG_POLICY, TAG_ROLE, TenantKeyRecord
from tenant_keys.locks import NoLocks
from tenant_keys.models import new_rotation_id, project_description, project_name
from tenant_keys.onboarding import onboard
from tenant_keys.reconcile import ReconcileReport, make_policy, reconcile
from tenant_keys.services import Services
from tests.invariants import current_key_works, live_tool_keys


def _onboard(services: Services, tenant_id: str) -> TenantKeyRecord:
    assert onboard(services, tenant_id, isolation="tagged").outcome == "created"
    return services.store.read(tenant_id)


def _reconcile(
    services: Services, tenants: list[str], *, apply: bool, orphan_min_age_seconds: float = 0.0
) -> ReconcileReport:
    return reconcile(
        services,
        tenants,
        apply=apply,
        policy=make_policy(services.settings, 7.0, orphan_min_age_seconds),
        rotation_id=f"reconcile-{new_rotation_id()}",
        locks=NoLocks(),
    )


def _rows(report: ReconcileReport) -> list[tuple[str, str]]:
    return [(r.kind, r.outcome) for r in report.rows]


def _confined(services: Services, tenant_id: str, other_project: str) -> bool:
    record = services.store.read(tenant_id)
    key, workspace = record.api_key, record.workspace_id
    return [
        services.langsmith.reads_project_as(key, record.project_id, workspace_id=workspace),
        services.langsmith.reads_project_as(key, other_project, workspace_id=workspace),
        services.langsmith.reads_runs_as(key, other_project, workspace_id=workspace),
    ] == ["readable", "refused", "refused"]


def _repaired(services: Services, tenant_id: str, drift: str) -> ReconcileReport:
    """A dry run names the drift; the applied run repairs it; a second run finds nothing."""
    [planned] = _reconcile(services, [tenant_id], apply=False).rows
    assert planned.kind == "repair-access" and drift in planned.reason, planned.reason
    applied = _reconcile(services, [tenant_id], apply=True)
    assert ("repair-access", "done") in _rows(applied), applied.rows
    assert _reconcile(services, [tenant_id], apply=False).rows == []
    return applied


def _canary(services: Services) -> str:
    return tagged.ensure_canary(services.langsmith).id


def test_a_deleted_policy_is_made_again_and_the_key_reads_again(
    tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    record = _onboard(services, tenant_id)
    old_policy = services.store.describe(tenant_id).tags[TAG_POLICY]
    services.langsmith.delete_access_policy(old_policy)
    assert not _confined(services, tenant_id, _canary(services)), "it lost its reads"

    report = _repaired(services, tenant_id, f"access policy {old_policy} is missing")

    assert report.rows[0].new_key_id is None, "the key's role stands: no new key needed"
    assert services.store.read(tenant_id).key_id == record.key_id
    assert services.store.describe(tenant_id).tags[TAG_POLICY] != old_policy
    assert _confined(services, tenant_id, _canary(services))


def test_a_project_that_lost_its_tag_is_tagged_again(
    tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    record = _onboard(services, tenant_id)
    [tool_key] = services.langsmith.project_tags(record.project_id)
    services.langsmith.delete_tagging(tool_key.values[0].taggings[0].id)

    _repaired(services, tenant_id, f"project {record.project_id} lost its tag")

    assert _confined(services, tenant_id, _canary(services))


def test_a_role_given_reads_of_its_own_is_set_back(
    tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    _onboard(services, tenant_id)
    role_id = services.store.describe(tenant_id).tags[TAG_ROLE]
    services.langsmith.update_role(
        role_id,
        tagged.access_name(tenant_id),
        description=tagged.role_description(tenant_id),
        permissions=["runs:create", "projects:read", "runs:read"],
    )
    assert not _confined(services, tenant_id, _canary(services)), "it reads every project"

    _repaired(services, tenant_id, f"role {role_id} has other permissions")

    assert _confined(services, tenant_id, _canary(services))


def test_a_policy_of_the_tool_pointed_at_another_tenant_is_removed(
    tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    a, b = f"{tenant_id}-a", f"{tenant_id}-b"
    _onboard(services, a)
    record_b = _onboard(services, b)
    role_a = services.store.describe(a).tags[TAG_ROLE]
    # Named and described as a's, but granting b's reads, on a's role.
    wrong = services.langsmith.create_access_policy(
        tagged.access_name(a),
        description=tagged.policy_description(a),
        effect="allow",
        condition_groups=tagged.policy_groups(b),
        role_ids=[role_a],
    )
    assert not _confined(services, a, record_b.project_id), "a reads b's project"

    _repaired(services, a, f"access policy {wrong} of the tool no longer matches")

    assert wrong not in {p.id for p in services.langsmith.list_access_policies()}
    assert _confined(services, a, record_b.project_id)
    assert _confined(services, b, services.store.read(a).project_id)


def test_a_role_gone_with_its_key_is_made_again_and_the_key_replaced(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    record = _onboard(services, tenant_id)
    role_id = services.store.describe(tenant_id).tags[TAG_ROLE]
    services.langsmith.delete_key(record.key_id)  # LangSmith refuses to delete a role in use
    services.langsmith.delete_role(role_id)

    [*_, planned] = _reconcile(services, [tenant_id], apply=False).rows
    applied = _reconcile(services, [tenant_id], apply=True)

    assert planned.kind == "replace-dead-key"
    assert _rows(applied)[0] == ("repair-access", "done"), applied.rows
    new_role = services.store.describe(tenant_id).tags[TAG_ROLE]
    assert new_role != role_id
    new = services.store.read(tenant_id)
    assert new.key_id != record.key_id and current_key_works(tenant_id)
    [emulated] = [k for k in backends.langsmith.control.keys() if k["id"] == new.key_id]  # noqa: SIM118
    assert emulated["role"] == new_role
    assert _confined(services, tenant_id, _canary(services))
    assert live_tool_keys(backends, tenant_id) == {new.key_id}
    assert _reconcile(services, [tenant_id], apply=False).rows == []


def test_what_a_stopped_onboarding_made_is_removed_once_old_enough(
    tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    project = services.langsmith.ensure_project(
        project_name(tenant_id), description=project_description(tenant_id)
    )
    tagged.provision(services.langsmith, tenant_id, project, "-")  # then the process died

    assert _reconcile(services, [tenant_id], apply=False, orphan_min_age_seconds=600).rows == []
    report = _reconcile(services, [tenant_id], apply=True)

    assert _rows(report) == [("remove-access", "done")]
    found = tagged.list_tool_access(services.langsmith)
    assert tenant_id not in found.tenants
    assert services.langsmith.project_tags(project.id) == []


def test_what_the_tool_did_not_make_is_never_touched(
    tagged_services: Services, tenant_id: str
) -> None:
    services = tagged_services
    langsmith = services.langsmith
    _onboard(services, tenant_id)
    role_id = KeyHome.of(services.store.describe(tenant_id).tags).role_id
    assert role_id
    # Look-alikes without the tool's mark, and a foreign policy on the tenant's role.
    lookalike_role = langsmith.create_role(
        tagged.access_name(tenant_id), description="someone's", permissions=["projects:read"]
    )
    lookalike_policy = langsmith.create_access_policy(
        tagged.access_name(tenant_id),
        description="someone's",
        effect="allow",
        condition_groups=tagged.policy_groups("globex"),
        role_ids=[],
    )
    foreign = langsmith.create_access_policy(
        "reads for auditors",
        description="someone's",
        effect="allow",
        condition_groups=tagged.policy_groups("globex"),
        role_ids=[role_id],
    )
    try:
        report = _reconcile(services, [tenant_id], apply=True)
        assert _rows(report) == [("attention", "needs-attention")]
        assert foreign in report.rows[0].reason
        policies = {p.id for p in langsmith.list_access_policies()}
        assert {lookalike_policy, foreign} <= policies
        assert lookalike_role.id in {r.id for r in langsmith.list_roles()}
    finally:
        langsmith.delete_access_policy(foreign)
        langsmith.delete_access_policy(lookalike_policy)
        langsmith.delete_role(lookalike_role.id)


def test_a_project_tenant_is_never_given_or_stripped_of_tagged_objects(
    backends: LocalStack, tagged_services: Services, tenant_id: str
) -> None:
    """Reconcile reads the tool's roles and policies, and writes none for a tenant in another
    mode, even one with leftovers of a migration that never finished."""
    services = tagged_services
    onboard(services, tenant_id, isolation="project")
    project = services.langsmith.find_project(project_name(tenant_id))
    assert project is not None
    tagged.provision(services.langsmith, tenant_id, project, "-")
    before = tagged.list_tool_access(services.langsmith)
    control = backends.langsmith.control
    control.reset_request_counts()

    assert _reconcile(services, [tenant_id], apply=True).rows == []

    writes = [
        route
        for route in control.request_counts()["by_route"]
        if not route.startswith("GET") and ("roles" in route or "access-policies" in route)
    ]
    assert writes == []
    assert tagged.list_tool_access(services.langsmith) == before
    tagged.remove_access(services.langsmith, tenant_id)
