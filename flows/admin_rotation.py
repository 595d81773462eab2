"""Rotation of the admin key: the Prefect shell of `tenant_keys.admin_rotation`.

The core runs the steps under the admin key's lock (`tasks.admin_lock`: every run that holds
tenant locks shares it, this flow takes it whole). The grace window between promoting the new
key and deleting the old one is waited out here, outside the lock, so fan-outs go on meanwhile
(with the new key once their cache lapses, with the old one until then). Deployed on its own
schedule (prefect.yaml, `admin-key-rotation`); `tenant-keys rotate-admin` runs it by hand.
"""

from __future__ import annotations

import time

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed

from tasks.admin_lock import admin_lock
from tasks.events import emit
from tasks.runs import scheduled_rotation_id
from tenant_keys.admin_rotation import (
    AdminRotationResult,
    admin_store,
    retire_admin,
    rotate_admin,
)
from tenant_keys.models import validate_rotation_id
from tenant_keys.services import get_services


@task(name="rotate-admin-key", cache_policy=NO_CACHE, persist_result=False)
def rotate_step(rotation_id: str, retire_now: bool) -> AdminRotationResult:
    result = rotate_admin(get_services(), rotation_id, retire_now=retire_now, lock=admin_lock())
    _log(result)
    emit(result.events)
    return result


@task(name="retire-old-admin-key", cache_policy=NO_CACHE, persist_result=False)
def retire_step(rotation_id: str) -> AdminRotationResult:
    result = retire_admin(get_services(), rotation_id, lock=admin_lock())
    _log(result)
    emit(result.events)
    return result


@flow(name="rotate-admin-key", log_prints=False)
def rotate_admin_key(rotation_id: str | None = None) -> State:
    """Rotate the LangSmith admin key kept in TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET."""
    services = get_services()
    admin_store(services)  # refused in one line when the key comes from the environment
    rotation_id = validate_rotation_id(rotation_id) if rotation_id else scheduled_rotation_id()
    grace = services.settings.admin_grace_seconds
    result = rotate_step(rotation_id, grace == 0)
    if result.outcome == "waiting":
        # A previous rotation's old key waits out its window (a rerun soon after a crash):
        # retire it when the window is over, then rotate (an already-done rotation is a no-op).
        time.sleep(result.waiting_seconds)
        previous = retire_step(rotation_id)
        result = previous if previous.failed else rotate_step(rotation_id, grace == 0)
    if result.outcome == "rotated" and grace > 0:
        get_run_logger().info(
            "admin key %s promoted; the old key %s is deleted after the %.0f s grace window",
            result.new_key_id,
            result.old_key_id,
            grace,
        )
        time.sleep(grace)
        retired = retire_step(rotation_id)
        result = result.model_copy(
            update={"outcome": retired.outcome, "error": retired.error}
            if retired.failed or retired.outcome == "waiting"
            else {"old_key_id": retired.old_key_id or result.old_key_id}
        )
    create_markdown_artifact(
        key="admin-key-rotation",
        markdown=_markdown(result),
        description=f"Admin key rotation {rotation_id}: {result.outcome}",
    )
    summary = f"admin key rotation {rotation_id}: {result.outcome}"
    if result.new_key_id:
        summary += f", new key {result.new_key_id}"
    if result.failed:
        return Failed(message=f"{summary}: {result.error}")
    return Completed(message=summary if not result.error else f"{summary}: {result.error}")


def _log(result: AdminRotationResult) -> None:
    log = get_run_logger().error if result.failed else get_run_logger().info
    log(
        "admin key rotation=%s outcome=%s old_key_id=%s new_key_id=%s%s",
        result.rotation_id,
        result.outcome,
        result.old_key_id,
        result.new_key_id,
        f" error={result.error}" if result.error else "",
    )


def _markdown(result: AdminRotationResult) -> str:
    rows = [
        ("rotation", result.rotation_id),
        ("outcome", f"**{result.outcome}**"),
        ("new admin key id", result.new_key_id or "-"),
        ("old admin key id", result.old_key_id or "-"),
        ("error", result.error or "-"),
    ]
    lines = ["# Admin key rotation", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value.replace('|', '/')} |" for name, value in rows]
    return "\n".join(lines) + "\n"
