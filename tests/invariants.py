"""Checks of DESIGN's invariants, shared by the integration and fault tests."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import boto3

from devstack.stack import LocalStack
from tenant_keys.layout import CURRENT, PENDING, RETIRE_PENDING
from tenant_keys.models import parse_key_description
from tenant_keys.services import get_services


def current_key_works(tenant_id: str) -> bool:
    """Invariant 1: the tenant's AWSCURRENT key authenticates at LangSmith."""
    services = get_services()
    record = services.store.read(tenant_id)
    return services.langsmith.authenticates(record.api_key, workspace_id=record.workspace_id)


def minted_keys(stack: LocalStack, tenant_id: str, rotation_id: str | None = None) -> list[dict]:
    """Every key the tool ever minted for this tenant (and rotation), deleted ones included."""
    minted = []
    for key in stack.langsmith.control.keys():  # noqa: SIM118 - the emulator's key dump, not a dict
        parsed = parse_key_description(key.get("description") or "")
        if parsed and parsed[0] == tenant_id and rotation_id in (None, parsed[1]):
            minted.append(key)
    return minted


def live_tool_keys(stack: LocalStack, tenant_id: str) -> set[str]:
    """Ids of the keys the tool minted for this tenant that still exist at LangSmith."""
    return {key["id"] for key in minted_keys(stack, tenant_id) if not key.get("deleted_at")}


def referenced_keys(tenant_id: str) -> set[str]:
    """Key ids of the tenant's AWSCURRENT and AWSPENDING versions."""
    store = get_services().store
    if not store.exists(tenant_id):
        return set()
    state = store.describe(tenant_id)
    ids = set()
    for label in (CURRENT, PENDING):
        if version := state.version_with(label):
            ids.add(store.read(tenant_id, stage=label, version_id=version).key_id)
    return ids


def assert_no_orphans(stack: LocalStack, tenant_id: str) -> None:
    """Invariant 2: every live key minted for the tenant is its AWSCURRENT or AWSPENDING key."""
    orphans = live_tool_keys(stack, tenant_id) - referenced_keys(tenant_id)
    assert not orphans, f"orphan keys of {tenant_id}: {orphans}"


def stored_plaintext_keys(stack: LocalStack) -> set[str]:
    """Every key value any tenant secret version ever held (moto keeps them all)."""
    import json

    sm = boto3.client("secretsmanager", endpoint_url=stack.moto.url, region_name="us-east-1")
    keys = set()
    for page in sm.get_paginator("list_secrets").paginate(IncludePlannedDeletion=True):
        for secret in page["SecretList"]:
            if "DeletedDate" in secret:
                continue  # offboarded: its values cannot be read back (and its keys are revoked)
            versions = sm.list_secret_version_ids(SecretId=secret["ARN"], IncludeDeprecated=True)[
                "Versions"
            ]
            for version in versions:
                value = sm.get_secret_value(SecretId=secret["ARN"], VersionId=version["VersionId"])
                try:
                    keys.add(json.loads(value.get("SecretString") or "")["api_key"])
                except (ValueError, KeyError):
                    continue  # a version a test corrupted on purpose holds no key
    return keys


def prefect_storage_text(stack: LocalStack) -> str:
    """Every text value in the Prefect server's database (all tables, all columns) and its log."""
    assert stack.prefect is not None
    home = stack.prefect.home
    chunks: list[str] = []
    with sqlite3.connect(f"file:{home / 'prefect.db'}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in db.execute(f'select * from "{table}"'):
                chunks.extend(str(value) for value in row if value is not None)
    for path in [home / "server.log", *Path(home).rglob("storage/*")]:
        if path.is_file():
            chunks.append(path.read_text(errors="replace"))
    return "\n".join(chunks)


def assert_no_plaintext_in_prefect(stack: LocalStack) -> int:
    """Invariant 3: no stored key appears anywhere Prefect keeps data. Returns how many keys were checked."""
    keys = stored_plaintext_keys(stack)
    assert keys, "no keys found to look for: the check would pass vacuously"
    text = prefect_storage_text(stack)
    leaked = [key[:12] + "…" for key in keys if key in text]
    assert not leaked, f"plaintext keys found in Prefect's storage: {leaked}"
    return len(keys)


KEY_SHAPE = re.compile(r"(?:lsv2_(?:sk|pt)_|ls__)[A-Za-z0-9]{8,}")
RUN_OF_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_]{16,}")


def assert_no_key_fragment_in_prefect(stack: LocalStack) -> int:
    """Invariant 3, strictly: no stored key, no 16-character piece of one, and nothing shaped
    like a key anywhere Prefect keeps data. Returns how many keys were checked."""
    keys = stored_plaintext_keys(stack)
    assert keys, "no keys found to look for: the check would pass vacuously"
    windows = {key[i : i + 16] for key in keys for i in range(len(key) - 15)}
    text = prefect_storage_text(stack)
    shaped = KEY_SHAPE.findall(text)
    assert not shaped, f"key-shaped strings in Prefect's storage: {[s[:12] for s in shaped]}"
    pieces = [
        token[:6] + "…"
        for token in RUN_OF_KEY_CHARACTERS.findall(text)
        if any(token[i : i + 16] in windows for i in range(len(token) - 15))
    ]
    assert not pieces, f"pieces of stored keys found in Prefect's storage: {pieces}"
    return len(keys)


def assert_finished(tenant_id: str) -> None:
    """No rotation left half way: no AWSPENDING but on AWSCURRENT's version (the protocol's
    "finished"), and no RETIRE_PENDING (a label of the tool's earlier versions)."""
    state = get_services().store.describe(tenant_id)
    assert state.version_with(PENDING) in (None, state.version_with(CURRENT)), state.versions
    assert state.version_with(RETIRE_PENDING) is None, state.versions
