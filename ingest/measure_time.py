"""Which measure times ingest believes: each reading's time judged against its receive time.

A reading further ahead of the moment ingest received it than its device's allowed skew is
refused (a clock that runs ahead, or a forged HJ 212 ``DataTime``, would carry the rule engine's
clock into the future). A reading older than the backfill horizon is stored but not evaluated as
live data. Pure functions over the message's own receive time, so the judgement is the same in a
replay as it was live.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from farsight.errors import DecodeError
from farsight.types import Reading

FUTURE_TIMESTAMP = "future_timestamp"
"""Dead-letter reason of a message with a reading measured too far after its receive time."""


def future_refusal(
    readings: Sequence[Reading], received: datetime, skew_s: float, device_kind: str | None
) -> DecodeError | None:
    """The refusal of a message whose newest reading is more than ``skew_s`` ahead of
    ``received``, or None when every reading is within the skew."""
    if not readings:
        return None
    newest = max(r.ts for r in readings)
    ahead = (newest - received).total_seconds()
    if ahead <= skew_s:
        return None
    kind = f"device kind {device_kind}" if device_kind else "default"
    return DecodeError(
        FUTURE_TIMESTAMP,
        f"measure time {newest.isoformat()} is {_span(ahead)} after receive time"
        f" {received.isoformat()}; at most {skew_s:g} s ahead is accepted ({kind},"
        " ingest.time.max_future_skew_s / future_skew_by_kind)",
    )


def live_flags(readings: Sequence[Reading], received: datetime, horizon_s: float) -> list[bool]:
    """Per reading, whether it is live: it reached ingest at most ``horizon_s`` after it was
    measured. Older ones are backfill, history stored but not judged by the live rules."""
    cutoff = received - timedelta(seconds=horizon_s)
    return [r.ts >= cutoff for r in readings]


def _span(seconds: float) -> str:
    """A duration as a person reads it (``38 days``, ``12 min``)."""
    for unit, size in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
