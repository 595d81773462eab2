"""The app side: per-tenant routing with the real `langsmith` SDK, rotations and revokes picked
up without a restart, and fail-closed behaviour when the store is out of reach. Runs are read
back with the runs query (`client.runs.query`) of the admin key."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import langsmith
import pytest

from devstack.stack import LocalStack, free_port
from examples.fastapi_app import create_app
from tenant_keys.locks import NoLocks
from tenant_keys.onboarding import onboard
from tenant_keys.revocation import request_from, revoke
from tenant_keys.rotation import rotate
from tenant_keys.runtime import TenantTracing
from tenant_keys.secret_store import SecretStore
from tenant_keys.services import get_services

pytestmark = pytest.mark.usefixtures("backends")


def onboard_directly(tenant_ids: list[str]) -> None:
    for tenant_id in tenant_ids:
        assert onboard(get_services(), tenant_id).outcome == "created"


def rotate_all(tenant_ids: list[str], rotation_id: str) -> None:
    for tenant_id in tenant_ids:
        result = rotate(get_services(), tenant_id, rotation_id, retire_now=True)
        assert result.outcome == "rotated", result.error


def revoke_current(tenant_id: str) -> None:
    services = get_services()
    request = request_from(
        services, tenant=tenant_id, scope=None, key_id=None, fingerprint=None, incident_id="i-app"
    )
    assert revoke(services, request, NoLocks()).status == "revoked"


def _tracing(ttl: float = 60.0) -> TenantTracing:
    return TenantTracing.from_settings(ttl_seconds=ttl)


def _runs(backends: LocalStack, tenant_id: str) -> list[Any]:
    """Root runs of the last hour in the tenant's project, read with the admin key."""
    project_id = get_services().store.read(tenant_id).project_id
    admin = langsmith.Client(api_url=backends.langsmith.url, api_key=backends.langsmith.admin_key)

    async def collect() -> list[Any]:
        query = admin.runs.query(
            project_ids=[project_id],
            min_start_time=datetime.now(UTC) - timedelta(hours=1),
            is_root=True,
            selects=["NAME", "INPUTS"],
        )
        return [run async for run in query]

    return asyncio.run(collect())


def _flush(tracing: TenantTracing) -> None:
    for handle in list(tracing._handles.values()):  # the test reaches in to wait for delivery
        handle.client.flush()


@langsmith.traceable(name="work")
async def _work(tenant_id: str, n: int) -> str:
    await asyncio.sleep(0.001 * (n % 5))  # interleave the requests
    return f"{tenant_id}:{n}"


def test_concurrent_async_requests_never_cross_tenants(
    backends: LocalStack, tenant_id: str
) -> None:
    tenants = [f"{tenant_id}-{n}" for n in range(4)]
    onboard_directly(tenants)
    tracing = _tracing()

    async def request(t: str, n: int) -> None:
        with tracing.context(t) as handle:
            assert handle is not None
            await _work(t, n)

    async def traffic() -> None:
        await asyncio.gather(*(request(t, n) for n in range(15) for t in tenants))

    asyncio.run(traffic())
    _flush(tracing)
    for t in tenants:
        runs = _runs(backends, t)
        assert len(runs) == 15, f"{t}: {len(runs)} runs"
        assert {r.inputs["tenant_id"] for r in runs} == {t}, (
            "a run landed in another tenant's project"
        )
    tracing.close()


def test_rotation_is_picked_up_without_a_restart(backends: LocalStack, tenant_id: str) -> None:
    onboard_directly([tenant_id])
    tracing = _tracing(ttl=0.5)
    first = tracing.handle(tenant_id)
    assert first is not None
    rotate_all([tenant_id], "r-app")
    time.sleep(0.6)
    second = tracing.handle(tenant_id)
    assert second is not None and second.key_id != first.key_id
    assert second.key_id == get_services().store.read(tenant_id).key_id
    asyncio.run(_traced_once(tracing, tenant_id))
    _flush(tracing)
    assert len(_runs(backends, tenant_id)) == 1
    tracing.close()


async def _traced_once(tracing: TenantTracing, tenant_id: str) -> None:
    with tracing.context(tenant_id):
        await _work(tenant_id, 0)


