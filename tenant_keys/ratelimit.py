"""A thread-safe token bucket shared by every call a process makes to one outside system.

Prefect's `rate_limit` is a server round trip per acquisition and measured
coarse (~9 s for 10 slots at 5/s), far too slow to pace thousands of calls a
minute; the fan-out runs in one process, so an in-process bucket keeps the
pipe full. A server's `Retry-After` pauses the whole bucket, not just the
caller that received it, so the other threads stop piling on.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """`rate_per_second` calls, and up to `burst` at once after a quiet spell.

    Each caller reserves the next free slot and sleeps until it comes, once (the generic cell
    rate algorithm): dozens of threads waiting on one bucket do not wake each other in a
    loop, and they go in the order they came.
    """

    def __init__(self, rate_per_second: float, burst: float | None = None) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = rate_per_second
        self._interval = 1.0 / rate_per_second
        # No burst by default: against a sliding one-minute window, any burst on
        # top of the steady rate is what earns the 429s.
        self._tolerance = (max(1.0, burst or 1.0) - 1.0) * self._interval
        self._next_slot = float("-inf")  # when the next call is due, were it made now
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take the next free slot, sleeping until it comes. Returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                due = max(self._next_slot, now)
                delay = max(0.0, due - self._tolerance - now)
                self._next_slot = due + self._interval
            if delay:
                time.sleep(delay)
                waited += delay
            if time.monotonic() >= self._paused_until:
                return waited
            # A pause began while this caller slept: its slot fell inside it; take one after.

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (a server said Retry-After), with no burst
        after it."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._next_slot = max(self._next_slot, self._paused_until + self._tolerance)
