"""The fan-out's slots: the limit holds, and a freed slot goes to the oldest waiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flows.slots import Slots


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_freed_slot_goes_to_the_waiter_with_the_smallest_priority() -> None:
    slots = Slots(1)
    served: list[str] = []
    waiting: list[threading.Thread] = []

    def wait_for_slot(priority: tuple[float, str]) -> None:
        with slots.hold(priority):
            served.append(priority[1])

    with slots.hold((0.0, "holder")):
        # Arrivals in the opposite order of their priority: a semaphore would serve them as
        # the threads happen to wake, this pool by batch age, then tenant.
        for priority in [(3.0, "c"), (2.0, "b2"), (2.0, "b1"), (1.0, "a")]:
            thread = threading.Thread(target=wait_for_slot, args=(priority,))
            thread.start()
            waiting.append(thread)
            _wait_until(lambda: len(slots._waiting) == len(waiting))
    for thread in waiting:
        thread.join(5)

    assert served == ["a", "b1", "b2", "c"]


def test_no_more_than_the_limit_hold_at_once_and_every_waiter_is_served() -> None:
    slots = Slots(3)
    guard, holding, peak, served = threading.Lock(), [0], [0], [0]

    def work(i: int) -> None:
        with slots.hold((float(i % 5), str(i))):
            with guard:
                holding[0] += 1
                peak[0] = max(peak[0], holding[0])
            time.sleep(0.02)  # long enough for the first three to overlap
            with guard:
                holding[0] -= 1
                served[0] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert (peak[0], served[0]) == (3, 40)
    assert slots._free == 3
