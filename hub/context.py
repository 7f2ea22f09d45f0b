"""What the hub's endpoints work with, kept on ``app.state.hub``.

Its own module so that the feature routers and :mod:`hub.app` (which includes them) both import
it, and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.pipeline import AlertPipeline
from alerts.store import AlertStore
from farsight.evidence import EvidenceLedger
from farsight.registry import Registry
from farsight.settings import Settings
from hub.auth import TokenStore
from hub.ratelimit import FailureLimiter
from hub.stream import StreamHub
from ingest.store import ReadingStore


@dataclass(frozen=True, slots=True)
class HubContext:
    """The hub's settings, registry, stores, live stream and failed-authentication limiter.

    ``evidence`` records evidence uploads on the alert store's database connection.
    """

    settings: Settings
    registry: Registry
    readings: ReadingStore
    pipeline: AlertPipeline
    tokens: TokenStore
    stream: StreamHub
    limiter: FailureLimiter
    evidence: EvidenceLedger

    @property
    def alerts(self) -> AlertStore:
        """The risk queue (the pipeline's store)."""
        return self.pipeline.store
