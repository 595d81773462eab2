"""Run the `rotate-keys` flow over every tenant in this process as a worker's flow process
would: the run is made first, as a schedule makes it, then loaded and run by its id, as the
engine's entrypoint does. Writes its figures as JSON: wall time (load and run), final state,
flow run id, and this process's peak RSS (`ru_maxrss`). Its pacing is its own: settings come
from the environment.

    python benchmarks/flow_process.py ROTATION_ID OUT.json
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Every tenant's log line still goes to the Prefect server, as in a real run; only the
# terminal is spared them (set before prefect is imported: it reads this then).
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


def main(rotation_id: str, out: Path) -> None:
    from prefect import get_client
    from prefect._internal.concurrency.services import QueueService
    from prefect.flow_engine import load_flow_run, run_flow
    from prefect.logging.handlers import APILogHandler
    from prefect.states import State

    from flows.rotation import rotate_keys

    # The run is made first, as a deployment's schedule makes it before a worker starts it.
    with get_client(sync_client=True) as client:
        made = client.create_flow_run(
            rotate_keys, parameters={"tenants": "all", "rotation_id": rotation_id}
        )
    imported = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    # What the engine's entrypoint in a worker's flow process does with the run's id.
    state = run_flow(rotate_keys, flow_run=load_flow_run(made.id), return_type="state")
    wall = time.monotonic() - started
    assert isinstance(state, State)
    flow_run_id = state.state_details.flow_run_id if state.state_details else None
    APILogHandler().flush()  # every tenant's line reaches the server before the process ends
    QueueService.drain_all(timeout=60)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "rotation_id": rotation_id,
        "wall": wall,
        "state": state.type.value,
        "message": state.message,
        "flow_run_id": str(flow_run_id) if flow_run_id else None,
        "started_unix": time.time() - (time.monotonic() - started),
        "maxrss_kb": usage.ru_maxrss,
        # CPU seconds of the run itself, and of the process's start-up (imports) before it.
        "cpu": usage.ru_utime + usage.ru_stime - imported.ru_utime - imported.ru_stime,
        "startup_cpu": imported.ru_utime + imported.ru_stime,
        "drained": time.monotonic() - started - wall,
    }
    out.write_text(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
