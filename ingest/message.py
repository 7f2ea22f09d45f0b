"""One MQTT message as ingest receives it: what the consumer hands the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as received."""

    topic: str
    payload: bytes
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