def test_a_401_drops_the_cached_key_at_once(backends: LocalStack, tenant_id: str) -> None:
    onboard_directly([tenant_id])
    tracing = _tracing(ttl=3600)  # the TTL alone would keep the dead key for an hour
    stale = tracing.handle(tenant_id)
    assert stale is not None
    rotate_all([tenant_id], "r-401")  # grace 0: the cached key is deleted
    asyncio.run(_traced_once(tracing, tenant_id))
    stale.client.flush()  # the batch is refused with 401 on the client's tracing thread
    deadline = time.monotonic() + 10
    while tracing._handles.get(tenant_id) is stale and time.monotonic() < deadline:
        time.sleep(0.1)
    fresh = tracing.handle(tenant_id)
    assert fresh is not None and fresh.key_id != stale.key_id
    tracing.close()


def test_store_outage_turns_tracing_off_without_a_fallback_key(
    backends: LocalStack, tenant_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    onboard_directly([tenant_id])
    dead_store = SecretStore(
        prefix=get_services().settings.secret_prefix,
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
    )  # nothing listens there
    tracing = TenantTracing(dead_store, backends.langsmith.url, warn_interval_seconds=3600)
    before = backends.langsmith.control.request_counts()["total"]

    with caplog.at_level(logging.WARNING, logger="tenant_keys.runtime"):
        for n in range(3):
            with tracing.context(tenant_id) as handle:
                assert handle is None
                assert (
                    asyncio.run(_work(tenant_id, n)) == f"{tenant_id}:{n}"
                )  # the app's work goes on

    assert backends.langsmith.control.request_counts()["total"] == before, (
        "nothing may be sent with any key"
    )
    warnings = [r for r in caplog.records if "tracing off" in r.getMessage()]
    assert len(warnings) == 1, "one warning per interval, not one per request"


def test_unknown_tenant_is_not_traced(backends: LocalStack) -> None:
    tracing = _tracing()
    assert tracing.handle("never-onboarded") is None


def test_example_app_across_a_rotation_and_a_revoke(backends: LocalStack, tenant_id: str) -> None:
    tenants = [f"{tenant_id}-a", f"{tenant_id}-b"]
    onboard_directly(tenants)
    tracing = _tracing(ttl=0.2)
    app = create_app(tracing)

    async def traffic(rounds: int) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            calls = [
                client.post("/chat", json={"question": f"q{n}"}, headers={"X-Tenant-Id": t})
                for n in range(rounds)
                for t in tenants
            ]
            return await asyncio.gather(*calls)

    def flush_all() -> None:
        for handle in list(tracing._handles.values()):
            handle.client.flush()

    responses = asyncio.run(traffic(5))
    flush_all()
    old_keys = {t: get_services().store.read(t).key_id for t in tenants}
    rotate_all(tenants, "r-example")
    time.sleep(0.3)  # past the cache TTL
    responses += asyncio.run(traffic(5))
    flush_all()
    revoke_current(tenants[0])
    time.sleep(0.3)
    responses += asyncio.run(traffic(5))
    flush_all()
    time.sleep(0.5)  # retired clients flush on their own threads

    assert all(r.status_code == 200 and r.json()["traced"] for r in responses), (
        "no request may fail"
    )
    for t in tenants:
        assert get_services().store.read(t).key_id != old_keys[t]
        runs = _runs(backends, t)
        assert len(runs) == 15 and {r.inputs["tenant_id"] for r in runs} == {t}
    tracing.close()


def test_langchain_runs_go_to_the_tenants_project(backends: LocalStack, tenant_id: str) -> None:
    from langchain_core.runnables import RunnableLambda

    onboard_directly([tenant_id])
    tracing = _tracing()
    tracer = tracing.langchain_tracer(tenant_id)
    assert tracer is not None

    def answer(question: str) -> str:
        return f"answer to {question}"

    chain = RunnableLambda(answer).with_config(run_name="lc-chain")
    assert chain.invoke("q1", config={"callbacks": [tracer]}) == "answer to q1"
    tracer.wait_for_futures()
    _flush(tracing)
    runs = _runs(backends, tenant_id)
    assert [r.name for r in runs] == ["lc-chain"]
    assert tracing.langchain_tracer("never-onboarded") is None
    tracing.close()
