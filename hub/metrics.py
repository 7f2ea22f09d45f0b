"""``GET /metrics``: the hub's figures for Prometheus, read from the stores at scrape time.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (``app.state.metrics``, made
by :func:`registry`) rather than the library's process-wide one: a test process or a demo runs
several hubs, each over its own stores. The collectors keep no values of their own; every scrape
asks the stores, so counts that ingest workers in other processes add are seen at once.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from alerts.outbox import OutboxCollector
from farsight.types import SEVERITIES
from hub.context import HubContext
from ingest.store import PRUNED_COUNTER

router = APIRouter()

COUNTER_METRICS = (
    (
        "rule_late_readings",
        "rule",
        "Readings later than a rule's allowed lateness, counted and not evaluated.",
    ),
    (
        "rule_flagged_readings",
        "flag",
        "Readings flagged by the data logger (HJ 212 flag) kept out of violation rules.",
    ),
    (
        "alerts_suppressed_maintenance",
        "",
        "Alerts not raised because a maintenance window covered the device.",
    ),
    (
        PRUNED_COUNTER,
        "cause",
        "Dead letters deleted by retention, by cause (age or size).",
    ),
)
"""Counters ingest workers add to the shared store: (name, label key, help)."""


class HubCollector:
    """Readings, dead letters, open alerts, stream clients, sites and the ingest counters."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self._ctx
        counters = ctx.readings.counters()
        yield CounterMetricFamily(
            "farsight_readings_total", "Readings stored.", value=ctx.readings.count()
        )
        # Those retention deleted still count: a counter never goes down.
        pruned = sum(v for (name, _), v in counters.items() if name == PRUNED_COUNTER)
        yield CounterMetricFamily(
            "farsight_dead_letters_total",
            "Messages rejected into the dead-letter store (including those retention deleted "
            "since).",
            value=ctx.readings.dead_letter_count() + pruned,
        )
        counts = ctx.alerts.counts()["severity"]
        open_alerts = GaugeMetricFamily(
            "farsight_open_alerts",
            "Alerts not closed (open or acknowledged), by severity.",
            labels=["severity"],
        )
        for severity in SEVERITIES:
            open_alerts.add_metric([severity], counts.get(severity, 0))
        yield open_alerts
        yield GaugeMetricFamily(
            "farsight_stream_subscribers",
            "Clients connected to the live stream.",
            value=ctx.stream.subscriber_count,
        )
        yield CounterMetricFamily(
            "farsight_stream_dropped_total",
            "Live-stream clients dropped for falling behind.",
            value=ctx.stream.dropped_total,
        )
        yield GaugeMetricFamily("farsight_sites", "Sites in the registry.", value=len(ctx.registry))
        yield from counter_families(counters)


def counter_families(counters: dict[tuple[str, str], int]) -> Iterator[CounterMetricFamily]:
    """The ingest counters (name, label) -> value as one family per :data:`COUNTER_METRICS`."""
    for name, label_key, help_text in COUNTER_METRICS:
        family = CounterMetricFamily(
            f"farsight_{name}_total", help_text, labels=[label_key] if label_key else []
        )
        for (n, label), value in sorted(counters.items()):
            if n == name:
                family.add_metric([label] if label_key else [], value)
        yield family


def registry(ctx: HubContext) -> CollectorRegistry:
    """A registry for one hub app: its stores' figures and its upstream outbox."""
    reg = CollectorRegistry()
    reg.register(HubCollector(ctx))
    reg.register(OutboxCollector(ctx.alerts.db))
    return reg


@router.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
def metrics(request: Request) -> Response:
    """Prometheus text exposition format 0.0.4 (OpenMetrics when the scraper asks for it)."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(request.app.state.metrics), media_type=content_type)
