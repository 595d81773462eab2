from __future__ import annotations

import logging
import secrets

import pytest
from pydantic import SecretStr

from tenant_keys.errors import ConfigError
from tenant_keys.langsmith.client import normalize_base_url
from tenant_keys.redact import install, redact, remember, scrub
from tenant_keys.settings import load_settings

FAKE_KEY = "lsv2_sk_" + "cd" * 16 + "_9876543210"


def test_missing_admin_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", raising=False)
    monkeypatch.delenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET", raising=False)
    with pytest.raises(ConfigError, match="TENANT_KEYS_LANGSMITH_ADMIN_KEY_SECRET is not set"):
        load_settings()


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", FAKE_KEY)
    monkeypatch.setenv("TENANT_KEYS_KEY_LIFETIME_DAYS", "0")
    with pytest.raises(ConfigError, match="TENANT_KEYS_KEY_LIFETIME_DAYS is invalid") as info:
        load_settings()
    assert FAKE_KEY not in str(info.value)


def test_settings_hide_the_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", FAKE_KEY)
    settings = load_settings()
    assert FAKE_KEY not in repr(settings)
    assert settings.secret_name("acme") == "langsmith/tenant/acme"


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://api.smith.langchain.com", "https://api.smith.langchain.com"),
        ("https://ls.example.com/api/v1/", "https://ls.example.com"),
        ("https://ls.example.com/api", "https://ls.example.com"),
    ],
)
def test_base_url_never_doubles_the_api_prefix(url: str, base: str) -> None:
    assert normalize_base_url(url) == base


def test_redact_scrubs_key_shapes_in_text_and_log_records() -> None:
    assert FAKE_KEY not in redact(f"boom {FAKE_KEY} boom")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", (FAKE_KEY,), None)
    scrub(record)
    assert FAKE_KEY not in record.getMessage()


def test_a_known_keys_tail_is_redacted_without_its_prefix() -> None:
    key = "lsv2_sk_" + secrets.token_hex(16) + "_" + secrets.token_hex(5)
    tail = key[-20:]
    assert tail in redact(f"input_value='{tail}'"), "unknown: only the key's shape is caught"
    remember(SecretStr(key))
    assert tail not in redact(f"input_value='{tail}'")
    assert key[8:24] not in redact(f"...{key[8:24]}...")
    assert "an ordinary sentence" in redact("an ordinary sentence")


def test_every_log_record_is_scrubbed_with_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    key = "lsv2_sk_" + secrets.token_hex(16) + "_" + secrets.token_hex(5)
    remember(key)
    install()
    logger = logging.getLogger("tests.any.library")
    with caplog.at_level(logging.DEBUG, logger="tests.any.library"):
        logger.debug("body: %s", {"SecretString": key[5:]})
        try:
            raise ValueError(f"bad input_value={key[-30:]}")
        except ValueError:
            logger.exception("failed")
    text = caplog.text
    assert "body:" in text and "ValueError" in text
    assert key[5:] not in text and key[-30:] not in text


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://api.smith.langchain.com", True),
        ("https://langsmith.example.com/api/v1", True),
        ("http://127.0.0.1:8765", True),
        ("http://localhost:1984", True),
        ("http://langsmith.example.com", False),
        ("not-a-url", False),
        ("ftp://api.smith.langchain.com", False),
    ],
)
def test_the_langsmith_url_is_https_unless_it_is_this_machine(
    monkeypatch: pytest.MonkeyPatch, url: str, accepted: bool
) -> None:
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_ADMIN_KEY", FAKE_KEY)
    monkeypatch.setenv("TENANT_KEYS_LANGSMITH_URL", url)
    if accepted:
        assert load_settings().langsmith_url == url
    else:
        with pytest.raises(ConfigError, match="TENANT_KEYS_LANGSMITH_URL is invalid") as info:
            load_settings()
        assert "\n" not in str(info.value)
