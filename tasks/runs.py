"""What a flow asks of its Prefect run: its rotation id, its task runner."""

from __future__ import annotations

from typing import Any, cast

from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tenant_keys.models import new_rotation_id


def scheduled_rotation_id() -> str:
    """A scheduled run's rotation id comes from its scheduled time, so a rerun of that run
    resumes the same rotation; any other run gets a fresh one."""
    scheduled = flow_run.scheduled_start_time
    return new_rotation_id(scheduled) if flow_run.id and scheduled else new_rotation_id()


def threads(max_workers: int) -> TaskRunner[PrefectFuture[Any]]:
    """A flow's thread-pool task runner, typed as `@flow` expects (Prefect 3.9 annotates the
    pool's runner with a narrower future type than the decorator's invariant parameter)."""
    return cast(TaskRunner[PrefectFuture[Any]], ThreadPoolTaskRunner(max_workers=max_workers))
