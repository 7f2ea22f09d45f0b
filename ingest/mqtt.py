"""The MQTT edge of ingest: a paho consumer with a persistent session and manual acks.

A message is acknowledged (PUBACK) only after the batch holding it is committed, so a crash
between receipt and storage makes the broker deliver it again; the store's idempotency key
makes that redelivery harmless. That is at-least-once in, exactly-once stored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Sequence

import paho.mqtt.client as mqtt

from farsight.logs import kv
from farsight.mqttclient import connect, make_client, wait_connected
from farsight.settings import BrokerSettings, IngestSettings
from ingest.pipeline import Message

log = logging.getLogger("farsight.ingest.mqtt")

Handler = Callable[[Sequence[Message]], object]


class MqttConsumer:
    """Subscribes to the ingest topics at QoS 1 and hands batches of messages to ``handler``."""

    def __init__(self, broker: BrokerSettings, settings: IngestSettings, handler: Handler) -> None:
        self.broker = broker
        self.settings = settings
        self.handler = handler
        self.client = make_client(broker, settings.client_id, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._queue: queue.Queue[tuple[int, mqtt.MQTTMessage, datetime]] = queue.Queue()
        # Message ids belong to one connection: acking a stale mid after a reconnect could
        # acknowledge a different message, so each message remembers its connection.
        self._generation = 0
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self.batches = 0
        self.errors = 0

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("broker refused connection", extra=kv(reason=reason_code))
            return
        self._generation += 1
        log.info("connected", extra=kv(broker=f"{self.broker.host}:{self.broker.port}", client_id=self.settings.client_id,
                                       session_present=getattr(flags, "session_present", None)))
        # Subscribing again on a resumed session is harmless and covers a session the broker lost.
        client.subscribe([(t, self.settings.qos) for t in self.settings.topics])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if not self._stop.is_set():
            log.warning("disconnected; reconnecting", extra=kv(reason=reason_code))

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:  # type: ignore[no-untyped-def]
        self._queue.put((self._generation, msg, datetime.now(timezone.utc)))

    # -- worker thread -----------------------------------------------------------------------

    def _next_batch(self) -> list[tuple[int, mqtt.MQTTMessage, datetime]]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        while len(batch) < self.settings.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
        return batch

    def _work(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self.handler([Message(m.topic, bytes(m.payload), at) for _, m, at in batch])
            except Exception:  # noqa: BLE001 - keep consuming; unacked messages come back
                self.errors += 1
                log.exception("batch failed; its messages stay unacknowledged and will be redelivered", extra=kv(size=len(batch)))
                time.sleep(0.5)
                continue
            self.batches += 1
            gen = self._generation
            for g, m, _ in batch:
                if g == gen and m.qos > 0:
                    self.client.ack(m.mid, m.qos)

    # -- control -------------------------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Connect (retrying in the background) and start the worker."""
        self._worker.start()
        connect(self.client, self.broker, persistent=True, session_expiry_s=self.settings.session_expiry_s)
        if wait:
            wait_connected(self.client, timeout)

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    @property
    def backlog(self) -> int:
        """Messages received but not yet processed."""
        return self._queue.qsize()

    def stop(self) -> None:
        """Disconnect, then finish the messages already received (their acks are not sent; the
        broker redelivers them next time and the store ignores the duplicates)."""
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        self._worker.join(timeout=30)
