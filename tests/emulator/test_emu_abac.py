"""Access policies enforced: the decision as a table of cases (abac.py), then a tenant's key in
the "tagged" isolation mode over HTTP and the SDK (its own project and runs readable, another
tenant's refused or left out, writes unaffected), and the control switches (/_emulator/abac):
an org without ABAC, the 403 reading of project lists, the "deny when unmatched" reading."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import langsmith
import pytest

from devstack.langsmith_emulator import EmulatorServer
from devstack.langsmith_emulator.abac import (
    AccessPolicy,
    Condition,
    ConditionGroup,
    Unmatched,
    condition_holds,
    decide,
)
from devstack.langsmith_emulator.openapi import enum_values

from .conftest import ApiClient, new_key, query_runs
from .test_emu_access_policies import POLICIES, create_policy, tenant_policy
from .test_emu_roles import create_role

# ------------------------------------------------------------------ the decision, as a table

ACME = {"tenant": {"Acme"}}
UNTAGGED: dict[str, set[str]] = {"other": {"x"}}


@pytest.mark.parametrize(
    ("operator", "value", "tags", "holds"),
    [
        ("equals", "Acme", ACME, True),
        ("equals", "acme", ACME, False),  # case sensitive
        ("equals", "Acm", ACME, False),
        ("not_equals", "Acme", ACME, False),
        ("not_equals", "Globex", ACME, True),
        ("equals_ignore_case", "ACME", ACME, True),
        ("equals_ignore_case", "Globex", ACME, False),
        ("not_equals_ignore_case", "acme", ACME, False),
        ("not_equals_ignore_case", "globex", ACME, True),
        ("matches", "Ac*", ACME, True),
        ("matches", "*me", ACME, True),
        ("matches", "A?me", ACME, True),
        ("matches", "A?e", ACME, False),  # ? is exactly one character
        ("matches", "*", ACME, True),
        ("matches", "Acme*", ACME, True),  # * matches the empty string too
        ("matches", "Ac", ACME, False),  # the whole value, not a prefix
        ("matches", "ac*", ACME, False),  # case sensitive
        ("matches", "A.me", ACME, False),  # "." is literal, not a regex
        ("matches", "[A]cme", ACME, False),  # "[" is literal, not a character class
        ("not_matches", "G*", ACME, True),
        ("not_matches", "A*", ACME, False),
        # The _if_exists variants evaluate normally when the key is there...
        ("equals_if_exists", "Acme", ACME, True),
        ("equals_if_exists", "Globex", ACME, False),
        ("not_equals_if_exists", "Acme", ACME, False),
        ("equals_ignore_case_if_exists", "acme", ACME, True),
        ("not_equals_ignore_case_if_exists", "acme", ACME, False),
        ("matches_if_exists", "G*", ACME, False),
        ("not_matches_if_exists", "G*", ACME, True),
        # Several values of the key: positive operators hold if one matches, negative if none.
        ("equals", "globex", {"tenant": {"acme", "globex"}}, True),
        ("not_equals", "globex", {"tenant": {"acme", "globex"}}, False),
        ("not_equals", "initech", {"tenant": {"acme", "globex"}}, True),
    ],
)
def test_operator(operator: str, value: str, tags: dict[str, set[str]], holds: bool) -> None:
    assert condition_holds(Condition("tenant", operator, value), tags) is holds


@pytest.mark.parametrize("operator", sorted(enum_values("authz_internal.AbacOperator")))
def test_without_the_tag_key_only_the_if_exists_variants_hold(operator: str) -> None:
    holds = condition_holds(Condition("tenant", operator, "Acme"), UNTAGGED)
    assert holds is operator.endswith("_if_exists")
    assert condition_holds(Condition("tenant", operator, "Acme"), {}) is holds


def _policy(effect: str, *groups: list[Condition], permission: str = "runs:read") -> AccessPolicy:
    now = datetime.now(UTC)
    return AccessPolicy(
        id=str(uuid.uuid4()),
        name=effect,
        description="",
        effect="allow" if effect == "allow" else "deny",
        condition_groups=tuple(
            ConditionGroup(permission, "project", tuple(conditions)) for conditions in groups
        ),
        role_ids=[],
        created_at=now,
        updated_at=now,
    )


IS_ACME = [Condition("tenant", "equals", "Acme")]
IS_GLOBEX = [Condition("tenant", "equals", "Globex")]
ALLOW_ACME = _policy("allow", IS_ACME)
DENY_ACME = _policy("deny", IS_ACME)
ALLOW_GLOBEX = _policy("allow", IS_GLOBEX)


@dataclass(frozen=True)
class Case:
    name: str
    policies: tuple[AccessPolicy, ...]
    rbac: bool
    allowed: bool
    tags: dict[str, set[str]] | None = None
    unmatched: Unmatched = "rbac"


CASES = [
    # The docs' table (RBAC permits / allow matches / deny matches -> result).
    Case("rbac, allow", (ALLOW_ACME,), True, True),
    Case("rbac, nothing matches: RBAC fallback", (ALLOW_GLOBEX,), True, True),
    Case("rbac, allow and deny: deny wins", (ALLOW_ACME, DENY_ACME), True, False),
    Case("rbac, deny", (DENY_ACME,), True, False),
    Case("no rbac, allow grants", (ALLOW_ACME,), False, True),
    Case("no rbac, nothing matches", (ALLOW_GLOBEX,), False, False),
    Case("no rbac, allow and deny: deny wins", (ALLOW_ACME, DENY_ACME), False, False),
    # No policy at all: RBAC alone.
    Case("no policy, rbac", (), True, True),
    Case("no policy, no rbac", (), False, False),
    # A policy on another permission says nothing here.
    Case("other permission", (_policy("deny", IS_ACME, permission="projects:read"),), True, True),
    # Groups OR'ed, conditions AND'ed.
    Case("second group matches", (_policy("allow", IS_GLOBEX, IS_ACME),), False, True),
    Case(
        "AND: one condition fails",
        (_policy("allow", [*IS_ACME, Condition("env", "equals", "prod")]),),
        False,
        False,
    ),
    Case(
        "AND: both hold",
        (_policy("allow", [*IS_ACME, Condition("env", "equals", "prod")]),),
        False,
        True,
        tags={"tenant": {"Acme"}, "env": {"prod"}},
    ),
    # _if_exists on an untagged project.
    Case(
        "allow equals_if_exists, untagged",
        (_policy("allow", [Condition("tenant", "equals_if_exists", "Acme")]),),
        False,
        True,
        tags={},
    ),
    Case(
        "deny equals_if_exists, untagged: blocked",
        (_policy("deny", [Condition("tenant", "equals_if_exists", "Acme")]),),
        True,
        False,
        tags={},
    ),
    Case(
        "allow equals, untagged: RBAC",
        (ALLOW_ACME,),
        False,
        False,
        tags={},
    ),
    # Glob.
    Case(
        "allow matches glob",
        (_policy("allow", [Condition("tenant", "matches", "A*e")]),),
        False,
        True,
    ),
    Case(
        "deny not_matches glob",
        (_policy("deny", [Condition("tenant", "not_matches", "G?obex")]),),
        True,
        False,
    ),
    # The policy builder's reading: an allow covers the permission, none matches -> deny.
    Case("unmatched=deny, rbac", (ALLOW_GLOBEX,), True, False, unmatched="deny"),
    Case("unmatched=deny, allow matches", (ALLOW_ACME,), False, True, unmatched="deny"),
    Case("unmatched=deny, only a deny policy", (DENY_ACME,), True, True, UNTAGGED, "deny"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision(case: Case) -> None:
    tags = ACME if case.tags is None else case.tags
    got = decide(
        case.policies, "runs:read", "project", tags, rbac=case.rbac, unmatched=case.unmatched
    )
    assert got is case.allowed


# ------------------------------------------------------------------ a tenant's key over HTTP

TAGS = "/api/v1/workspaces/current"


@dataclass
class Tenants:
    """Two tenants in the shared workspace, in the "tagged" mode, and an untagged project."""

    acme_key: str
    acme_project: str
    globex_project: str
    untagged_project: str
    acme_role: str
    acme_run: dict[str, Any]
    globex_run: dict[str, Any]


def _run(project_id: str, start: datetime) -> dict[str, Any]:
    run_id = str(uuid.uuid4())
    return {
        "id": run_id,
        "trace_id": run_id,
        "dotted_order": f"{start:%Y%m%dT%H%M%S%fZ}{run_id}",
        "name": "r",
        "run_type": "chain",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(seconds=1)).isoformat(),
        "inputs": {},
        "outputs": {},
        "session_id": project_id,
    }


def setup_tenants(
    api: ApiClient, emulator: EmulatorServer, permissions: list[str] | None = None
) -> Tenants:
    admin = emulator.admin_key
    key_id = api.post(f"{TAGS}/tag-keys", key=admin, json={"key": "tenant"}).json()["id"]
    values = {
        name: api.post(
            f"{TAGS}/tag-keys/{key_id}/tag-values", key=admin, json={"value": name}
        ).json()["id"]
        for name in ("acme", "globex")
    }
    projects = {
        name: api.post(
            "/api/v1/sessions",
            key=admin,
            json={"name": f"{name}-traces", "tag_value_ids": [values[name]]},
        ).json()["id"]
        for name in ("acme", "globex")
    }
    untagged = api.post("/api/v1/sessions", key=admin, json={"name": "untagged"}).json()["id"]
    # The role reads nothing of its own; the allow policy grants reads of the tenant's project.
    role = create_role(api, emulator, permissions or ["runs:create"], name="tenant acme")
    create_policy(api, emulator, tenant_policy("acme", role_ids=[role["id"]]))
    acme_key = new_key(api, admin, description="acme", role_id=role["id"])["key"]
    start = datetime.now(UTC) - timedelta(minutes=5)
    runs = {name: _run(projects[name], start) for name in ("acme", "globex")}
    r = api.post("/runs/batch", key=admin, json={"post": list(runs.values())})
    assert r.status_code == 202
    return Tenants(
        acme_key,
        projects["acme"],
        projects["globex"],
        untagged,
        role["id"],
        runs["acme"],
        runs["globex"],
    )


def _names(api: ApiClient, key: str, **params: Any) -> set[str]:
    r = api.get("/api/v1/sessions", key=key, params=params)
    assert r.status_code == 200, r.text
    return {p["name"] for p in r.json()}


def test_a_tagged_key_reads_its_own_project_only(emulator: EmulatorServer, api: ApiClient) -> None:
    t = setup_tenants(api, emulator)
    k = t.acme_key
    assert api.get(f"/api/v1/sessions/{t.acme_project}", key=k).status_code == 200
    for other in (t.globex_project, t.untagged_project):
        r = api.get(f"/api/v1/sessions/{other}", key=k)
        assert r.status_code == 403 and "projects:read" in r.json()["detail"]
    # The list leaves the others out (the default "filter" reading).
    assert _names(api, k) == {"acme-traces"}
    assert _names(api, k, name="globex-traces") == set()
    assert _names(api, k, name="acme-traces") == {"acme-traces"}
    # The admin key carries no policy: it reads everything.
    assert _names(api, emulator.admin_key) == {"acme-traces", "globex-traces", "untagged"}
    # Reads only: the policy grants no update, the role has none.
    r = api.patch(f"/api/v1/sessions/{t.acme_project}", key=k, json={"description": "x"})
    assert r.status_code == 403
    assert api.delete(f"/api/v1/sessions/{t.acme_project}", key=k).status_code == 403


def test_a_tagged_key_reads_its_own_runs_only(emulator: EmulatorServer, api: ApiClient) -> None:
    t = setup_tenants(api, emulator)
    k = t.acme_key
    # v1 query and stats
    r = api.post("/api/v1/runs/query", key=k, json={"session": [t.acme_project]})
    assert [run["id"] for run in r.json()["runs"]] == [t.acme_run["id"]]
    r = api.post("/api/v1/runs/query", key=k, json={"session": [t.globex_project]})
    assert r.status_code == 403
    r = api.post("/api/v1/runs/query", key=k, json={})  # no project named: its own only
    assert [run["id"] for run in r.json()["runs"]] == [t.acme_run["id"]]
    assert api.post("/api/v1/runs/stats", key=k, json={}).json()["run_count"] == 1
    r = api.post("/api/v1/runs/stats", key=k, json={"session": [t.globex_project]})
    assert r.status_code == 403
    # a run by id: judged by its project's tags
    assert api.get(f"/api/v1/runs/{t.acme_run['id']}", key=k).status_code == 200
    assert api.get(f"/api/v1/runs/{t.globex_run['id']}", key=k).status_code == 403
    # v2 query and retrieve
    body = {"project_ids": [t.acme_project], "min_start_time": "2000-01-01T00:00:00Z"}
    r = api.post("/api/v2/runs/query", key=k, json=body)
    assert [run["id"] for run in r.json()["items"]] == [t.acme_run["id"]]
    r = api.post("/api/v2/runs/query", key=k, json={**body, "project_ids": [t.globex_project]})
    assert r.status_code == 403 and r.json()["status"] == 403
    r = api.get(
        f"/api/v2/runs/{t.globex_run['id']}",
        key=k,
        params={"project_id": t.globex_project, "start_time": t.globex_run["start_time"]},
    )
    assert r.status_code == 403
    r = api.get(
        f"/api/v2/runs/{t.acme_run['id']}",
        key=k,
        params={"project_id": t.acme_project, "start_time": t.acme_run["start_time"]},
    )
    assert r.status_code == 200


def test_a_service_key_with_the_tenants_role(emulator: EmulatorServer, api: ApiClient) -> None:
    """An org service key scoped to the workspace, minted with the tenant's role, is held to
    the same policies (by X-Tenant-Id)."""
    t = setup_tenants(api, emulator)
    ws = emulator.workspace_id
    r = api.post(
        "/api/v1/orgs/current/service-keys",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        json={"workspaces": [ws], "role_id": t.acme_role},
    )
    assert r.status_code == 200
    k = r.json()["key"]
    assert api.get(f"/api/v1/sessions/{t.acme_project}", key=k, tenant=ws).status_code == 200
    assert api.get(f"/api/v1/sessions/{t.globex_project}", key=k, tenant=ws).status_code == 403
    names = {p["name"] for p in api.get("/api/v1/sessions", key=k, tenant=ws).json()}
    assert names == {"acme-traces"}


def test_tags_do_not_restrict_writes(emulator: EmulatorServer, api: ApiClient) -> None:
    """runs:create is RBAC only: a tagged key writes into another tenant's project."""
    t = setup_tenants(api, emulator)
    run = _run(t.globex_project, datetime.now(UTC))
    assert api.post("/runs/batch", key=t.acme_key, json={"post": [run]}).status_code == 202
    r = api.get(f"/api/v1/runs/{run['id']}", key=emulator.admin_key)
    assert r.status_code == 200 and r.json()["session_id"] == t.globex_project
    assert api.get(f"/api/v1/runs/{run['id']}", key=t.acme_key).status_code == 403


