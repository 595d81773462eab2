"""Validate emulator responses against the vendored OpenAPI subset (jsonschema, $refs resolved).

Known defect in the subset, patched before validating: the 202 body of ``POST /runs``,
``/runs/batch`` and ``PATCH /runs/{run_id}`` is declared as ``additionalProperties: allOf[string,
object]``, which no non-empty object can satisfy (a value cannot be both). LangSmith answers
``{"message": "Run created"}`` (langsmith-sdk#1800); the patch reads it as a string map, which is
what the multipart response declares.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

import devstack.langsmith_emulator as emulator_pkg

SPEC_PATH = Path(emulator_pkg.__file__).parent / "openapi.subset.json"


def _patch_defects(node: Any) -> Any:
    if isinstance(node, dict):
        all_of = node.get("allOf")
        if (
            isinstance(all_of, list)
            and len(all_of) == 2
            and all_of[0] == {"type": "string"}
            and all_of[1].get("type") == "object"
        ):
            return {"type": "string"}
        return {k: _patch_defects(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_patch_defects(v) for v in node]
    return node


@cache
def spec() -> dict[str, Any]:
    return _patch_defects(json.loads(SPEC_PATH.read_text()))


@cache
def _operations() -> list[tuple[re.Pattern[str], str, str]]:
    ops = []
    for template, methods in spec()["paths"].items():
        regex = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        for method in methods:
            ops.append((regex, method.upper(), template))
    # literal segments beat parameters (/workspaces/current/stats before /workspaces/{id})
    ops.sort(key=lambda op: op[2].count("{"))
    return ops


def find_operation(method: str, path: str) -> str | None:
    """The spec template serving ``method path`` (either prefix form), or None."""
    path = path.split("?", 1)[0]
    candidates = [path] if path.startswith("/api/v1") else [path, "/api/v1" + path]
    for candidate in candidates:
        for regex, op_method, template in _operations():
            if op_method == method.upper() and regex.match(candidate):
                return template
    return None


def response_schema(method: str, template: str, status: int) -> dict[str, Any] | None:
    op = spec()["paths"][template][method.lower()]
    response = op.get("responses", {}).get(str(status))
    if response is None:
        return None
    content = response.get("content") or {}
    media = content.get("application/json") or next(iter(content.values()), None)
    return (media or {}).get("schema")


@cache
def _validator(method: str, template: str, status: int) -> Draft202012Validator | None:
    schema = response_schema(method, template, status)
    if schema is None or schema == {}:
        return None
    root = {**schema, "components": spec()["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


class SpecMismatch(AssertionError):
    pass


def validate(method: str, path: str, status: int, body: Any) -> str | None:
    """Raise SpecMismatch if a spec'd response does not match its schema.

    Returns the template validated against, or None when the path/status has no schema
    (e.g. the 401/403/404/409 the spec leaves undocumented).
    """
    template = find_operation(method, path)
    if template is None:
        return None
    validator = _validator(method.upper(), template, status)
    if validator is None:
        return None
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        raise SpecMismatch(
            f"{method} {path} -> {status} does not match {template}: "
            f"{first.message} at {list(first.absolute_path)}"
        )
    return template


__all__ = ["SpecMismatch", "find_operation", "jsonschema", "validate"]
