"""Fast JSON responses (handlers build plain dicts; no response-model re-validation)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

try:  # orjson ships with the langsmith SDK; fall back to the stdlib if absent.
    import orjson

    def _dumps(data: Any) -> bytes:
        return orjson.dumps(data)

except ImportError:  # pragma: no cover
    import json

    def _dumps(data: Any) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()


class FastJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _dumps(content)


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return FastJSONResponse(data, status_code=status, headers=headers)
