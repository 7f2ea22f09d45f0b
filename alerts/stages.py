"""How the stages of the alert pipeline talk to each other: small typed protocols.

A stage never needs to know which class is on the other side: the rules hand signals to a
:class:`SignalStage` (the mute stage in front of the queue), the periodic tick moves every
:class:`ClockStage` (silences and escalation, on the wall clock), and the queue
calls each :class:`EventListener` inside the transaction of every alert event (deadlines, the
upstream outbox). :mod:`alerts.pipeline` assembles them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from alerts.model import Alert, AlertEvent
from farsight.db import Connection
from farsight.types import AlertSignal


class SignalStage(Protocol):
    """Takes the rule engine's signals into the queue; returns the alerts that changed."""

    def apply(self, signals: Sequence[AlertSignal]) -> list[Alert]: ...


class ClockStage(Protocol):
    """Moves with time; ``now`` is the wall clock's time (never the data's, which a device's
    clock decides), which a stage with a clock of its own ignores. Returns the alerts that
    changed."""

    def tick(self, now: datetime) -> list[Alert]: ...


class EventListener(Protocol):
    """Called in the transaction of every alert event, with that transaction's connection: what
    it writes commits, or rolls back, with the event."""

    def __call__(self, conn: Connection, alert: Alert, event: AlertEvent, /) -> None: ...
