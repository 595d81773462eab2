"""A terminal progress bar for a fan-out flow, fed by the flow's own progress artifact.

The flow runs in a worker thread of this process; the bar polls the Prefect API for the
newest version of the run's progress artifact, so what the terminal shows is what the UI
shows. Nothing but a percentage crosses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tenant_keys.cli.app import console

T = TypeVar("T")
POLL_SECONDS = 0.5


def with_progress(call: Callable[[], T], *, artifact_key: str, label: str) -> T:
    """Run `call` (a flow) while showing its `artifact_key` progress artifact as a bar."""
    started = datetime.now(UTC)
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"flow-{artifact_key}")
    columns = (TextColumn(label), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=100.0)
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if (done := _latest_progress(artifact_key, since=started)) is not None:
                bar.update(task, completed=done)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _latest_progress(key: str, *, since: datetime) -> float | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    try:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                sort=ArtifactSort.UPDATED_DESC,
                limit=1,
            )
    except Exception:  # the bar is a nicety: never let it break the command
        return None
    artifact = found[0] if found else None
    if artifact is None or artifact.created is None or artifact.created < since:
        return None  # an earlier run's bar
    return float(artifact.data) if isinstance(artifact.data, (int, float)) else None
