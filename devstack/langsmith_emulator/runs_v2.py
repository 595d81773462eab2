"""The SmithDB run reads (``/v2``): ``query.RunResponse`` objects built from ``selects``, and the
windowed, cursor-paged runs query behind ``client.runs.query()``.

A run object carries only the selected fields (``ID`` when nothing is selected). A field with no
value is left out rather than sent as null: the spec declares none of them nullable (its
``end_time`` description says "null" for a pending run; the schema says string).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from .auth import Principal
from .clock import as_aware, iso, parse_dt
from .errors import ApiError
from .models import QueryRunsBody
from .openapi import enum_values
from .routes_runs import as_object, parent_ids
from .state import Project, Run, Store

DEFAULT_WINDOW = timedelta(days=1)  # min_start_time "defaults to 1 day ago"
PREVIEW_CHARS = 200
NOT_EVALUATED = ("filter", "trace_filter", "tree_filter", "ai_query", "ai_search", "sem_filter")


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text[:PREVIEW_CHARS]


def _metadata(run: Run) -> dict[str, Any] | None:
    extra = run.data.get("extra")
    meta = extra.get("metadata") if isinstance(extra, dict) else None
    return meta if isinstance(meta, dict) else None


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value is not None else None
    except ValueError:
        return None


def _events(run: Run) -> list[dict[str, Any]] | None:
    """``query.RunEvent`` {name, time, kwargs}: events without a parseable time are dropped."""
    raw = run.data.get("events")
    if not isinstance(raw, list):
        return None
    out = []
    for event in raw:
        if not isinstance(event, dict):
            continue
        try:
            at = parse_dt(event.get("time"))
        except ValueError:
            continue
        item: dict[str, Any] = {"name": str(event.get("name", ""))}
        if at is not None:
            item["time"] = iso(at)
        if isinstance(event.get("kwargs"), dict):
            item["kwargs"] = event["kwargs"]
        out.append(item)
    return out


def _first_token_time(run: Run) -> str | None:
    for event in _events(run) or []:
        if event["name"] == "new_token" and "time" in event:
            return str(event["time"])
    return None


def _thread_id(run: Run) -> str | None:
    """LangSmith groups runs into threads by one of these metadata keys."""
    meta = _metadata(run) or {}
    for key in ("thread_id", "session_id", "conversation_id"):
        if meta.get(key) is not None:
            return _uuid_or_none(meta[key])
    return None


def _latency(run: Run) -> float | None:
    return None if run.end_time is None else (run.end_time - run.start_time).total_seconds()


def _run_type(run: Run) -> str | None:
    upper = run.run_type.upper()
    return upper if upper in enum_values("query.RunType") else None


def _reference_dataset(run: Run, project: Project) -> str | None:
    return project.reference_dataset_id if run.data.get("reference_example_id") else None


def _nothing(run: Run, project: Project) -> None:
    """A field the emulator does not record (price models, token details, sharing, ...)."""
    return None


Getter = Callable[[Run, Project], Any]

# query.RunSelectField -> (query.RunResponse property, value). A test checks that this covers
# the spec's enum exactly.
FIELDS: dict[str, tuple[str, Getter]] = {
    "ID": ("id", lambda r, p: r.id),
    "NAME": ("name", lambda r, p: r.name),
    "RUN_TYPE": ("run_type", lambda r, p: _run_type(r)),
    "STATUS": ("status", lambda r, p: r.status.upper()),
    "START_TIME": ("start_time", lambda r, p: iso(r.start_time)),
    "END_TIME": ("end_time", lambda r, p: iso(r.end_time)),
    "LATENCY_SECONDS": ("latency_seconds", lambda r, p: _latency(r)),
    "FIRST_TOKEN_TIME": ("first_token_time", lambda r, p: _first_token_time(r)),
    "ERROR": ("error", lambda r, p: r.error),
    "ERROR_PREVIEW": ("error_preview", lambda r, p: _preview(r.error)),
    "EXTRA": ("extra", lambda r, p: as_object(r.data.get("extra"), "extra")),
    "METADATA": ("metadata", lambda r, p: _metadata(r)),
    "EVENTS": ("events", lambda r, p: _events(r)),
    "INPUTS": ("inputs", lambda r, p: as_object(r.data.get("inputs"), "input") or {}),
    "INPUTS_PREVIEW": ("inputs_preview", lambda r, p: _preview(r.data.get("inputs"))),
    "OUTPUTS": ("outputs", lambda r, p: as_object(r.data.get("outputs"), "output")),
    "OUTPUTS_PREVIEW": ("outputs_preview", lambda r, p: _preview(r.data.get("outputs"))),
    "MANIFEST": ("manifest", lambda r, p: as_object(r.data.get("serialized"), "serialized")),
    "PARENT_RUN_IDS": ("parent_run_ids", lambda r, p: parent_ids(r.dotted_order)),
    "PROJECT_ID": ("project_id", lambda r, p: r.project_id),
    "TRACE_ID": ("trace_id", lambda r, p: r.trace_id),
    "THREAD_ID": ("thread_id", lambda r, p: _thread_id(r)),
    "DOTTED_ORDER": ("dotted_order", lambda r, p: r.dotted_order),
    "IS_ROOT": ("is_root", lambda r, p: r.is_root),
    "REFERENCE_EXAMPLE_ID": (
        "reference_example_id",
        lambda r, p: _uuid_or_none(r.data.get("reference_example_id")),
    ),
    "REFERENCE_DATASET_ID": ("reference_dataset_id", _reference_dataset),
    "TOTAL_TOKENS": ("total_tokens", lambda r, p: r.total_tokens),
    "PROMPT_TOKENS": ("prompt_tokens", lambda r, p: r.prompt_tokens),
    "COMPLETION_TOKENS": ("completion_tokens", lambda r, p: r.completion_tokens),
    "TOTAL_COST": ("total_cost", lambda r, p: r.total_cost),
    "PROMPT_COST": ("prompt_cost", lambda r, p: r.prompt_cost),
    "COMPLETION_COST": ("completion_cost", lambda r, p: r.completion_cost),
    "PROMPT_TOKEN_DETAILS": ("prompt_token_details", _nothing),
    "COMPLETION_TOKEN_DETAILS": ("completion_token_details", _nothing),
    "PROMPT_COST_DETAILS": ("prompt_cost_details", _nothing),
    "COMPLETION_COST_DETAILS": ("completion_cost_details", _nothing),
    "PRICE_MODEL_ID": ("price_model_id", _nothing),
    "TAGS": ("tags", lambda r, p: [str(t) for t in r.data.get("tags") or []]),
    "APP_PATH": ("app_path", _nothing),
    "ATTACHMENTS": ("attachments", lambda r, p: {}),  # attachment contents are not stored
    "THREAD_EVALUATION_TIME": ("thread_evaluation_time", _nothing),
    "IS_IN_DATASET": ("is_in_dataset", lambda r, p: False),
    "SHARE_URL": ("share_url", _nothing),  # no run is ever shared
    "FEEDBACK_STATS": ("feedback_stats", lambda r, p: {}),  # feedback is not stored
}


def check_selects(selects: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(selects))
    unknown = [s for s in chosen if s not in FIELDS]
    if unknown:
        raise ApiError(
            400,
            f"unknown selects: {unknown}",
            remedy="Use RunSelectField names in upper case, e.g. ID, NAME, START_TIME.",
        )
    return chosen


def run_response(run: Run, project: Project, selects: list[str]) -> dict[str, Any]:
    out = {}
    for select in selects:
        name, getter = FIELDS[select]
        value = getter(run, project)
        if value is not None:
            out[name] = value
    return out


# ------------------------------------------------------------------------------ query


def _encode_cursor(run: Run) -> str:
    raw = json.dumps({"last_start_time": iso(run.start_time), "last_id": run.id})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        at = parse_dt(data["last_start_time"])
        if at is None:
            raise ValueError("no start time")
        return at, str(data["last_id"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "invalid cursor", remedy="Pass next_cursor back unmodified.") from None


def _after_cursor(key: tuple[datetime, str], last: tuple[datetime, str], desc: bool) -> bool:
    """Whether a run comes after the cursor's run in the query's order."""
    return key < last if desc else key > last


def _projects(principal: Principal, body: QueryRunsBody) -> list[Project]:
    """The projects to read runs of: each named one must be readable (403 otherwise); a
    dataset's are kept to the readable ones (or a 403, auth.scope)."""
    ws = principal.workspace
    assert ws is not None
    if bool(body.project_ids) == (body.reference_dataset_id is not None):
        raise ApiError(
            400,
            "set exactly one of project_ids and reference_dataset_id",
            remedy="Pass project_ids (tracing project UUIDs) or reference_dataset_id, not both.",
        )
    if body.reference_dataset_id is not None:
        dataset = str(body.reference_dataset_id)
        linked = [p for p in ws.projects.values() if p.reference_dataset_id == dataset]
        return principal.scope("runs:read", linked)
    projects = []
    for pid in dict.fromkeys(str(p) for p in body.project_ids or []):
        project = ws.projects.get(pid)
        if project is None:  # another workspace's project is as unknown as a made-up id
            raise ApiError(404, f"session {pid} not found")
        principal.check("runs:read", project)
        projects.append(project)
    return projects


