"""Assemble the emulator ASGI app: every API router served under ``/api/v1`` and unprefixed,
the ``/_emulator`` control API, error handlers, and the test-control middleware around it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import (
    routes_control,
    routes_info,
    routes_keys,
    routes_org,
    routes_projects,
    routes_runs,
    routes_usage,
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

API_ROUTERS = (
    routes_info.router,
    routes_projects.router,
    routes_keys.router,
    routes_org.router,
    routes_usage.router,
    routes_runs.router,
)


def create_app(store: Store, controls: TestingControls) -> ControlMiddleware:
    api = FastAPI(
        title="LangSmith emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    api.state.store = store
    api.state.controls = controls
    for router in API_ROUTERS:
        api.include_router(router, prefix="/api/v1")
        api.include_router(router)
    api.include_router(routes_control.router)
    api.add_exception_handler(ValidationApiError, validation_api_error_handler)
    api.add_exception_handler(ApiError, api_error_handler)
    api.add_exception_handler(RequestValidationError, validation_error_handler)
    api.add_exception_handler(StarletteHTTPException, http_error_handler)
    api.add_exception_handler(Exception, unhandled_error_handler)
    routes = [
        (r.path, set(r.methods))
        for router in API_ROUTERS
        for r in router.routes
        if isinstance(r, APIRoute)
    ]
    app = ControlMiddleware(api, store, controls, make_route_resolver(routes))
    app.api = api  # type: ignore[attr-defined]
    return app
