"""Run one tenant's rotation in this process and kill the process at a step boundary.

`python -m tests.core.crash_child TENANT ROTATION BOUNDARY`. The kill is `os._exit`: no
finally block, no compensation, as when a worker's machine dies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import tenant_keys.rotation as protocol
from tenant_keys.langsmith import LangSmithAdmin
from tenant_keys.layout import PENDING
from tenant_keys.secret_store import SecretStore
from tenant_keys.services import get_services

CRASH_EXIT_CODE = 17


def die_after(
    fn: Callable[..., Any], when: Callable[..., bool] = lambda *a, **k: True
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if when(*args, **kwargs):
            os._exit(CRASH_EXIT_CODE)
        return result

    return wrapper


BOUNDARIES: dict[str, Callable[[], None]] = {
    "after-create": lambda: setattr(
        protocol, "create_pending_key", die_after(protocol.create_pending_key)
    ),
    "after-test": lambda: setattr(
        protocol, "test_pending_key", die_after(protocol.test_pending_key)
    ),
    # AWSPENDING written: the key stored, the function not yet returned.
    "mid-create": lambda: setattr(
        SecretStore,
        "put_version",
        die_after(SecretStore.put_version, lambda self, t, record, **k: k["stage"] == PENDING),
    ),
    # AWSCURRENT moved onto the new key (the protocol's second and last write).
    "after-promote": lambda: setattr(
        protocol, "promote_pending_key", die_after(protocol.promote_pending_key)
    ),
    # The old key deleted at LangSmith, the driver not yet returned.
    "mid-retire": lambda: setattr(
        LangSmithAdmin, "delete_key", die_after(LangSmithAdmin.delete_key)
    ),
}


def main() -> None:
    tenant_id, rotation_id, boundary = sys.argv[1:4]
    BOUNDARIES[boundary]()
    protocol.rotate(get_services(), tenant_id, rotation_id, retire_now=True)
    sys.exit(0)  # the crash point was never reached


if __name__ == "__main__":
    main()
