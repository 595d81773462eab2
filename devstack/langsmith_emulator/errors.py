"""Error responses in the shapes LangSmith uses, one per family of paths.

* ``platform``: management paths (FastAPI backend) answer ``{"detail": ...}``, validation
  errors ``HTTPValidationError`` ``{"detail": [{loc, msg, type}]}``.
* ``ingest``: the trace-ingest paths (the Go ingest service: ``/runs``, ``/runs/batch``,
  ``/runs/multipart``, unprefixed ``PATCH /runs/{id}``) answer ``runs.ErrorResponse``
  ``{"error": ..., "details": ...}``.
* ``v2``: the SmithDB API (``/api/v2/...``) answers RFC 7807 ``shared.ProblemDetails``
  ``{type, title, status, detail, instance, remedy}``.
* ``abac``: the platform service's access-policy paths (``/v1/platform/...``) answer
  ``abac.ErrorResponse`` ``{"error": ...}``, and 400 (not 422) for a malformed request.

A machine-readable code, when there is one (``org_scoped_key_requires_workspace``), is put in
``error``, which is where the SDK looks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Literal

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

ErrorStyle = Literal["platform", "ingest", "v2", "abac"]

PLATFORM_SERVICE = "/v1/platform/"  # the Go platform service's paths, as the spec lists them
INGEST_ROUTES = {
    "POST /api/v1/runs",
    "POST /api/v1/runs/batch",
    "POST /api/v1/runs/multipart",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        remedy: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers
        self.remedy = remedy


def error_style(method: str, route: str, path: str) -> ErrorStyle:
    """``route`` is the normalised template (``/api/v1/...``, ``/api/v2/...``)."""
    if route.startswith("/api/v2/"):
        return "v2"
    if route.startswith(PLATFORM_SERVICE):
        return "abac"
    if f"{method} {route}" in INGEST_ROUTES:
        return "ingest"
    # PATCH /runs/{id} unprefixed is the ingest service; /api/v1/runs/{id} is the platform API.
    return "ingest" if method == "PATCH" and path.startswith("/runs/") else "platform"


def request_style(request: Request) -> ErrorStyle:
    route = request.scope.get("state", {}).get("emu_route", "")
    _, _, template = route.partition(" ")
    return error_style(request.method, template, request.url.path)


def error_body(
    style: ErrorStyle,
    status: int,
    message: str,
    code: str | None = None,
    *,
    instance: str = "",
    remedy: str | None = None,
) -> dict[str, Any]:
    if style == "v2":
        problem: dict[str, Any] = {
            "type": "about:blank",  # RFC 7807: no more semantics than the status itself
            "title": _reason(status),
            "status": status,
            "detail": message,
            "instance": instance,
        }
        if remedy:
            problem["remedy"] = remedy
        return problem
    if style == "ingest":
        return {"error": code or message, "details": message}
    if style == "abac":
        return {"error": message}
    body: dict[str, Any] = {"detail": message}
    if code:
        body["error"] = code
    return body


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _respond(
    request: Request,
    status: int,
    message: str,
    code: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    remedy: str | None = None,
) -> Response:
    body = error_body(
        request_style(request), status, message, code, instance=request.url.path, remedy=remedy
    )
    return JSONResponse(body, status_code=status, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _respond(
        request, exc.status, exc.message, exc.code, headers=exc.headers, remedy=exc.remedy
    )


def _summary(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in errors)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    style = request_style(request)
    if style == "ingest":
        return JSONResponse({"error": "invalid request", "details": _summary(errors)}, 422)
    if style == "v2":  # the spec: 422 for a bad UUID (path, query), 400 for other parameters
        status = 422 if any("uuid" in str(e.get("type")) for e in errors) else 400
        return _respond(request, status, _summary(errors))
    if style == "abac":  # the spec gives these paths 400 "Bad request", no 422
        return _respond(request, 400, _summary(errors))
    return JSONResponse({"detail": errors}, status_code=422)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return _respond(request, exc.status_code, str(exc.detail), headers=exc.headers)


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    return _respond(request, 500, f"emulator internal error: {type(exc).__name__}")


def validation_error(loc: list[str | int], msg: str, typ: str = "value_error") -> ApiError:
    """A 422 raised from handler code, in FastAPI's shape (used via ValidationApiError)."""
    return ValidationApiError([{"loc": loc, "msg": msg, "type": typ}])


class ValidationApiError(ApiError):
    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(422, detail[0]["msg"] if detail else "validation error")
        self.detail = detail


async def validation_api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationApiError)
    style = request_style(request)
    if style == "platform":
        return JSONResponse({"detail": exc.detail}, status_code=422)
    if style == "ingest":
        return JSONResponse({"error": "invalid request", "details": exc.message}, 422)
    if style == "abac":
        return _respond(request, 400, exc.message)
    return _respond(request, 422, exc.message)
