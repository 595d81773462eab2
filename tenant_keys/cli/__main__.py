"""`python -m tenant_keys.cli`: the same as the `tenant-keys` command."""

from tenant_keys.cli import app

app(prog_name="tenant-keys")
