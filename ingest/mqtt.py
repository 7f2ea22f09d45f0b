"""The MQTT edge of ingest: a paho consumer with a persistent session and manual acks.

A message is acknowledged (PUBACK) only after the batch holding it is committed, so a crash
between receipt and storage makes the broker deliver it again; the store's idempotency key
makes that redelivery harmless. That is at-least-once in, exactly-once stored.

One thread does everything: it runs paho's network loop and, between two loop calls, hands
the messages received so far to the handler and acknowledges them. A second thread would
only add a queue hand-off and GIL contention per message (measured: about 40 % slower).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from farsight.errors import BrokerError
from farsight.logs import kv
from farsight.mqttclient import make_client, session_connect_kwargs, wait_connected
from farsight.settings import BrokerSettings, IngestSettings
from ingest.message import Message

log = logging.getLogger("farsight.ingest.mqtt")

Handler = Callable[[Sequence[Message]], object]

CONNACK_TIMEOUT_S = 10.0
"""How long a CONNECT sent on a live socket may wait for its CONNACK before the consumer
connects again."""


class MqttConsumer:
    """Subscribes to the ingest topics at QoS 1 and hands batches of messages to ``handler``."""

    def __init__(
        self,
        broker: BrokerSettings,
        settings: IngestSettings,
        handler: Handler,
        periodic: Callable[[], object] | None = None,
        period_s: float = 5.0,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.handler = handler
        # Called on the consumer's own thread, so it may share the handler's state (the engine).
        self.periodic = periodic
        self.period_s = period_s
        self._next_periodic = 0.0
        self.client = make_client(broker, settings.client_id, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # Set by the SUBACK of the current connection: until then a message published to the
        # broker is not routed to this session (start() waits for it).
        self._subscribed = threading.Event()
        self._pending: list[tuple[mqtt.MQTTMessage, datetime]] = []
        self._first_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-mqtt", daemon=True)
        self.batches = 0
        self.errors = 0
        self._connect_sent: float | None = None  # monotonic time of a CONNECT without CONNACK

    # -- paho callbacks (called from inside client.loop(), on our thread) -------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("broker refused connection", extra=kv(reason=reason_code))
            return
        self._connect_sent = None
        log.info(
            "connected",
            extra=kv(
                broker=f"{self.broker.host}:{self.broker.port}",
                client_id=self.settings.client_id,
                session_present=getattr(flags, "session_present", None),
            ),
        )
        # Subscribing again on a resumed session is harmless and covers a session the broker lost.
        subscriptions: list[tuple[str, int]] = [
            (t, self.settings.qos) for t in self.settings.topics
        ]
        client.subscribe(subscriptions)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error(
                "broker refused a subscription",
                extra=kv(topics=",".join(self.settings.topics), reasons=",".join(refused)),
            )
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # Message ids belong to one connection: acking a stale mid after a reconnect could
        # acknowledge a different message. Unacked messages come again; the store dedups them.
        self._connect_sent = None
        self._subscribed.clear()
        if self._pending:
            self._flush(ack=False)
        if not self._stop.is_set():
            log.warning("disconnected; reconnecting", extra=kv(reason=reason_code))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not self._pending:
            self._first_at = time.monotonic()
        self._pending.append((msg, datetime.now(UTC)))

    # -- the loop --------------------------------------------------------------------------------

    def _flush(self, ack: bool = True) -> None:
        batch, self._pending = self._pending, []
        try:
            self.handler([Message(m.topic, bytes(m.payload), at) for m, at in batch])
        except Exception:
            self.errors += 1
            log.exception(
                "batch failed; its messages stay unacknowledged and will be redelivered",
                extra=kv(size=len(batch)),
            )
            return
        self.batches += 1
        if ack:
            for m, _ in batch:
                if m.qos > 0:
                    self.client.ack(m.mid, m.qos)

    def _due(self) -> bool:
        if not self._pending:
            return False
        return (
            len(self._pending) >= self.settings.batch_max
            or time.monotonic() - self._first_at >= self.settings.batch_wait_ms / 1000
        )

    def _awaiting_connack(self) -> bool:
        """A CONNECT went out on a socket that is still open, and its CONNACK may yet come.

        paho counts the client as connected only from the CONNACK on: connecting again before
        then throws the connection away. Over TLS, with a busy broker restoring a large session,
        the CONNACK took longer than one loop, and the consumer reconnected over and over
        without ever being connected.
        """
        sent = self._connect_sent
        return (
            sent is not None
            and self.client.socket() is not None
            and time.monotonic() - sent < CONNACK_TIMEOUT_S
        )

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            if not self.client.is_connected() and not self._awaiting_connack():
                try:
                    self.client.reconnect()
                    self._connect_sent = time.monotonic()
                    delay = 0.5
                except (OSError, ValueError) as exc:
                    log.warning(
                        "broker unreachable",
                        extra=kv(
                            broker=f"{self.broker.host}:{self.broker.port}",
                            error=exc,
                            retry_s=delay,
                        ),
                    )
                    self._stop.wait(delay)
                    delay = min(delay * 2, 30.0)
                    continue
            # A short loop timeout bounds how long a partial batch waits to be written.
            rc = self.client.loop(timeout=min(0.05, self.settings.batch_wait_ms / 1000 or 0.01))
            if self._due():
                self._flush()
            if self.periodic is not None and time.monotonic() >= self._next_periodic:
                self._next_periodic = time.monotonic() + self.period_s
                try:
                    self.periodic()
                except Exception:
                    log.exception("periodic task failed")
            if (
                rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN)
                and not self.client.is_connected()
            ):
                self._stop.wait(0.2)
        if self._pending:
            self._flush()
            self.client.loop(timeout=0.1)  # send the last acks before disconnecting
        self.client.disconnect()
        self.client.loop(timeout=0.1)

    # -- control -------------------------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Connect (retrying with backoff while the broker is down) and start consuming."""
        self.client.connect_async(
            self.broker.host,
            self.broker.port,
            **session_connect_kwargs(
                self.broker, persistent=True, session_expiry_s=self.settings.session_expiry_s
            ),
        )
        self._thread.start()
        if wait:
            deadline = time.monotonic() + timeout
            wait_connected(self.client, timeout)
            # Connected is not yet consuming: what is published before the SUBACK is not
            # routed to a new session.
            if not self._subscribed.wait(max(0.0, deadline - time.monotonic())):
                raise BrokerError(f"not subscribed on the broker after {timeout:.0f} s")

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    @property
    def subscribed(self) -> bool:
        """The broker acknowledged this connection's subscriptions (messages now reach us)."""
        return self._subscribed.is_set()

    def stop(self) -> None:
        """Write and acknowledge what was received, then disconnect (the session stays on the
        broker, which queues what arrives until the consumer returns)."""
        self._stop.set()
        self._thread.join(timeout=30)
