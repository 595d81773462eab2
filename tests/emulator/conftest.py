"""One in-process LangSmith emulator for the emulator suite, reset before every test.

``api`` is an httpx client whose every response is validated against LangSmith's full spec
(the emulator package's openapi.json); ``sdk_client(key)`` builds a real ``langsmith.Client``
whose responses, the /v2 ones included, are validated the same way (failures are collected
and fail the test at teardown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import langsmith
import pytest

from devstack.langsmith_emulator import EmulatorServer

from . import spec


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_state(emulator: EmulatorServer) -> None:
    emulator.control.reset()


class ApiClient:
    """httpx wrapper: headers for a key (and optional workspace/org), spec-validated replies."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.validated: list[str] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        tenant: str | None = None,
        org: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if key is not None:
            hdrs["x-api-key"] = key
        if tenant is not None:
            hdrs["X-Tenant-Id"] = tenant
        if org is not None:
            hdrs["X-Organization-Id"] = org
        response = self.http.request(method, path, headers=hdrs, **kwargs)
        check_response(method, path, response)
        return response

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)


def check_response(method: str, path: str, response: Any) -> None:
    """Every reply is JSON; spec'd ones match their schema; never a 500."""
    assert response.status_code != 500, f"{method} {path} -> 500: {response.text}"
    body = response.json() if response.content else None
    spec.validate(method, path, response.status_code, body)


@pytest.fixture
def api(emulator: EmulatorServer) -> Iterator[ApiClient]:
    with httpx.Client(base_url=emulator.url, timeout=10) as http:
        yield ApiClient(http)


@pytest.fixture
def sdk_client(emulator: EmulatorServer) -> Iterator[Callable[..., langsmith.Client]]:
    clients: list[langsmith.Client] = []
    failures: list[str] = []

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        method = response.request.method
        path = urlsplit(str(response.request.url)).path  # requests, httpx or the SDK's httpx2
        try:
            check_response(method, path, response)
        except AssertionError as exc:  # collected: hooks may run on the SDK's thread
            failures.append(str(exc))

    async def v2_hook(response: Any) -> None:  # an httpx2 response (the SDK vendors httpx2)
        await response.aread()
        hook(response)

    def make(key: str, **kwargs: Any) -> langsmith.Client:
        client = langsmith.Client(api_url=emulator.url, api_key=key, **kwargs)
        client.session.hooks["response"].append(hook)
        # client.runs (the /v2 API) goes through the SDK's generated httpx client, which the
        # requests hook above does not see; it has no public seam, hence the private attribute.
        v2_http = client._get_langsmith_api()._client
        v2_http.event_hooks["response"].append(v2_hook)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.flush()
        client.close()
    assert not failures, failures


@pytest.fixture
def admin(emulator: EmulatorServer) -> dict[str, str]:
    return {"key": emulator.admin_key}


def new_workspace(api: ApiClient, emulator: EmulatorServer, name: str = "Tenant WS") -> str:
    r = api.post(
        "/api/v1/workspaces",
        key=emulator.org_admin_key,
        org=emulator.org_id,
        json={"display_name": name},
    )
    assert r.status_code == 200, r.text
    workspace_id: str = r.json()["id"]
    return workspace_id


def new_key(api: ApiClient, key: str, tenant: str | None = None, **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/api-key", key=key, tenant=tenant, json=body or {"description": "t"})
    assert r.status_code == 200, r.text
    created: dict[str, Any] = r.json()  # APIKeyCreateResponse: the key's fields and "key"
    return created


def query_runs(client: langsmith.Client, **kwargs: Any) -> list[Any]:
    """Every page of ``client.runs.query(**kwargs)``: the SDK's pager is async."""

    async def collect() -> list[Any]:
        return [run async for run in client.runs.query(**kwargs)]

    return asyncio.run(collect())


def key_records(emulator: EmulatorServer) -> list[dict[str, Any]]:
    """The emulator's dump of every key ever minted (``EmulatorControl.keys()``)."""
    records: list[dict[str, Any]] = emulator.control.keys()
    return records
