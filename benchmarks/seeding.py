"""Tenants for the benchmarks, made directly: what onboarding leaves behind, at the lowest cost.

Per tenant: its `tenant-<id>` project (one create), its first key (minted as onboarding mints
it: description naming tenant and rotation `onboard`, the key lifetime as expiry) and its
secret, created with that key as AWSCURRENT, onboarding's version token and the tags onboarding
ends with (`onboarding=done`): two LangSmith calls and one Secrets Manager write, where
onboarding makes five and three (it first looks for an existing secret and project, verifies
the key it stored, then marks the secret onboarded). Then the tenants' Prefect locks: given
the local Prefect server's home, written straight into its SQLite database with Prefect's own
table definition (10,000 in ~2 s; through the API, ~40 ms each on the 2-core machine, as each
create is a write and an event on the server), else created through the API. No events:
seeding is not what a benchmark measures, and ten thousand onboarding events would only load
the Prefect server the benchmark then measures.

Run it with the limits off (no emulated latency or rate limit, pacing far above them): the
caller sets that up before the first `get_services()` of the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from tenant_keys.services import Services

WORKERS = 32
# moto's secret store looks every secret up by scanning all of them, and a CreateSecret that
# inserts while another request scans makes that one fail with "dictionary changed size during
# iteration" (HTTP 500): from ~3,000 secrets on, 21 of 4,000 creates from 32 threads failed.
# Creates go one at a time; the LangSmith calls stay concurrent.
_CREATES = threading.Lock()


def tenant_ids(count: int, prefix: str = "bench") -> list[str]:
    return [f"{prefix}-{n:05d}" for n in range(count)]


def seed(
    count: int,
    *,
    prefix: str = "bench",
    workers: int = WORKERS,
    prefect_home: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Make tenants `{prefix}-00000`... and their locks; returns the tenant ids. `prefect_home`:
    the local Prefect server's home, whose database gets the locks directly."""
    from tasks.locks import tenant_locks
    from tenant_keys.services import get_services

    services = get_services()
    tenants = tenant_ids(count, prefix)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, _ in enumerate(pool.map(lambda t: seed_one(services, t), tenants), 1):
            if progress and done % 2000 == 0:
                progress(f"{done} tenants in {time.monotonic() - started:.0f} s")
    locks_started = time.monotonic()
    if prefect_home is not None:
        create_locks(prefect_home / "prefect.db", tenants)
    else:
        tenant_locks().ensure(tenants)
    if progress and count >= 2000:
        progress(f"{count} locks in {time.monotonic() - locks_started:.0f} s")
    return tenants


def seed_one(services: Services, tenant_id: str) -> str:
    """One tenant as onboarding (project mode) leaves it; returns its key id."""
    from tenant_keys.keys import PROJECT_HOME, mint_key, record_for
    from tenant_keys.layout import TAG_BUDGET, TAG_ONBOARDING, TAG_PROJECT
    from tenant_keys.models import project_description, project_name, version_token
    from tenant_keys.onboarding import ONBOARDING_ROTATION

    project = services.langsmith.create_project(
        project_name(tenant_id), description=project_description(tenant_id)
    )
    created = mint_key(services, tenant_id, ONBOARDING_ROTATION, PROJECT_HOME)
    record = record_for(
        created,
        project_id=project.id,
        project_name=project.name,
        workspace_id=services.settings.langsmith_workspace_id or project.tenant_id,
        rotation_id=ONBOARDING_ROTATION,
    )
    with _CREATES:
        services.store.create(
            tenant_id,
            record,
            token=version_token(tenant_id, ONBOARDING_ROTATION),
            tags={
                TAG_PROJECT: project.id,
                TAG_BUDGET: str(services.settings.default_trace_budget),
                TAG_ONBOARDING: "done",
                **PROJECT_HOME.tags(),
            },
        )
    return str(created.id)


def create_locks(database: Path, tenants: list[str]) -> None:
    """The tenants' locks (global concurrency limits of one slot, as `PrefectLocks.ensure`
    creates them), inserted into the Prefect server's SQLite database in one transaction;
    existing ones are left alone. The server reads limits from its database on every lease
    call, so it leases these as it leases its own."""
    import sqlalchemy as sa
    from prefect.server.database import orm_models

    from tasks.locks import lock_name

    if not database.exists():
        raise SystemExit(f"no Prefect database at {database}")
    # The ORM's table: its column defaults (id, created, updated) and types apply.
    table = cast(sa.Table, orm_models.ConcurrencyLimitV2.__table__)
    engine = sa.create_engine(f"sqlite:///{database}", connect_args={"timeout": 60})
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(table).prefix_with("OR IGNORE"),
                [{"name": lock_name(t), "limit": 1} for t in tenants],
            )
    finally:
        engine.dispose()
