"""Where the LangSmith client gets the admin key from: a small provider, asked on every call.

- `StaticAdminKey`: the key of TENANT_KEYS_LANGSMITH_ADMIN_KEY (quick experiments), or a key
  the admin rotation holds in hand to act with one particular key.
- `SecretAdminKey`: AWSCURRENT of the admin key secret, cached for a short while and read
  again at once when LangSmith answers 401, so a rotation of the admin key (which deletes the
  old one) costs a long fan-out one refused call per process, never the run.

Neither ever puts the key in a message; the record read from the secret registers it with the
redactor (`tenant_keys.layout`'s records do the same).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from pydantic import SecretStr

log = logging.getLogger(__name__)

# After a 401, how long a re-read that found the same key is trusted: 64 threads refused at once
# cost one GetSecretValue, not 64.
REREAD_MIN_INTERVAL_SECONDS = 1.0


class AdminKeySource(Protocol):
    def get(self) -> SecretStr:
        """The key to send now."""
        ...

    def refresh(self, rejected: SecretStr) -> SecretStr | None:
        """After LangSmith refused `rejected` (401): a different key to retry with, or None when
        there is none (the refusal stands)."""
        ...


class StaticAdminKey:
    """One fixed key: nothing to re-read."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def get(self) -> SecretStr:
        return self._key

    def refresh(self, rejected: SecretStr) -> SecretStr | None:
        return None


class SecretAdminKey:
    """The admin key as its secret holds it now, read at most every `ttl_seconds`, and again
    at once after a 401. Thread-safe: one read serves every thread of the process."""

    def __init__(
        self,
        read: Callable[[], SecretStr],
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._key: SecretStr | None = None
        self._read_at = float("-inf")
        self._refused_at = float("-inf")  # when a re-read after a 401 found the refused key

    def get(self) -> SecretStr:
        with self._lock:
            if self._key is None or self._clock() - self._read_at > self._ttl:
                self._load()
            assert self._key is not None
            return self._key

    def refresh(self, rejected: SecretStr) -> SecretStr | None:
        with self._lock:
            if self._key is not None and not _same(self._key, rejected):
                return self._key  # another thread already moved on to the new key
            if self._clock() - self._refused_at < REREAD_MIN_INTERVAL_SECONDS:
                return None  # just re-read: the secret holds the refused key itself
            self._load()
            assert self._key is not None
            if _same(self._key, rejected):
                self._refused_at = self._clock()
                return None
            log.info("the admin key was refused (401) and its secret holds a new one: using it")
            return self._key

    def _load(self) -> None:
        self._key = self._read()
        self._read_at = self._clock()


def _same(a: SecretStr, b: SecretStr) -> bool:
    return a.get_secret_value() == b.get_secret_value()
