"""The admin key provider: cached for its TTL, read again at once after a 401, one read for a
crowd of refused threads, and no re-read loop when the secret holds the refused key itself.

The secret is a function returning its current value and the clock a counter: the provider
takes both as arguments, so no server is needed to see its timing."""

from __future__ import annotations

import threading

from pydantic import SecretStr

from tenant_keys.admin_key import REREAD_MIN_INTERVAL_SECONDS, SecretAdminKey, StaticAdminKey

OLD, NEW = SecretStr("lsv2_sk_" + "a" * 32 + "_0000000001"), SecretStr("lsv2_sk_" + "b" * 32 + "_2")


class Secret:
    def __init__(self, value: SecretStr) -> None:
        self.value = value
        self.reads = 0

    def read(self) -> SecretStr:
        self.reads += 1
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_key_is_read_once_per_ttl() -> None:
    secret, clock = Secret(OLD), Clock()
    provider = SecretAdminKey(secret.read, ttl_seconds=60, clock=clock)
    assert provider.get() is OLD and provider.get() is OLD
    clock.now = 59
    secret.value = NEW
    assert provider.get() is OLD, "within the TTL the cached key is sent"
    clock.now = 61
    assert provider.get() is NEW
    assert secret.reads == 2


def test_a_401_reads_the_secret_again_at_once() -> None:
    secret, clock = Secret(OLD), Clock()
    provider = SecretAdminKey(secret.read, ttl_seconds=3600, clock=clock)
    provider.get()
    secret.value = NEW  # rotated: the old key is deleted at LangSmith
    clock.now = 0.1  # well within the TTL, and just after the first read
    assert provider.refresh(OLD) is NEW
    assert provider.get() is NEW


def test_many_refused_threads_cost_one_read() -> None:
    secret, clock = Secret(OLD), Clock()
    provider = SecretAdminKey(secret.read, ttl_seconds=3600, clock=clock)
    provider.get()
    secret.value = NEW
    answers: list[SecretStr | None] = []
    threads = [
        threading.Thread(target=lambda: answers.append(provider.refresh(OLD))) for _ in range(32)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [NEW] * 32
    assert secret.reads == 2


def test_a_key_refused_while_the_secret_still_holds_it_is_not_reread_in_a_loop() -> None:
    secret, clock = Secret(OLD), Clock()
    provider = SecretAdminKey(secret.read, ttl_seconds=3600, clock=clock)
    provider.get()
    assert provider.refresh(OLD) is None, "the secret holds the refused key: the 401 stands"
    assert provider.refresh(OLD) is None
    assert secret.reads == 2, "a second refusal right after is not read again"
    clock.now = REREAD_MIN_INTERVAL_SECONDS + 0.1
    secret.value = NEW
    assert provider.refresh(OLD) is NEW


def test_a_static_key_has_nothing_to_reread() -> None:
    assert StaticAdminKey(OLD).refresh(OLD) is None