def test_the_sdk_with_a_tagged_key(
    emulator: EmulatorServer,
    api: ApiClient,
    sdk_client: Callable[..., langsmith.Client],
) -> None:
    t = setup_tenants(api, emulator)
    client = sdk_client(t.acme_key)
    assert str(client.read_project(project_name="acme-traces").id) == t.acme_project
    with pytest.raises(langsmith.utils.LangSmithNotFoundError):
        client.read_project(project_name="globex-traces")  # filtered out of the list
    with pytest.raises(langsmith.utils.LangSmithError):
        client.read_project(project_id=t.globex_project)  # 403
    since = datetime.now(UTC) - timedelta(hours=1)
    own = query_runs(client, project_ids=[t.acme_project], min_start_time=since)
    assert [str(r.id) for r in own] == [t.acme_run["id"]]
    with pytest.raises(Exception, match="403"):
        query_runs(client, project_ids=[t.globex_project], min_start_time=since)


def test_deny_beats_allow_over_http(emulator: EmulatorServer, api: ApiClient) -> None:
    t = setup_tenants(api, emulator)
    deny = tenant_policy("ac*", effect="deny", role_ids=[t.acme_role], operator="matches")
    create_policy(api, emulator, deny)
    assert api.get(f"/api/v1/sessions/{t.acme_project}", key=t.acme_key).status_code == 403
    # Nothing left to read: the list is empty, not an error.
    assert _names(api, t.acme_key) == set()


