"""A local subset of rules at the gateway, for immediate site alerts while the uplink is down.

Messages reach the rules only after the buffer has made them durable (a buffer listener), on a
thread of their own behind a bounded queue: evaluation never slows collection or delays an
acknowledgement. Decoding and evaluation are the hub's own (ingest codecs, the rule engine), so a
rule means the same at the site and at the hub. Signals are published on the site broker's
alert topic (QoS 1) and logged; the hub evaluates the same data again when it arrives.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import GatewayConfig
from farsight.errors import DecodeError
from farsight.logs import kv
from farsight.registry import load_registry
from farsight.types import AlertSignal, Reading
from ingest.codecs import get_codec
from ingest.topics import CODEC_FOR_KIND, parse_topic
from rules.engine import Engine
from rules.loader import load_ruleset

log = logging.getLogger("farsight.edge.rules")


def signal_doc(s: AlertSignal, gateway: str) -> dict:
    return {
        "gateway": gateway,
        "rule_id": s.rule_id,
        "fingerprint": s.fingerprint,
        "status": s.status,
        "site": s.site,
        "device": s.device,
        "metric": s.metric,
        "severity": s.severity,
        "summary": s.summary,
        "ts": s.ts.isoformat(),
        "value": s.value,
        "threshold": s.threshold,
    }


class LocalRules:
    """Evaluates buffered messages against the local rules; see the module docstring."""

    def __init__(self, config: GatewayConfig) -> None:
        r = config.rules
        self.gateway = config.gateway_id
        self.topic = r.alert_topic.format(gateway=config.gateway_id)
        self.registry = load_registry(r.sites_file, r.departments)
        self.engine = Engine(load_ruleset(r.files, r.default_pack), self.registry)
        self._queue_max = r.queue_max
        self._queue: deque[tuple[str, bytes]] = deque(maxlen=self._queue_max)
        self._cond = threading.Condition()
        self._stop = False
        self.signals: list[AlertSignal] = []
        self.skipped = 0
        self.client: mqtt.Client | None = None
        local = config.collectors.mqtt_local
        if local.enabled:
            self.client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=f"farsight-gw-{self.gateway}-alerts",
            )
            if local.username:
                self.client.username_pw_set(local.username, local.password)
            self.client.connect_async(local.host, local.port, keepalive=30)
        self._thread = threading.Thread(target=self._run, name="edge-rules", daemon=True)

    def start(self) -> None:
        if self.client is not None:
            self.client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=10)
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def feed(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Queue stored messages (called by the buffer's writer after each commit)."""
        with self._cond:
            room = self._queue_max - len(self._queue)
            if len(items) > room:
                self.skipped += len(items) - room
            self._queue.extend(items)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(timeout=5.0)
                    if not self._queue:
                        break
                if self._stop:
                    return
                items = list(self._queue)
                self._queue.clear()
            try:
                self._evaluate(items)
            except Exception:
                log.exception("local rules failed")

    def _evaluate(self, items: list[tuple[str, bytes]]) -> None:
        readings: list[Reading] = []
        for topic, payload in items:
            try:
                t = parse_topic(topic)
                codec = CODEC_FOR_KIND.get(t.kind)
                if codec is None:
                    continue
                readings += get_codec(codec).decode(payload, site=t.site, device=t.device).readings
            except DecodeError:
                continue  # the hub dead-letters it with its reason
        signals = self.engine.evaluate(readings) if readings else []
        signals += self.engine.tick(datetime.now(UTC))
        for s in signals:
            self.signals.append(s)
            log.warning(
                "local alert",
                extra=kv(
                    gateway=self.gateway,
                    rule=s.rule_id,
                    status=s.status,
                    site=s.site,
                    device=s.device,
                    value=s.value,
                ),
            )
            if self.client is not None:
                self.client.publish(self.topic, json.dumps(signal_doc(s, self.gateway)), qos=1)
