"""What each isolation mode costs: LangSmith calls and seconds per tenant, in the three modes.

Starts the local stack (in-process LangSmith emulator and moto, a Prefect server), uses the
emulator's org admin key as workspace and tagged modes require, then prints, per mode:
onboarding of N tenants (wall time, LangSmith calls per tenant by route, split into the admin
key's calls, which LangSmith's per-key limit paces, and the tenant keys' own), a rotation of
them, what 1,000 tenants would cost at the admin key's limit, and the migration of the
project-mode tenants to workspace mode and to tagged mode (seconds each, calls each).

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

MODES = ("project", "workspace", "tagged")
AT_SCALE = 1000


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
        from tenant_keys.models import parse_key_description
        from tenant_keys.services import get_services

        control = stack.langsmith.control
        settings = get_services().settings
        # The admin key's budget as a fan-out paces itself: the limit times the fan-out share.
        admin_per_second = settings.langsmith_rate_limit.per_second * settings.fanout_rate_share
        run = uuid.uuid4().hex[:6]

        def tenant_key_ids() -> set[str]:
            return {
                k["id"]
                for k in control.keys()  # noqa: SIM118 - the emulator's key dump, not a dict
                if parse_key_description(k.get("description") or "")
            }

        def measured(label: str, n: int, action: Callable[[], object]) -> float:
            """Prints the figures; returns the admin key's calls per tenant."""
            control.reset_request_counts()
            started = time.monotonic()
            action()
            seconds = time.monotonic() - started
            counts = control.request_counts()
            own = tenant_key_ids()
            by_tenants = sum(n for key, n in counts["by_key"].items() if key in own)
            admin = (counts["total"] - by_tenants) / n
            routes = ", ".join(
                f"{route} {count / n:.1f}" for route, count in sorted(counts["by_route"].items())
            )
            print(
                f"{label}: {seconds:.2f} s wall, {counts['total'] / n:.1f} calls/tenant "
                f"({admin:.1f} with the admin key, {by_tenants / n:.1f} with the tenant's own)"
            )
            print(f"    per tenant: {routes}")
            return admin

        tenants = {mode: [f"b-{mode[0]}-{run}-{i}" for i in range(args.tenants)] for mode in MODES}
        scale: dict[str, tuple[float, float]] = {}
        for mode, ids in tenants.items():
            onboarding = measured(
                f"onboard {len(ids)} ({mode})", len(ids), partial(onboard_tenants, ids, None, mode)
            )
            rotation = measured(
                f"rotate {len(ids)} ({mode})",
                len(ids),
                partial(rotate_keys, ids, rotation_id=f"bench-{run}"),
            )
            scale[mode] = (onboarding, rotation)
        for mode, (onboarding, rotation) in scale.items():
            print(
                f"{AT_SCALE} tenants ({mode}): {onboarding * AT_SCALE:,.0f} admin-key calls to "
                f"onboard, {rotation * AT_SCALE:,.0f} to rotate; at {admin_per_second:.0f} "
                f"calls/s at least {onboarding * AT_SCALE / admin_per_second:.0f} s and "
                f"{rotation * AT_SCALE / admin_per_second:.0f} s"
            )

        half = len(tenants["project"]) // 2 or 1
        for to, moved in (
            ("workspace", tenants["project"][:half]),
            ("tagged", tenants["project"][half:]),
        ):
            if not moved:
                continue
            seconds = []
            control.reset_request_counts()
            for tenant_id in moved:
                seconds.append(migrate_tenant(tenant_id, to).seconds)
            calls = control.request_counts()["total"] / len(seconds)
            print(
                f"migrate {len(seconds)} project -> {to}, one at a time: median "
                f"{statistics.median(seconds):.3f} s, max {max(seconds):.3f} s inside the task "
                f"(under the tenant's lock), {calls:.1f} LangSmith calls each"
            )
        from prefect._internal.concurrency.services import QueueService

        QueueService.drain_all(timeout=10)  # logs and events, while the server still listens


if __name__ == "__main__":
    main()
