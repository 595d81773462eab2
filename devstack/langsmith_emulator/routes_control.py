"""The ``/_emulator/*`` control API (loopback clients only, no API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from .auth import get_store
from .control_schema import HealthJson
from .errors import validation_error
from .models import (
    AbacSettingsBody,
    ClockBody,
    ConfigureBody,
    FaultSpec,
    OrganizationUpdate,
    OrgSettingsBody,
)
from .responses import ok
from .routes_org_info import apply_update, org_info_json
from .state import Store
from .testing_controls import TestingControls

router = APIRouter(prefix="/_emulator", tags=["emulator-control"])


def _store(request: Request) -> Store:
    return get_store(request)


def _controls(request: Request) -> TestingControls:
    controls = request.app.state.controls  # set by app.create_app
    assert isinstance(controls, TestingControls)
    return controls


@router.get("/health")
async def health(request: Request) -> Response:
    store = _store(request)
    body: HealthJson = {
        "ok": True,
        "org_id": store.bootstrap.org_id,
        "workspace_id": store.bootstrap.workspace_id,
    }
    return ok(body)


@router.post("/reset")
async def reset(request: Request, keep_config: bool = False) -> Response:
    """Back to the bootstrap state: same org, workspace and bootstrap keys; no faults/counts."""
    store, controls = _store(request), _controls(request)
    config = controls.config.to_json() if keep_config else None
    store.clock.reset()
    store.reset()
    controls.reset()
    if config is not None:
        controls.configure(
            latency_ms=config["latency_ms"],
            latency_jitter_ms=config["latency_jitter_ms"],
            route_latency_ms=config["route_latency_ms"],
            rate_limits=config["rate_limits"] if config["rate_limits_enabled"] else False,
            rate_window_seconds=config["rate_window_seconds"],
        )
    return ok({"ok": True})


@router.get("/state")
async def state(request: Request) -> Response:
    return ok(_store(request).dump())


@router.get("/keys")
async def keys(request: Request) -> Response:
    store = _store(request)
    with store.lock:
        now = store.clock.now()
        return ok([k.record(now) for k in store.keys.values()])


@router.get("/faults")
async def list_faults(request: Request) -> Response:
    return ok(_controls(request).list_faults())


@router.post("/faults")
async def add_fault(request: Request, body: FaultSpec) -> Response:
    if body.action == "hang" and body.hang_seconds is None:
        raise validation_error(["body", "hang_seconds"], "hang_seconds is required for hang")
    return ok(_controls(request).add_fault(body))


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    _controls(request).clear_faults()
    return ok({"ok": True})


@router.get("/config")
async def get_config(request: Request) -> Response:
    return ok(_controls(request).config.to_json())


@router.post("/config")
async def configure(request: Request, body: ConfigureBody) -> Response:
    try:
        cfg = _controls(request).configure(**body.model_dump(exclude_none=True))
    except ValueError as exc:
        raise validation_error(["body", "rate_limits"], str(exc)) from None
    return ok(cfg)


@router.get("/requests")
async def request_counts(request: Request) -> Response:
    return ok(_controls(request).counts())


@router.delete("/requests")
async def reset_request_counts(request: Request) -> Response:
    _controls(request).reset_counts()
    return ok({"ok": True})


@router.get("/requests/log")
async def request_log(
    request: Request, limit: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    return ok(_controls(request).request_log(limit))


@router.get("/org")
async def get_org(request: Request) -> Response:
    store = _store(request)
    with store.lock:
        return ok(org_info_json(store.orgs[store.bootstrap.org_id]))


@router.post("/org")
async def configure_org(request: Request, body: OrgSettingsBody) -> Response:
    """The org's key-lifetime caps, as an org admin would set them (PATCH /orgs/current/info)."""
    store = _store(request)
    org = store.orgs[store.bootstrap.org_id]
    update = OrganizationUpdate.model_validate(body.model_dump(exclude_unset=True))
    apply_update(store, org, update)
    with store.lock:
        return ok(org_info_json(org))


@router.get("/abac")
async def get_abac(request: Request) -> Response:
    store = _store(request)
    with store.lock:
        return ok(store.orgs[store.bootstrap.org_id].abac.to_json())


@router.post("/abac")
async def configure_abac(request: Request, body: AbacSettingsBody) -> Response:
    """Whether the org has ABAC (``enabled``), what the access-policy paths do without it
    (``when_disabled``), and the readings of what LangSmith leaves unsaid (``project_list``,
    ``unmatched``). Effective at once; ``reset`` restores the defaults."""
    store = _store(request)
    with store.lock:
        settings = store.orgs[store.bootstrap.org_id].abac
        for name, value in body.model_dump(exclude_none=True).items():
            setattr(settings, name, value)
        return ok(settings.to_json())


@router.post("/clock")
async def advance_clock(request: Request, body: ClockBody) -> Response:
    """Move the emulator's clock (key expiry, created_at, usage months) forward."""
    offset = _store(request).clock.advance(body.advance_seconds)
    return ok({"offset_seconds": offset.total_seconds()})
