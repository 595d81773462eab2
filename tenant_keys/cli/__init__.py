"""The `tenant-keys` command line; importing a command module registers its commands."""

from tenant_keys.cli import (  # noqa: F401  (registration)
    admin,
    automations,
    devstack,
    isolation,
    migrate,
    onboard,
    quota,
    reconcile,
    report,
    revoke,
    rotate,
    up,
)
from tenant_keys.cli.app import app

__all__ = ["app"]
