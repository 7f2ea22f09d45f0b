"""Collector for devices on the site's local MQTT broker.

A persistent session (stable client id, clean_session=False) and manual acknowledgement: a
message is acknowledged (PUBACK) only after the buffer's group commit that holds it, so the local
broker keeps and redelivers anything the gateway had not made durable when it died.
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.buffer import Buffer
from edge.config import MqttLocalSettings
from edge.errors import EdgeError
from farsight.logs import kv

log = logging.getLogger("farsight.edge.mqtt_local")


class MqttLocalCollector:
    """Subscribes to the local broker at QoS 1 and buffers every message it receives."""

    name = "mqtt_local"

    def __init__(self, gateway: str, settings: MqttLocalSettings, buffer: Buffer) -> None:
        self.gateway = gateway
        self.settings = settings
        self.buffer = buffer
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or f"farsight-gw-{gateway}-local",
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # Message ids belong to one connection: an ack that completes after a reconnect must
        # not acknowledge whatever now carries that id. The broker redelivers it instead.
        self._generation = 0
        self._lock = threading.Lock()
        self.received = 0
        self.refused = 0
        self._state = "stopped"

    @property
    def state(self) -> str:
        return self._state

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._state = "refused"
            log.warning("local broker refused the connection", extra=kv(reason=reason_code))
            return
        self._state = "subscribing"
        client.subscribe([(t, 1) for t in self.settings.topics])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        # Only now does the broker queue the site's messages for this session.
        self._state = "connected"

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._generation += 1
        if self._state != "stopped":
            self._state = "disconnected"
            log.warning("local broker lost; reconnecting", extra=kv(reason=reason_code))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("fs/v1/gw/"):
            # Never collect a gateway's own traffic (a site broker bridged to the centre).
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            return
        self.received += 1
        generation, mid, qos = self._generation, msg.mid, msg.qos

        def done(flags: list[bool]) -> None:
            if not flags[0]:
                self.refused += 1
            with self._lock:
                if generation != self._generation or qos == 0:
                    return
            # Refused messages are acknowledged too: the buffer counted them as lost and the
            # heartbeat reports it; holding them would only stall the session.
            self.client.ack(mid, qos)

        try:
            self.buffer.submit([(msg.topic, bytes(msg.payload))], done)
        except EdgeError:
            log.error("buffer closed; message left unacknowledged", extra=kv(topic=msg.topic))

    def start(self) -> None:
        try:
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise EdgeError(
                f"local broker {self.settings.host}:{self.settings.port}: {exc}"
            ) from None
        self._state = "connecting"
        self.client.loop_start()

    def stop(self) -> None:
        self._state = "stopped"
        self.buffer.flush(10)  # let pending acks go out before the connection closes
        self.client.disconnect()
        self.client.loop_stop()