def _window(
    store: Store, body: QueryRunsBody, projects: list[Project]
) -> tuple[datetime, datetime]:
    now = store.clock.now()
    end = as_aware(body.max_start_time) or now
    start = as_aware(body.min_start_time)
    if start is None and body.reference_dataset_id is not None and projects:
        start = min(p.start_time for p in projects)  # "derived from the earliest session"
    start = start or now - DEFAULT_WINDOW
    if start > end:
        raise ApiError(400, "min_start_time is after max_start_time")
    return start, end


def _matches(run: Run, body: QueryRunsBody, start: datetime, end: datetime) -> bool:
    if not start <= run.start_time <= end:
        return False
    if body.is_root is not None and run.is_root != body.is_root:
        return False
    if body.has_error is not None and (run.error is not None) != body.has_error:
        return False
    if body.trace_id is not None and run.trace_id != str(body.trace_id):
        return False
    if body.run_type is not None and run.run_type.upper() != body.run_type:
        return False
    if body.reference_examples:
        refs = {str(r) for r in body.reference_examples}
        if run.data.get("reference_example_id") not in refs:
            return False
    return True


def query_runs(principal: Principal, body: QueryRunsBody) -> dict[str, Any]:
    """``query.QueryRunsResponseBody`` {items, next_cursor?, has_more}. Call under store.lock."""
    for name in NOT_EVALUATED:
        if getattr(body, name):
            raise ApiError(
                400,
                f"'{name}' is not supported by the emulator",
                remedy="Filter with is_root, has_error, run_type, ids, trace_id instead.",
            )
    if body.include_subtree_usage:
        raise ApiError(400, "'include_subtree_usage' is not supported by the emulator")
    selects = check_selects(body.selects or ["ID"])
    projects = _projects(principal, body)
    start, end = _window(principal.store, body, projects)
    ids = {str(i) for i in body.ids} if body.ids else None
    runs = [
        run
        for project in projects
        for run in (
            [project.runs[i] for i in ids if i in project.runs] if ids else project.runs.values()
        )
        if _matches(run, body, start, end)
    ]
    desc = body.sort_order == "DESC"
    runs.sort(key=lambda r: (r.start_time, r.id), reverse=desc)
    if body.cursor:
        last = _decode_cursor(body.cursor)
        runs = [r for r in runs if _after_cursor((r.start_time, r.id), last, desc)]
    page, has_more = runs[: body.page_size], len(runs) > body.page_size
    by_id = {p.id: p for p in projects}
    out: dict[str, Any] = {
        "items": [run_response(r, by_id[r.project_id], selects) for r in page],
        "has_more": has_more,
    }
    if has_more:
        out["next_cursor"] = _encode_cursor(page[-1])
    return out
