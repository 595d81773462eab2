"""What workspace isolation costs: LangSmith calls and seconds per tenant, in both modes.

Starts the local stack (in-process LangSmith emulator and moto, a Prefect server), uses the
emulator's org admin key as workspace mode requires, then prints, per mode: onboarding of N
tenants (wall time, LangSmith calls per tenant by route), a rotation of them, and the
migration of the project-mode tenants to workspace mode (seconds each, calls each).

    .venv/bin/python benchmarks/isolation_modes.py --tenants 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.stack import LocalStack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp)) as stack:
        os.environ.update(stack.env())
        os.environ["TENANT_KEYS_LANGSMITH_ADMIN_KEY"] = stack.langsmith.org_admin_key
        from flows.migrate import migrate_tenant
        from flows.onboarding import onboard_tenants
        from flows.rotation import rotate_keys

        control = stack.langsmith.control
        run = uuid.uuid4().hex[:6]

        def measured(label: str, n: int, action: Callable[[], object]) -> None:
            control.reset_request_counts()
            started = time.monotonic()
            action()
            seconds = time.monotonic() - started
            counts = control.request_counts()
            routes = ", ".join(
                f"{route} {count / n:.1f}" for route, count in sorted(counts["by_route"].items())
            )
            print(f"{label}: {seconds:.2f} s wall, {counts['total'] / n:.1f} calls/tenant")
            print(f"    per tenant: {routes}")

        tenants = {
            mode: [f"b-{mode[0]}-{run}-{i}" for i in range(args.tenants)]
            for mode in ("project", "workspace")
        }
        for mode, ids in tenants.items():
            measured(
                f"onboard {len(ids)} ({mode})", len(ids), partial(onboard_tenants, ids, None, mode)
            )
            measured(
                f"rotate {len(ids)} ({mode})",
                len(ids),
                partial(rotate_keys, ids, rotation_id=f"bench-{run}"),
            )

        seconds = []
        control.reset_request_counts()
        for tenant_id in tenants["project"]:
            seconds.append(migrate_tenant(tenant_id, "workspace").seconds)
        calls = control.request_counts()["total"] / len(seconds)
        print(
            f"migrate {len(seconds)} project -> workspace, one at a time: median "
            f"{statistics.median(seconds):.3f} s, max {max(seconds):.3f} s inside the task "
            f"(under the tenant's lock), {calls:.1f} LangSmith calls each"
        )
        from prefect._internal.concurrency.services import QueueService

        QueueService.drain_all(timeout=10)  # logs and events, while the server still listens


if __name__ == "__main__":
    main()
