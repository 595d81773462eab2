"""Run the admin key's rotation in this process and kill the process at a step boundary.

`python -m tests.core.admin_crash_child SECRET ROTATION BOUNDARY`. The kill is `os._exit`: no
finally block, no compensation, as when a worker's machine dies.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import tenant_keys.admin_rotation as protocol
from tenant_keys.admin_secret import AdminSecretStore
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import PENDING
from tests.core.admin_helpers import services_for
from tests.core.crash_child import die_after

BOUNDARIES: dict[str, Callable[[], None]] = {
    # AWSPENDING written: the new key stored, the step not yet returned (write 1).
    "mid-create": lambda: setattr(
        AdminSecretStore,
        "put_admin_version",
        die_after(
            AdminSecretStore.put_admin_version, lambda self, record, **k: k["stage"] == PENDING
        ),
    ),
    "after-create": lambda: setattr(
        protocol, "create_pending_admin_key", die_after(protocol.create_pending_admin_key)
    ),
    # The test step's probe key minted, not yet deleted.
    "mid-test": lambda: setattr(
        LangSmithAdmin,
        "create_key",
        die_after(LangSmithAdmin.create_key, lambda self, description, **k: "probe" in description),
    ),
    "after-test": lambda: setattr(
        protocol, "test_pending_admin_key", die_after(protocol.test_pending_admin_key)
    ),
    # AWSCURRENT moved onto the new key (write 2, the last).
    "after-promote": lambda: setattr(
        protocol, "promote_pending_admin_key", die_after(protocol.promote_pending_admin_key)
    ),
    # The old key deleted at LangSmith, its death not yet proven (`main` arms it with the old
    # key's id: the test step's probe is deleted through the same call).
    "mid-retire": lambda: None,
}


def main() -> None:
    secret, rotation_id, boundary = sys.argv[1:4]
    BOUNDARIES[boundary]()
    with services_for(secret, admin_grace_seconds=0) as services:
        if boundary == "mid-retire":
            assert services.admin_secret is not None
            old_key_id = services.admin_secret.read_admin().key_id
            LangSmithAdmin.delete_key = die_after(  # type: ignore[method-assign]
                LangSmithAdmin.delete_key, lambda self, key_id, **k: key_id == old_key_id
            )
        protocol.rotate_admin(services, rotation_id, retire_now=True, lock=protocol.NoAdminLock())
    sys.exit(0)  # the crash point was never reached


if __name__ == "__main__":
    main()
