"""Run onboarding and a rotation for one tenant against whatever Prefect API the environment
names. `python -m tests.integration.postgres_flows TENANT`; exit 0 when both completed."""

from __future__ import annotations

import sys

from flows.onboarding import onboard_tenants
from flows.rotation import rotate_keys
from tasks.events import flush


def main() -> None:
    tenant_id = sys.argv[1]
    [result] = onboard_tenants([tenant_id])
    assert result.outcome == "created", result
    state = rotate_keys([tenant_id], rotation_id="r-postgres", return_state=True)
    assert state.is_completed(), state.message

    flush()


if __name__ == "__main__":
    main()
