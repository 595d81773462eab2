"""Run the flows, failing ones included, with Prefect's logging as verbose as it gets (set by
the parent's environment: root DEBUG, botocore/httpx/httpcore/urllib3/langsmith as extra
loggers, prints logged). `python -m tests.integration.verbose_child TENANT`; exit 0 when every
flow ran as expected."""

from __future__ import annotations

import sys

from devstack.langsmith_emulator import EmulatorControl
from flows.onboarding import onboard_tenants
from flows.revoke import emergency_revoke
from flows.rotation import rotate_keys
from tasks.events import flush
from tenant_keys.services import get_services


def main() -> None:
    tenant_id = sys.argv[1]
    control = EmulatorControl(get_services().settings.langsmith_url)
    [result] = onboard_tenants([tenant_id])
    assert result.outcome == "created", result
    assert rotate_keys([tenant_id], rotation_id="r-verbose", return_state=True).is_completed()
    # A key test refused: the new key is discarded, the rotation fails.
    control.inject_fault(
        method="GET", route="/api/v1/sessions", action="status", status=401, count=5
    )
    assert rotate_keys([tenant_id], rotation_id="r-refused", return_state=True).is_failed()
    control.clear_faults()
    # A revoke whose replacement cannot be minted: the error text reaches the incident.
    control.inject_fault(method="POST", route="/api/v1/api-key", status=503, count=None)
    assert emergency_revoke(tenant_id, reason="verbose", return_state=True).is_failed()
    control.clear_faults()
    assert rotate_keys([tenant_id], rotation_id="r-back", return_state=True).is_completed()
    flush()


if __name__ == "__main__":
    main()
