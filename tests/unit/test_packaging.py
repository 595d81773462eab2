"""What `pip install tenant-keys` brings, and what an app that only traces needs of it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

DEV_STACK_ONLY = {"moto", "fastapi", "uvicorn", "python-multipart"}

# Run in a fresh interpreter in which the dev stack's packages and Prefect cannot be imported,
# as in an app image that installed only the product: the runtime helper still loads and
# traces nothing rather than fail (no store is reachable here).
WITHOUT_THEM = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"prefect", "devstack", "moto", "fastapi", "uvicorn", "flows", "tasks"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Absent())
from tenant_keys.runtime import TenantTracing
from tenant_keys.secret_store import SecretStore

tracing = TenantTracing(
    SecretStore(prefix="p", region="us-east-1", endpoint_url="http://127.0.0.1:9"),
    "http://127.0.0.1:9",
)
with tracing.context("acme") as handle:
    assert handle is None, "no store: not traced, and no other key used"
print("ok")
"""


def test_the_product_does_not_depend_on_the_dev_stack() -> None:
    base = [Requirement(r) for r in requires("tenant-keys") or []]
    product = {r.name.lower() for r in base if r.marker is None}
    devstack = {r.name.lower() for r in base if r.marker and "devstack" in str(r.marker)}
    assert product and not product & DEV_STACK_ONLY, product & DEV_STACK_ONLY
    assert devstack >= DEV_STACK_ONLY


def test_the_runtime_helper_loads_without_prefect_or_the_dev_stack() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THEM], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
