"""Run the `rotate-keys` flow over every tenant in this process, as a worker's flow process
would, and write its figures as JSON: wall time, final state, flow run id, and this process's
peak RSS (`ru_maxrss`). Its pacing is its own: settings come from the environment.

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
    from prefect._internal.concurrency.services import QueueService
    from prefect.logging.handlers import APILogHandler

    from flows.rotation import rotate_keys

    imported = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    state = rotate_keys("all", rotation_id=rotation_id, return_state=True)
    wall = time.monotonic() - started
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
