"""Validate emulator responses against LangSmith's full OpenAPI spec (jsonschema, $refs resolved).

The spec is the emulator package's ``openapi.json`` (the public spec, 393 paths, July 2026).
A response to a path the spec does not document fails: the emulator serves no invented
endpoint. Paths are matched in the forms clients use: ``/sessions`` is ``/api/v1/sessions``,
``/runs/batch`` is itself, ``/api/v2/runs/query`` is the spec's ``/v2/runs/query``.

Known defect in the spec, patched before validating: the 202 body of ``POST /runs``,
``/runs/batch`` and ``PATCH /runs/{run_id}`` is declared as ``additionalProperties: allOf[string,
object]``, which no non-empty object can satisfy (a value cannot be both). LangSmith answers
``{"message": "Run created"}`` (langsmith-sdk#1800); the patch reads it as a string map, which is
what the multipart response declares.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from devstack.langsmith_emulator.openapi import SPEC_PATH
from devstack.langsmith_emulator.openapi import spec as raw_spec

__all__ = ["SPEC_PATH", "SpecMismatch", "find_operation", "jsonschema", "validate"]


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
    patched: dict[str, Any] = _patch_defects(raw_spec())
    return patched


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


@cache
def _operations() -> list[tuple[re.Pattern[str], str, str]]:
    ops = [
        (_template_regex(template), method.upper(), template)
        for template, methods in spec()["paths"].items()
        for method in methods
    ]
    # literal segments beat parameters (/workspaces/current/stats before /workspaces/{id})
    ops.sort(key=lambda op: op[2].count("{"))
    return ops


def _candidates(path: str) -> list[str]:
    if path.startswith("/api/v2/"):
        return [path[len("/api") :]]
    if path.startswith("/api/v1"):
        return [path]
    return [path, "/api/v1" + path]


def find_operation(method: str, path: str) -> str | None:
    """The spec template serving ``method path`` (in any of the forms above), or None."""
    path = path.split("?", 1)[0]
    for candidate in _candidates(path):
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
    schema: dict[str, Any] | None = (media or {}).get("schema")
    return schema


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
    """Raise SpecMismatch if the path is not in the spec or a spec'd response does not match.

    Returns the template validated against, or None when the spec gives no schema for that
    status (e.g. the 401/403/404/409 it leaves undocumented on management paths).
    """
    template = find_operation(method, path)
    if template is None:
        raise SpecMismatch(f"{method} {path} is not an operation of the LangSmith spec")
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
