"""prefect.yaml against the session's Prefect server: `prefect --no-prompt deploy --all` with no
prompts, every deployment read back as written, and a run of one executed the way a worker
does (pull step → entrypoint), from another directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
import yaml
from prefect.automations import RunDeployment
from prefect.client.orchestration import get_client

from devstack.deployments import (
    POOL,
    deploy_all,
    ensure_work_pool,
    repo_root,
    worker_env,
)
from devstack.stack import LocalStack
from tenant_keys.services import get_services
from tests.invariants import current_key_works

# One worker runs the module, so `deployed` deploys once.
pytestmark = pytest.mark.usefixtures("stack")

CONFIG = yaml.safe_load((repo_root() / "prefect.yaml").read_text())
NAMES = {d["name"] for d in CONFIG["deployments"]}


@pytest.fixture(scope="module")
def deployed(stack: LocalStack) -> Iterator[dict[str, object]]:
    """Deployed once for the module; deleted afterwards, so their schedules and the revoke
    trigger do not outlive these tests on the shared server."""
    env = stack.env()
    ensure_work_pool(env)
    ensure_work_pool(env)  # a second run of `up` on the same server must not fail
    output = deploy_all(env)
    with get_client(sync_client=True) as client:
        found = {d.name: d for d in client.read_deployments() if d.name in NAMES}
    yield {"output": output, "deployments": found}
    with get_client(sync_client=True) as client:
        for deployment in found.values():
            client.delete_deployment(deployment.id)


def test_deploy_all_creates_every_deployment_without_prompts(
    deployed: dict[str, object],
) -> None:
    deployments = deployed["deployments"]
    assert isinstance(deployments, dict)
    assert (
        set(deployments)
        == NAMES
        == {
            "onboard",
            "weekly-rotation",
            "hourly-quota-check",
            "hourly-reconcile",
            "offboard",
            "migrate",
            "emergency-revoke",
            "admin-key-rotation",
            "daily-posture",
        }
    )
    for spec in CONFIG["deployments"]:
        deployment = deployments[spec["name"]]
        assert deployment.work_pool_name == POOL
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.parameters == spec.get("parameters", {})
        crons = [(s.schedule.cron, s.active) for s in deployment.schedules]
        assert crons == [(s["cron"], s["active"]) for s in spec.get("schedules", [])]
        limit = deployment.global_concurrency_limit
        assert (limit.limit if limit else None) == spec.get("concurrency_limit", {}).get("limit")
    with get_client(sync_client=True) as client:
        [trigger] = client.read_automations_by_name("key-compromised")
    [action] = trigger.actions
    assert isinstance(action, RunDeployment)
    assert action.deployment_id == deployments["emergency-revoke"].id


def test_a_run_of_a_deployment_executes_from_the_pull_step(
    deployed: dict[str, object], stack: LocalStack, tenant_id: str, tmp_path: Path
) -> None:
    deployments = deployed["deployments"]
    assert isinstance(deployments, dict)
    onboard: UUID = deployments["onboard"].id
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            onboard, parameters={"tenant_ids": [tenant_id]}
        )

    # What a process worker runs for a flow run, from a directory without the flows: only the
    # pull step (TENANT_KEYS_HOME) makes the entrypoint loadable.
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "execute", str(run.id)],
        cwd=tmp_path,
        env={**os.environ, **worker_env(stack.env())},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state is not None and state.is_completed(), state
    assert get_services().store.read(tenant_id).key_id
    assert current_key_works(tenant_id)