def test_if_exists_reaches_untagged_projects(emulator: EmulatorServer, api: ApiClient) -> None:
    t = setup_tenants(api, emulator)
    create_policy(
        api,
        emulator,
        tenant_policy("acme", role_ids=[t.acme_role], operator="equals_if_exists"),
    )
    assert _names(api, t.acme_key) == {"acme-traces", "untagged"}


def test_a_role_without_any_grant_is_refused_up_front(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    """No RBAC permission and no allow policy that could grant it: a 403, not an empty list."""
    role = create_role(api, emulator, ["runs:create"])
    k = new_key(api, emulator.admin_key, role_id=role["id"])["key"]
    assert api.get("/api/v1/sessions", key=k).status_code == 403
    assert api.post("/api/v1/runs/query", key=k, json={}).status_code == 403


# ------------------------------------------------------------------ the control switches


def test_project_list_forbid_reading(emulator: EmulatorServer, api: ApiClient) -> None:
    t = setup_tenants(api, emulator)
    settings = emulator.control.configure_abac(project_list="forbid")
    assert settings["project_list"] == "forbid"
    k = t.acme_key
    assert api.get("/api/v1/sessions", key=k).status_code == 403
    assert api.get("/api/v1/sessions", key=k, params={"name": "globex-traces"}).status_code == 403
    assert _names(api, k, name="acme-traces") == {"acme-traces"}
    assert api.post("/api/v1/runs/query", key=k, json={}).status_code == 403
    r = api.post("/api/v1/runs/query", key=k, json={"session": [t.acme_project]})
    assert r.status_code == 200


def test_unmatched_deny_reading(emulator: EmulatorServer, api: ApiClient) -> None:
    """A role that reads by RBAC too, with an allow policy on its tenant's tag."""
    t = setup_tenants(api, emulator, ["projects:read", "runs:read", "runs:create"])
    k = t.acme_key
    # The docs' reading (default): RBAC decides where the allow policy does not match.
    assert _names(api, k) == {"acme-traces", "globex-traces", "untagged"}
    emulator.control.configure_abac(unmatched="deny")
    assert _names(api, k) == {"acme-traces"}
    assert api.get(f"/api/v1/sessions/{t.globex_project}", key=k).status_code == 403


def test_an_org_without_abac_enforces_rbac_only(emulator: EmulatorServer, api: ApiClient) -> None:
    t = setup_tenants(api, emulator)
    ctl = emulator.control
    assert ctl.abac() == {
        "enabled": True,
        "when_disabled": "accept",
        "project_list": "filter",
        "unmatched": "rbac",
    }
    info = api.get("/api/v1/orgs/current/info", key=emulator.admin_key, org=emulator.org_id)
    assert info.json()["config"]["can_use_abac"] is True
    ctl.configure_abac(enabled=False)
    info = api.get("/api/v1/orgs/current/info", key=emulator.admin_key, org=emulator.org_id)
    assert info.json()["config"]["can_use_abac"] is False
    # The tagged key's role reads nothing of its own: without ABAC it reads nothing at all.
    k = t.acme_key
    assert api.get(f"/api/v1/sessions/{t.acme_project}", key=k).status_code == 403
    assert api.get("/api/v1/sessions", key=k).status_code == 403
    assert api.get(f"/api/v1/runs/{t.acme_run['id']}", key=k).status_code == 403
    # Policies are still accepted and stored ("accept"), just never enforced.
    pid = create_policy(api, emulator, tenant_policy("globex", role_ids=[t.acme_role]))
    assert api.get(f"{POLICIES}/{pid}", key=emulator.org_admin_key, org=emulator.org_id).is_success
    assert api.get(f"/api/v1/sessions/{t.globex_project}", key=k).status_code == 403
    ctl.configure_abac(enabled=True)
    assert api.get(f"/api/v1/sessions/{t.acme_project}", key=k).status_code == 200


def test_without_abac_a_role_that_reads_by_rbac_reads_every_tenant(
    emulator: EmulatorServer, api: ApiClient
) -> None:
    """The fail-open case the product must detect: the allow policy no longer narrows."""
    t = setup_tenants(api, emulator, ["projects:read", "runs:read", "runs:create"])
    emulator.control.configure_abac(enabled=False, unmatched="deny")
    assert _names(api, t.acme_key) == {"acme-traces", "globex-traces", "untagged"}
    assert api.get(f"/api/v1/runs/{t.globex_run['id']}", key=t.acme_key).status_code == 200


def test_an_org_without_abac_can_refuse_policies(emulator: EmulatorServer, api: ApiClient) -> None:
    okey, org = emulator.org_admin_key, emulator.org_id
    pid = create_policy(api, emulator, tenant_policy("acme"))
    emulator.control.configure_abac(enabled=False, when_disabled="refuse")
    r = api.post(POLICIES, key=okey, org=org, json=tenant_policy("acme"))
    assert r.status_code == 403 and set(r.json()) == {"error"}
    assert api.get(POLICIES, key=okey, org=org).status_code == 403
    assert api.get(f"{POLICIES}/{pid}", key=okey, org=org).status_code == 403
    r = api.post(
        f"{POLICIES}/roles/{create_role(api, emulator, [])['id']}/access-policies",
        key=okey,
        org=org,
        json={"access_policy_ids": [pid]},
    )
    assert r.status_code == 403
    # reset restores an org with ABAC
    emulator.control.reset()
    assert emulator.control.abac()["enabled"] is True
    assert api.get(POLICIES, key=okey, org=org).status_code == 200


def test_the_control_api_refuses_unknown_settings(emulator: EmulatorServer) -> None:
    for body in ({"project_list": "maybe"}, {"bogus": True}, {"enabled": "sometimes"}):
        r = httpx.post(f"{emulator.url}/_emulator/abac", json=body)
        assert r.status_code == 422, body
    state = emulator.control.state()
    assert state["abac"]["enabled"] is True and state["access_policies"] == []
