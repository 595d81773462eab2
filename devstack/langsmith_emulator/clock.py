"""Time helpers: one adjustable clock per emulator, plus ISO-8601 parsing/formatting."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall clock (UTC) with an offset that tests may advance (e.g. to expire keys)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> timedelta:
        with self._lock:
            self._offset += timedelta(seconds=seconds)
            return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)

    @property
    def offset_seconds(self) -> float:
        return self._offset.total_seconds()


def iso(dt: datetime | None) -> str | None:
    """Serialise an aware datetime as ISO-8601 (UTC, microseconds, ``+00:00``)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat()


def parse_dt(value: object) -> datetime | None:
    """Parse an ISO-8601 string (``Z`` allowed; naive means UTC). Raises ValueError if bad."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value)
    else:
        raise ValueError(f"not a date-time: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def as_aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
