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
    def __init__(self, rate_per_second: float, burst: float | None = None) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = rate_per_second
        # No burst by default: against a sliding one-minute window, any burst on
        # top of the steady rate is what earns the 429s.
        self.capacity = burst if burst is not None else 1.0
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is free. Returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if now < self._paused_until:
                    delay = self._paused_until - now
                elif self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                else:
                    delay = (1 - self._tokens) / self.rate
            time.sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (a server said Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._tokens = 0.0
