"""Error responses in the shapes LangSmith uses.

Management paths (FastAPI backend) answer ``{"detail": ...}``; the trace-ingest paths (the Go
ingest service: ``/runs``, ``/runs/batch``, ``/runs/multipart``, ``PATCH /runs/{id}``) answer
``runs.ErrorResponse`` ``{"error": ..., "details": ...}``. A machine-readable code, when there is
one (``org_scoped_key_requires_workspace``), is always put in ``error``, which is where the SDK
looks for it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers


def is_ingest_request(request: Request) -> bool:
    route = request.scope.get("state", {}).get("emu_route", "")
    if route in INGEST_ROUTES:
        return True
    # PATCH /runs/{id} unprefixed is the ingest service; /api/v1/runs/{id} is the platform API.
    return request.method == "PATCH" and request.url.path.startswith("/runs/")


def error_body(ingest: bool, message: str, code: str | None = None) -> dict[str, Any]:
    if ingest:
        return {"error": code or message, "details": message}
    body: dict[str, Any] = {"detail": message}
    if code:
        body["error"] = code
    return body


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(is_ingest_request(request), exc.message, exc.code),
        status_code=exc.status,
        headers=exc.headers,
    )


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    if is_ingest_request(request):
        msg = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in errors)
        return JSONResponse({"error": "invalid request", "details": msg}, status_code=422)
    return JSONResponse({"detail": errors}, status_code=422)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    body = error_body(is_ingest_request(request), str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        error_body(is_ingest_request(request), f"emulator internal error: {type(exc).__name__}"),
        status_code=500,
    )


def validation_error(loc: list[str | int], msg: str, typ: str = "value_error") -> ApiError:
    """A 422 raised from handler code, in FastAPI's shape (used via ValidationApiError)."""
    return ValidationApiError([{"loc": loc, "msg": msg, "type": typ}])


class ValidationApiError(ApiError):
    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(422, detail[0]["msg"] if detail else "validation error")
        self.detail = detail


async def validation_api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationApiError)
    if is_ingest_request(request):
        return JSONResponse({"error": "invalid request", "details": exc.message}, status_code=422)
    return JSONResponse({"detail": exc.detail}, status_code=422)
