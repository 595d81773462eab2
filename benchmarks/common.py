"""What the benchmarks share: the pacing settings, the rotate-keys flow in a process of its own,
and the counts the emulator and moto keep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.langsmith_emulator import EmulatorControl
from devstack.stack import LocalStack

REPO = Path(__file__).resolve().parents[1]

# Secrets Manager's write quota per account (AWS: 50 a second for PutSecretValue,
# UpdateSecretVersionStage, TagResource... together); the bound of every write-heavy run.
SM_WRITES_PER_SECOND = 50.0
SM_WRITES = frozenset(
    {
        "CreateSecret",
        "PutSecretValue",
        "UpdateSecretVersionStage",
        "TagResource",
        "UntagResource",
        "DeleteSecret",
        "RestoreSecret",
        "UpdateSecret",
    }
)
# "No limit": pacing far above anything the local stack answers.
UNPACED_LANGSMITH = (1_000_000, 1.0)
UNPACED_SECRET_WRITES = 100_000.0
ADMIN_KEY_DESCRIPTION = "Emulator bootstrap workspace admin key"


def rate_limit_value(count: int, seconds: float) -> str:
    """`TENANT_KEYS_LANGSMITH_RATE_LIMIT` as the settings accept it. The documented form is
    "count/seconds"; pydantic-settings JSON-decodes the variable first (it is a model field),
    which that form fails, so the JSON string form is used when the plain one is refused."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from tenant_keys.settings import Settings

    plain = f"{count}/{seconds:g}"
    for value in (plain, json.dumps(plain)):
        saved = os.environ.get("TENANT_KEYS_LANGSMITH_RATE_LIMIT")
        os.environ["TENANT_KEYS_LANGSMITH_RATE_LIMIT"] = value
        try:
            parsed = Settings(langsmith_admin_key="probe").langsmith_rate_limit
        except (SettingsError, ValidationError):
            continue
        finally:
            if saved is None:
                del os.environ["TENANT_KEYS_LANGSMITH_RATE_LIMIT"]
            else:
                os.environ["TENANT_KEYS_LANGSMITH_RATE_LIMIT"] = saved
        if parsed.count == count and parsed.seconds == seconds:
            return value
    raise SystemExit(f"the settings accept no form of the rate limit {plain}")


def pacing_env(langsmith: tuple[int, float] | None, secret_writes: float | None) -> dict[str, str]:
    """The client's pacing: LangSmith's limit (count, seconds) and Secrets Manager's writes per
    second; None: unpaced."""
    count, seconds = langsmith or UNPACED_LANGSMITH
    return {
        "TENANT_KEYS_LANGSMITH_RATE_LIMIT": rate_limit_value(count, seconds),
        "TENANT_KEYS_SECRET_WRITES_PER_SECOND": str(secret_writes or UNPACED_SECRET_WRITES),
    }


def apply_env(env: Mapping[str, str]) -> None:
    """Set `env` in this process and rebuild its services from it."""
    from tenant_keys.services import reset_services

    os.environ.update(env)
    reset_services()


def fanout_rate(env: Mapping[str, str]) -> float:
    """The calls per second a fan-out paces the admin key at, under `env`: what the product's
    client makes of the rate limit and the fan-out share (its own bucket, read back)."""
    from pydantic import SecretStr

    from tenant_keys.langsmith import LangSmithAdmin
    from tenant_keys.settings import load_settings

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = load_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    # No call is made: the pacing does not depend on the key, which may live in a secret.
    client = LangSmithAdmin(
        settings.langsmith_url,
        SecretStr("unused"),
        calls_per_second=settings.langsmith_rate_limit.per_second,
        fanout_share=settings.fanout_rate_share,
    )
    try:
        return client.bucket.rate
    finally:
        client.close()


# -- the rotate-keys flow in a process of its own -----------------------------------------------


@dataclass
class FlowProcess:
    """A `benchmarks/flow_process.py` child running rotate-keys; `result()` waits for it."""

    process: subprocess.Popen[bytes]
    out: Path

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        code = self.process.wait(timeout=timeout)
        if code != 0 or not self.out.exists():
            raise SystemExit(f"the rotation process exited with {code}: see {self.out}.log")
        figures: dict[str, Any] = json.loads(self.out.read_text())
        return figures

    def running(self) -> bool:
        return self.process.poll() is None


def start_rotation(rotation_id: str, env: Mapping[str, str], out: Path) -> FlowProcess:
    """Start `rotate-keys` over every tenant under the env's secret prefix, in a new process."""
    out.unlink(missing_ok=True)
    log = out.with_name(out.name + ".log")
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "benchmarks" / "flow_process.py"), rotation_id, str(out)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return FlowProcess(process, out)


# -- counts --------------------------------------------------------------------------------------


def admin_key_id(control: EmulatorControl) -> str:
    """The admin key the tool runs with, by id: the stack keeps in its admin secret a key minted
    with the emulator's bootstrap key (`tenant-keys admin-key init`), so the newest live key the
    tool minted as an admin key, or the bootstrap key where the tool was given that one."""
    from tenant_keys.admin_layout import parse_admin_description

    keys = [k for k in control.keys() if not k.get("deleted")]  # noqa: SIM118 - a list
    parsed = {k["id"]: parse_admin_description(k.get("description") or "") for k in keys}
    admins = [k for k in keys if (parsed[k["id"]] or ("",))[0] == "admin"]
    if admins:
        return str(max(admins, key=lambda k: str(k["created_at"]))["id"])
    return str(next(k["id"] for k in keys if k["description"] == ADMIN_KEY_DESCRIPTION))


class MotoCalls:
    """Secrets Manager calls per secret, as moto's server counted them (`GET /_calls`)."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=16))

    def of(self, secret: str) -> Counter[str]:
        response = self._http.get("/_calls", params={"secret": secret})
        response.raise_for_status()
        return Counter(response.json())

    def snapshot(self, secrets: Iterable[str]) -> dict[str, Counter[str]]:
        names = list(secrets)
        with ThreadPoolExecutor(max_workers=16) as pool:
            return dict(zip(names, pool.map(self.of, names), strict=True))

    def close(self) -> None:
        self._http.close()


def calls_between(
    before: Mapping[str, Counter[str]], after: Mapping[str, Counter[str]]
) -> dict[str, Counter[str]]:
    return {name: after[name] - before.get(name, Counter()) for name in after}


# -- CPU -------------------------------------------------------------------------------------------


def server_groups(stack: LocalStack) -> dict[str, int]:
    """The stack's servers that run in processes of their own, by name: their process group ids
    (each is started in a session of its own, so its group holds it and its children)."""
    groups = {}
    for name, server in (
        ("Prefect server", stack.prefect),
        ("moto", stack.moto),
        ("LangSmith emulator", stack.langsmith),
    ):
        process = getattr(server, "_process", None)
        if process is not None:
            groups[name] = process.pid
    return groups


def group_cpu(groups: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) the live processes of each group have used so far (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = dict.fromkeys(groups, 0.0)
    by_group = {pgid: name for name, pgid in groups.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        # After the command: state ppid pgrp ... utime (14th field of stat) stime (15th).
        name = by_group.get(int(fields[2]))
        if name is not None:
            found[name] += (int(fields[11]) + int(fields[12])) / tick
    return found
