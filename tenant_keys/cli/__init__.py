"""The `tenant-keys` command line; importing a command module registers its commands."""

from tenant_keys.cli import devstack, onboard, quota, reconcile, revoke, rotate  # noqa: F401  (registration)
from tenant_keys.cli.app import app

__all__ = ["app"]
