"""Trace ingest: parse run payloads (JSON, batch, multipart) and store them in projects.

A run lands in the project named by ``session_id`` (must be a project of the key's workspace)
or else ``session_name`` (auto-created in the key's workspace, as LangSmith does), or else the
workspace's ``default`` project. A PATCH for a run not seen yet is kept and applied when the
POST arrives (ingest is eventually consistent). Duplicate POSTs of a run id are ignored in
batch/multipart and answered 409 on ``POST /runs``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .auth import Principal
from .clock import parse_dt
from .errors import ApiError
from .state import Project, Run, Store, Workspace
from .usage import reject_reason

DEFAULT_PROJECT = "default"
RUN_FIELD_PARTS = ("inputs", "outputs", "events", "extra", "error", "serialized")
_IDENTITY = {
    "id",
    "trace_id",
    "dotted_order",
    "parent_run_id",
    "session_id",
    "session_name",
    "name",
    "run_type",
    "start_time",
    "end_time",
}
RUN_TYPES = {"tool", "chain", "llm", "retriever", "embedding", "prompt", "parser"}


@dataclass
class Batch:
    posts: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    attachments: int = 0
    feedback: int = 0


# ------------------------------------------------------------------------------ parsing


def parse_json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, f"invalid JSON body: {exc}") from exc


def _boundary(content_type: str) -> bytes:
    for param in content_type.split(";")[1:]:
        k, _, v = param.strip().partition("=")
        if k.strip().lower() == "boundary" and v:
            return v.strip().strip('"').encode()
    raise ApiError(400, "multipart body without a boundary")


def _part_name(headers: bytes) -> str | None:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() != b"content-disposition":
            continue
        for param in value.decode("latin-1").split(";"):
            k, _, v = param.strip().partition("=")
            if k.strip().lower() == "name":
                return v.strip().strip('"')
    return None


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """Split a multipart/form-data body into (part name, data)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(422, "expected multipart/form-data")
    delim = b"--" + _boundary(content_type)
    chunks = body.split(delim)
    parts: list[tuple[str, bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        headers, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ApiError(422, "malformed multipart part")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        name = _part_name(headers)
        if not name:
            raise ApiError(422, "multipart part without a name")
        parts.append((name, data))
    return parts


def batch_from_multipart(parts: list[tuple[str, bytes]]) -> Batch:
    ops: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    batch = Batch()
    for name, data in parts:
        pieces = name.split(".")
        kind = pieces[0]
        if kind == "attachment":
            batch.attachments += 1
            continue
        if kind == "feedback":
            batch.feedback += 1
            continue
        if kind not in ("post", "patch") or len(pieces) not in (2, 3):
            raise ApiError(422, f"unexpected multipart part name {name!r}")
        op_key = (kind, pieces[1])
        if op_key not in ops:
            ops[op_key] = {}
            order.append(op_key)
        try:
            value = json.loads(data) if data else None
        except ValueError as exc:
            raise ApiError(422, f"part {name!r} is not valid JSON") from exc
        if len(pieces) == 2:
            if not isinstance(value, dict):
                raise ApiError(422, f"part {name!r} must be a JSON object")
            ops[op_key].update(value)
        else:
            if pieces[2] not in RUN_FIELD_PARTS:
                raise ApiError(422, f"unexpected multipart part name {name!r}")
            ops[op_key][pieces[2]] = value
    for kind, run_id in order:
        payload = ops[(kind, run_id)]
        payload.setdefault("id", run_id)
        (batch.posts if kind == "post" else batch.patches).append(payload)
    return batch


def batch_from_json(body: Any) -> Batch:
    if not isinstance(body, dict):
        raise ApiError(422, "body must be an object with 'post' and/or 'patch' arrays")
    batch = Batch()
    for kind, target in (("post", batch.posts), ("patch", batch.patches)):
        items = body.get(kind) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiError(422, f"'{kind}' must be an array of run objects")
        target.extend(items)
    return batch


# ------------------------------------------------------------------------------ normalising


def _uuid(value: Any, name: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError) as exc:
        raise ApiError(422, f"{name} must be a UUID, got {value!r}") from exc


def _dt(value: Any, name: str) -> datetime | None:
    try:
        return parse_dt(value)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, f"{name} must be an ISO-8601 date-time") from exc


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def json_object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def extract_usage(run: Run) -> None:
    """Token/cost numbers: explicit run fields, else usage_metadata, else llm_output."""
    d = run.data
    outputs = json_object(d.get("outputs"))
    metadata = json_object(json_object(d.get("extra")).get("metadata"))
    usage = outputs.get("usage_metadata") or metadata.get("usage_metadata")
    llm_output = json_object(outputs.get("llm_output"))
    token_usage = llm_output.get("token_usage") or outputs.get("token_usage")
    if any(k in d for k in ("prompt_tokens", "completion_tokens", "total_tokens")):
        p, c, t = _int(d.get("prompt_tokens")), _int(d.get("completion_tokens")), None
        t = _int(d.get("total_tokens")) or p + c
    elif isinstance(usage, dict):
        p, c = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        t = _int(usage.get("total_tokens")) or p + c
    elif isinstance(token_usage, dict):
        p, c = _int(token_usage.get("prompt_tokens")), _int(token_usage.get("completion_tokens"))
        t = _int(token_usage.get("total_tokens")) or p + c
    else:
        p = c = t = 0
    run.prompt_tokens, run.completion_tokens, run.total_tokens = p, c, t
    src = d if any(k in d for k in ("prompt_cost", "completion_cost", "total_cost")) else None
    if src is not None:
        run.prompt_cost = _num(src.get("prompt_cost"))
        run.completion_cost = _num(src.get("completion_cost"))
        run.total_cost = _num(src.get("total_cost"))
    elif isinstance(usage, dict) and any(
        k in usage for k in ("input_cost", "output_cost", "total_cost")
    ):
        run.prompt_cost = _num(usage.get("input_cost"))
        run.completion_cost = _num(usage.get("output_cost"))
        run.total_cost = _num(usage.get("total_cost"))


def validate_post(payload: dict[str, Any]) -> dict[str, Any]:
    if "id" not in payload:
        raise ApiError(422, "run id is required")
    payload["id"] = _uuid(payload["id"], "id")
    for name in ("trace_id", "parent_run_id", "session_id"):
        if payload.get(name) is not None:
            payload[name] = _uuid(payload[name], name)
    run_type = payload.get("run_type") or "chain"
    if run_type not in RUN_TYPES:
        raise ApiError(422, f"run_type must be one of {sorted(RUN_TYPES)}")
    payload["run_type"] = run_type
    _dt(payload.get("start_time"), "start_time")
    _dt(payload.get("end_time"), "end_time")
    return payload


def validate_patch(payload: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    rid = run_id or payload.get("id")
    if rid is None:
        raise ApiError(422, "run id is required")
    payload["id"] = _uuid(rid, "id")
    _dt(payload.get("end_time"), "end_time")
    return payload


# ------------------------------------------------------------------------------ applying


class Ingestor:
    """Applies a validated batch for one principal."""

    def __init__(self, store: Store, principal: Principal) -> None:
        self.store = store
        self.principal = principal
        ws = principal.workspace
        assert ws is not None
        self.ws: Workspace = ws

    def _target_project(self, payload: dict[str, Any], create: bool) -> Project | None:
        sid = payload.get("session_id")
        if sid:
            project = self.ws.projects.get(sid)
            if project is None:
                raise ApiError(403, f"session {sid} not found in this workspace")
            return project
        name = payload.get("session_name") or DEFAULT_PROJECT
        pid = self.ws.project_names.get(name)
        if pid is not None:
            return self.ws.projects[pid]
        if not create:
            return None
        return self.store.create_project(self.ws, name)

    def check(self, batch: Batch) -> None:
        """Validation, access and usage-limit checks, before anything is stored."""
        for p in batch.posts:
            validate_post(p)
            self._target_project(p, create=False)
        for p in batch.patches:
            validate_patch(p)
            if p["id"] in self.store.run_index and self.store.find_run(self.ws, p["id"]) is None:
                raise ApiError(403, f"run {p['id']} belongs to another workspace")
        new_roots = [
            p
            for p in batch.posts
            if p.get("parent_run_id") is None and p["id"] not in self.store.run_index
        ]
        if new_roots:
            reason = reject_reason(self.store, self.ws)
            if reason:
                raise ApiError(429, reason, headers={"Retry-After": "60"})

    def apply(self, batch: Batch) -> tuple[int, int]:
        created = 0
        with self.store.lock:
            for p in batch.posts:
                if self.post(p) is not None:
                    created += 1
            for p in batch.patches:
                self.patch(p)
        return created, len(batch.patches)

    def post(self, payload: dict[str, Any]) -> Run | None:
        store = self.store
        run_id = payload["id"]
        if run_id in store.run_index:
            return None
        project = self._target_project(payload, create=True)
        assert project is not None
        now = store.clock.now()
        start = _dt(payload.get("start_time"), "start_time") or now
        parent = payload.get("parent_run_id")
        trace_id = payload.get("trace_id")
        if trace_id is None:
            parent_run = store.find_run(self.ws, parent) if parent else None
            trace_id = parent_run.trace_id if parent_run else run_id
        dotted = payload.get("dotted_order") or f"{start:%Y%m%dT%H%M%S%f}Z{run_id}"
        data = {k: v for k, v in payload.items() if k not in _IDENTITY}
        run = Run(
            id=run_id,
            project_id=project.id,
            trace_id=trace_id,
            dotted_order=dotted,
            parent_run_id=parent,
            name=str(payload.get("name") or "Unnamed"),
            run_type=payload["run_type"],
            start_time=start,
            end_time=_dt(payload.get("end_time"), "end_time"),
            data=data,
            key_id=self.principal.key.id,
            received_at=now,
        )
        pending = store.pending_patches.pop(run_id, None)
        if pending:
            self._merge(run, pending)
        extract_usage(run)
        project.runs[run_id] = run
        project.version += 1
        if project.last_run_start_time is None or start > project.last_run_start_time:
            project.last_run_start_time = start
        store.run_index[run_id] = project.id
        if run.is_root:
            tier = project.trace_tier or "longlived"
            self.ws.traces.append((start, project.id, run.key_id))
            mk = (now.year, now.month, tier)
            self.ws.monthly_traces[mk] = self.ws.monthly_traces.get(mk, 0) + 1
        return run

    def _merge(self, run: Run, payload: dict[str, Any]) -> None:
        if payload.get("end_time") is not None:
            run.end_time = _dt(payload["end_time"], "end_time")
        for k, v in payload.items():
            if k in _IDENTITY:
                continue
            if k == "extra" and isinstance(v, dict) and isinstance(run.data.get("extra"), dict):
                run.data["extra"] = {**run.data["extra"], **v}
            else:
                run.data[k] = v

    def patch(self, payload: dict[str, Any]) -> Run | None:
        store = self.store
        run = store.find_run(self.ws, payload["id"])
        if run is None:
            if payload["id"] in store.run_index:
                raise ApiError(403, "run belongs to another workspace")
            pending = store.pending_patches.setdefault(payload["id"], {})
            pending.update(payload)
            return None
        self._merge(run, payload)
        extract_usage(run)
        project = self.ws.projects[run.project_id]
        project.version += 1
        return run
