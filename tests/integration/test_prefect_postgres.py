"""The flows on a Prefect server backed by PostgreSQL (Debian's `postgresql` package), as in
production: proof that `deployments/postgres.md` is not just text.

Starts a throwaway PostgreSQL cluster and a Prefect server on it, runs onboarding and a
rotation in a child process pointed at that server (this session's Prefect settings point
at the SQLite one), then reads the runs back from PostgreSQL itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack, PrefectServer, free_port
from tenant_keys.services import get_services
from tests.invariants import current_key_works

ROOT = Path(__file__).resolve().parents[2]
# Debian's layout: /usr/lib/postgresql/<major>/bin; the newest installed major.
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    default=Path("/nonexistent"),
    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
)

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists(),
    reason="PostgreSQL server binaries missing: apt-get install postgresql (.ci/run does)",
)


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="tenant-keys-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    data = base / "data"
    port = free_port()
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(data / "log"),
                "-w",
                "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "prefect",
                ]
            ),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
        )


def test_flows_run_on_a_postgres_backed_prefect_server(
    stack: LocalStack, postgres: str, tmp_path: Path, tenant_id: str
) -> None:
    server = PrefectServer(tmp_path / "prefect-pg")
    server.env = {**(server.env or {}), "PREFECT_SERVER_DATABASE_CONNECTION_URL": postgres}
    server.start()
    try:
        child_env = {**os.environ, "PREFECT_API_URL": server.api_url}
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.postgres_flows", tenant_id],
            cwd=ROOT,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        server.stop()

    assert get_services().store.read(tenant_id).rotation_id == "r-postgres"
    assert current_key_works(tenant_id)
    port = postgres.rsplit(":", 1)[1].split("/")[0]
    psql = shutil.which("psql") or str(PG_BIN / "psql")
    rows = subprocess.run(
        [
            psql,
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "postgres",
            "-d",
            "prefect",
            "-At",
            "-c",
            "select f.name, r.state_type from flow_run r join flow f on f.id = r.flow_id order by f.name",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert rows == ["onboard-tenants|COMPLETED", "rotate-keys|COMPLETED"]
