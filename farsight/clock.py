"""Clocks: the engine asks a clock for "now" so tests and replays control time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests and deterministic replays."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


def utc(dt: datetime) -> datetime:
    """Return ``dt`` in UTC; refuse naive datetimes, whose zone would be a guess."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no timezone")
    return dt.astimezone(UTC)


def to_epoch_ms(dt: datetime) -> int:
    """UTC-aware datetime to integer epoch milliseconds (the storage unit for time)."""
    return round(utc(dt).timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    """Epoch milliseconds to a UTC-aware datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


BEIJING = timezone(timedelta(hours=8), "CST")
"""HJ 212 stations report local Beijing time (UTC+8, no daylight saving)."""
