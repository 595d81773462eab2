from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from tenant_keys.errors import BadInput
from tenant_keys.layout import TenantKeyRecord
from tenant_keys.models import (
    key_description,
    parse_key_description,
    validate_tenant_id,
    version_token,
)

FAKE_KEY = "lsv2_sk_" + "ab" * 16 + "_0123456789"


@pytest.mark.parametrize("good", ["acme", "acme-corp", "a", "t1", "x" * 48])
def test_valid_tenant_ids(good: str) -> None:
    assert validate_tenant_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "Acme", "-acme", "acme-", "acme corp", "acme_corp", "x" * 49, "../etc"]
)
def test_invalid_tenant_ids_get_one_line_that_says_what_to_do(bad: str) -> None:
    with pytest.raises(BadInput) as info:
        validate_tenant_id(bad)
    assert "\n" not in str(info.value)
    assert "lowercase slug" in str(info.value)


def test_key_description_round_trips_and_ignores_foreign_keys() -> None:
    assert parse_key_description(key_description("acme", "r20261127T000000Z")) == (
        "acme",
        "r20261127T000000Z",
    )
    assert parse_key_description("Default API key") is None
    assert parse_key_description("tenant-keys tenant=ACME rotation=x") is None


def test_version_tokens_are_stable_and_distinct() -> None:
    token = version_token("acme", "r1")
    assert token == version_token("acme", "r1")
    assert token != version_token("acme", "r2") != version_token("globex", "r1")
    assert 32 <= len(token) <= 64  # Secrets Manager's ClientRequestToken bounds


def _record() -> TenantKeyRecord:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    return TenantKeyRecord(
        api_key=SecretStr(FAKE_KEY),
        key_id="k1",
        project_id="p1",
        project_name="tenant-acme",
        workspace_id="w1",
        issued_at=now,
        expires_at=now,
        rotation_id="onboard",
    )


def test_record_keeps_the_key_out_of_repr_but_in_the_secret_string() -> None:
    record = _record()
    assert FAKE_KEY not in repr(record) and FAKE_KEY not in str(record)
    assert FAKE_KEY in record.to_secret_string()
    assert TenantKeyRecord.from_secret_string(record.to_secret_string()) == record


def test_bad_secret_json_error_names_fields_not_values() -> None:
    with pytest.raises(ValueError) as info:
        TenantKeyRecord.from_secret_string(json.dumps({"api_key": FAKE_KEY}))
    assert FAKE_KEY not in str(info.value)
    assert "key_id" in str(info.value)
    with pytest.raises(ValueError):
        TenantKeyRecord.from_secret_string("not json")
