"""The token bucket every call to an outside system goes through: its pace, its burst, a
server's pause, and waiting callers that sleep once each instead of waking each other."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from tenant_keys import ratelimit
from tenant_keys.ratelimit import TokenBucket


def _run(callers: int, bucket: TokenBucket) -> float:
    start = time.monotonic()
    threads = [threading.Thread(target=bucket.acquire) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start


def test_token_bucket_paces_concurrent_callers() -> None:
    elapsed = _run(26, TokenBucket(50.0))  # 50/s: 25 calls after the first take ~0.48 s
    assert 0.4 <= elapsed < 1.5


def test_a_burst_goes_at_once_after_a_quiet_spell_then_the_pace_holds() -> None:
    bucket = TokenBucket(10.0, burst=5)
    assert _run(5, bucket) < 0.2  # five at once
    assert _run(3, bucket) >= 0.25  # then 10/s: the third of these waits ~0.3 s


def test_token_bucket_pause_holds_everyone_back() -> None:
    bucket = TokenBucket(1000.0)
    bucket.pause(0.3)
    start = time.monotonic()
    bucket.acquire()
    assert time.monotonic() - start >= 0.25


def test_a_caller_already_waiting_is_held_back_by_a_pause_that_begins_meanwhile() -> None:
    bucket = TokenBucket(5.0)  # a slot every 0.2 s
    bucket.acquire()
    waited: list[float] = []
    waiter = threading.Thread(target=lambda: waited.append(bucket.acquire()))
    waiter.start()  # its slot is ~0.2 s away
    time.sleep(0.05)
    bucket.pause(0.6)
    waiter.join(5)
    assert waited and waited[0] >= 0.55


def test_waiting_callers_sleep_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    guard = threading.Lock()

    def sleep(seconds: float) -> None:
        with guard:
            sleeps.append(seconds)
        time.sleep(seconds)

    # The bucket's clock is the real one; only its sleeps are counted.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    _run(40, TokenBucket(200.0))  # 40 callers at once, a slot every 5 ms
    assert len(sleeps) <= 40, f"{len(sleeps)} sleeps for 40 calls: waiters woke each other"
