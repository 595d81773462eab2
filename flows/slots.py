"""The tenants-in-flight limit of one fan-out, handed out oldest batch first."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Slots:
    """At most `limit` holders at once; a freed slot goes to the waiter with the smallest
    `priority`, not to whichever thread wakes first. With a plain semaphore the batches in
    flight progress together and end together, and the slots idle while the next batch
    takes its locks; served oldest first, they end one by one."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._lock = threading.Lock()
        self._waiting: list[tuple[tuple[float, str], int, threading.Event]] = []
        self._arrivals = itertools.count()

    @contextmanager
    def hold(self, priority: tuple[float, str]) -> Iterator[None]:
        self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, priority: tuple[float, str]) -> None:
        with self._lock:
            if self._free > 0 and not self._waiting:
                self._free -= 1
                return
            turn = threading.Event()
            heapq.heappush(self._waiting, (priority, next(self._arrivals), turn))
        turn.wait()  # the releaser handed its slot over: `_free` already counts it as taken

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()
            else:
                self._free += 1
