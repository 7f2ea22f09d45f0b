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
    """When ingest received the message, stored with each of its readings
    (``readings.received``): the measure-time checks judge against it and timeliness (receive
    minus measure time) counts from it, so a queue backlog before the store does not count as
    the device's lateness. Set by the MQTT consumer when the message arrives. A message unpacked
    from an edge gateway's batch has the time the hub received the batch, also when the gateway
    held it back through an outage (``backfilled``): the data reached the platform then, and that
    delay is the lateness timeliness is meant to show. A dead letter replayed has the time it was
    first received, so a repair does not make the device late."""
