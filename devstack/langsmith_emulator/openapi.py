"""LangSmith's full public OpenAPI spec, shipped with the emulator as ``openapi.json``.

It is the contract: every route the emulator serves is one of its paths (a test checks this),
and a few enums (the audit-log operations) are read from it rather than copied.

The spec writes management paths as ``/api/v1/...``, ingest paths unprefixed (``/runs/batch``)
and the SmithDB API as ``/v2/...``; the SDK calls the latter under ``/api`` (``/api/v2/...``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).with_name("openapi.json")


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


@cache
def enum_values(schema_name: str) -> frozenset[str]:
    """The values of an enum schema in ``components.schemas``."""
    return frozenset(spec()["components"]["schemas"][schema_name]["enum"])


def spec_path(path: str) -> str:
    """The spec's form of a served path or template: ``/api/v2/x`` is the spec's ``/v2/x``."""
    return path[len("/api") :] if path.startswith("/api/v2/") else path


def has_operation(method: str, template: str) -> bool:
    """Whether the spec documents ``method template`` (template in the spec's own form)."""
    return method.lower() in spec()["paths"].get(spec_path(template), {})
