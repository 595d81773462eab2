"""Assemble the emulator ASGI app: every API router served under ``/api/v1`` and unprefixed,
the ``/_emulator`` control API, error handlers, and the test-control middleware around it."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import (
    routes_access_policies,
    routes_audit,
    routes_control,
    routes_info,
    routes_keys,
    routes_org,
    routes_org_info,
    routes_projects,
    routes_roles,
    routes_runs,
    routes_tags,
    routes_usage,
    routes_v2,
)
from .errors import (
    ApiError,
    ValidationApiError,
    api_error_handler,
    http_error_handler,
    unhandled_error_handler,
    validation_api_error_handler,
    validation_error_handler,
)
from .state import Store
from .testing_controls import ControlMiddleware, TestingControls, make_route_resolver

V1 = ("/api/v1", "")  # the spec's /api/v1 form and the unprefixed form the SDK calls
V2 = ("/api", "")  # the SDK's /api/v2 form and the spec's /v2 form

# Each router with the prefixes it is served under.
API_MOUNTS: tuple[tuple[APIRouter, tuple[str, ...]], ...] = (
    (routes_info.router, V1),
    (routes_projects.router, V1),
    (routes_keys.router, V1),
    (routes_org.router, V1),
    (routes_org_info.router, V1),
    (routes_audit.router, V1),
    (routes_usage.router, V1),
    (routes_tags.router, V1),
    (routes_roles.router, V1),
    (routes_runs.router, V1),
    (routes_runs.ingest_router, ("",)),
    (routes_v2.router, V2),
    (routes_access_policies.router, ("",)),  # the spec's /v1/platform/... only
)


def served_routes() -> list[tuple[str, set[str]]]:
    """Every (path template, methods) the API serves, in every prefix form."""
    served = []
    for router, prefixes in API_MOUNTS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            assert route.methods is not None  # an APIRoute always has them (GET by default)
            served += [(prefix + route.path, set(route.methods)) for prefix in prefixes]
    return served


def create_app(store: Store, controls: TestingControls) -> ControlMiddleware:
    api = FastAPI(
        title="LangSmith emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    api.state.store = store
    api.state.controls = controls
    for router, prefixes in API_MOUNTS:
        for prefix in prefixes:
            api.include_router(router, prefix=prefix)
    api.include_router(routes_control.router)
    api.add_exception_handler(ValidationApiError, validation_api_error_handler)
    api.add_exception_handler(ApiError, api_error_handler)
    api.add_exception_handler(RequestValidationError, validation_error_handler)
    api.add_exception_handler(StarletteHTTPException, http_error_handler)
    api.add_exception_handler(Exception, unhandled_error_handler)
    app = ControlMiddleware(api, store, controls, make_route_resolver(served_routes()))
    app.api = api
    return app
