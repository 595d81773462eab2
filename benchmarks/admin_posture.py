"""Admin key and posture benchmark: what a rotation of the admin key costs a running weekly
rotation, and what the posture report costs.

Starts the local stack (emulator and moto in processes of their own, a Prefect server), seeds
N tenants, and runs through Prefect:

1. a weekly rotation of every tenant, alone (the baseline);
2. the same with `rotate-admin` started as soon as the fan-out's first keys are minted: the
   fan-out's extra wall time is the pause the admin rotation's lock imposed on it;
3. the posture report of the N tenants (the core, no Prefect), with the calls it made.

    .venv/bin/python benchmarks/admin_posture.py --tenants 320 --latency-ms 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.seeding import seed
from devstack.stack import LocalStack


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=320)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Path(tmp), separate_processes=True) as stack,
    ):
        os.environ.update(stack.env())
        os.environ["TENANT_KEYS_ADMIN_GRACE_SECONDS"] = "0"
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

        print(f"seeding {args.tenants} tenants ...", flush=True)
        tenants = seed(args.tenants)
        stack.langsmith.control.configure(latency_ms=args.latency_ms)

        from flows.admin_rotation import rotate_admin_key
        from flows.rotation import rotate_keys

        lock_times = _time_the_admin_lock()
        rotate_keys("all", rotation_id="r-warm-up")  # the first run pays for imports and caches
        started = time.monotonic()
        alone = rotate_keys("all", rotation_id="r-alone", return_state=True)
        baseline = time.monotonic() - started
        print(
            f"\n== weekly rotation of {len(tenants)} tenants, latency {args.latency_ms:.0f} ms =="
        )
        print(f"  alone: {baseline:.1f} s ({alone.message})")

        outcome: dict[str, Any] = {}

        def fan_out() -> None:
            began = time.monotonic()
            outcome["state"] = rotate_keys("all", rotation_id="r-spanned", return_state=True)
            outcome["wall"] = time.monotonic() - began

        worker = threading.Thread(target=fan_out)
        worker.start()
        while not _minted(stack, "r-spanned"):
            time.sleep(0.05)
        began = time.monotonic()
        admin = rotate_admin_key("ra-bench", return_state=True)
        admin_wall = time.monotonic() - began
        worker.join()
        print(
            f"  with rotate-admin during it: {outcome['wall']:.1f} s ({outcome['state'].message})"
        )
        print(f"  fan-out's extra wall time: {outcome['wall'] - baseline:+.1f} s")
        print(f"  rotate-admin, from its start to its end: {admin_wall:.1f} s ({admin.message})")
        for waited, held in lock_times:
            print(
                f"  admin key lock: waited {waited:.2f} s for the batches in flight, held {held:.2f} s"
            )

        report(stack, len(tenants))


def _time_the_admin_lock() -> list[tuple[float, float]]:
    """(wait, hold) of every exclusive hold of the admin key's lock, recorded as they happen."""
    from contextlib import contextmanager

    from tasks.admin_lock import PrefectAdminLock

    times: list[tuple[float, float]] = []
    exclusive = PrefectAdminLock.exclusive

    @contextmanager
    def timed(self: PrefectAdminLock) -> Any:
        asked = time.monotonic()
        with exclusive(self):
            got = time.monotonic()
            try:
                yield
            finally:
                times.append((got - asked, time.monotonic() - got))

    PrefectAdminLock.exclusive = timed  # type: ignore[method-assign]
    return times


def _minted(stack: LocalStack, rotation_id: str) -> bool:
    return any(
        k["description"].endswith(f"rotation={rotation_id}")
        for k in stack.langsmith.control.keys()  # noqa: SIM118 - the emulator's dump, a list
    )


def report(stack: LocalStack, tenants: int) -> None:
    from tenant_keys.posture import build_report
    from tenant_keys.services import get_services

    services = get_services()
    sm_calls: Counter[str] = Counter()
    for client in (services.store._client, services.admin_secret._client):  # type: ignore[union-attr]
        client.meta.events.register(
            "before-call.secrets-manager", lambda model, **_: sm_calls.update([model.name])
        )
    stack.langsmith.control.reset_request_counts()
    started = time.monotonic()
    found = build_report(services, incidents=[], incident_source="none")
    wall = time.monotonic() - started
    counts = stack.langsmith.control.request_counts()
    print(f"\n== posture report of {tenants} tenants ==")
    print(f"  wall time: {wall:.1f} s; {found.summary()}")
    print(f"  LangSmith calls: {counts['total']}; by route:")
    for route, n in sorted(counts["by_route"].items()):
        print(f"    {route}: {n}")
    print(f"  Secrets Manager calls: {sum(sm_calls.values())}; by operation:")
    for operation, n in sorted(sm_calls.items()):
        print(f"    {operation}: {n}")
    print(f"  audit log: {found.audit.model_dump_json()}")


if __name__ == "__main__":
    main()
