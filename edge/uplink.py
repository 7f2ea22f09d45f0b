"""The uplink: forwards the buffer to the central broker as signed batches, QoS 1, in order.

One thread owns the paho client: it runs the network loop, reads the buffer in id order, signs
and publishes batches while the in-flight window has room, and deletes a batch's rows when the
broker's PUBACK for it arrives. paho keeps unacknowledged batches across a reconnect and sends
them again first (DUP), so order holds through an outage; after a crash the gateway starts again
from the oldest row it still holds, and the hub's idempotent store absorbs what arrives twice.

The same client carries the retained status (heartbeat, last will ``offline``) and receives the
hub's retained configuration; both are handled on this thread, so nothing else touches paho.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.batch import BatchMessage, encode_batch
from edge.buffer import Buffer
from edge.config import GatewayConfig, UplinkSettings
from edge.errors import EdgeError
from farsight.logs import kv
from farsight.tls import client_context

log = logging.getLogger("farsight.edge.uplink")

CONNECT_TIMEOUT_S = 10.0
"""How long a CONNECT may wait for its CONNACK before the link is tried again."""


def batch_topic(gateway: str) -> str:
    return f"fs/v1/gw/{gateway}/batch"


def status_topic(gateway: str) -> str:
    return f"fs/v1/gw/{gateway}/status"


def config_topic(gateway: str) -> str:
    return f"fs/v1/gw/{gateway}/config"


def config_ack_topic(gateway: str) -> str:
    return f"fs/v1/gw/{gateway}/config/ack"


def make_uplink_client(gateway: str, u: UplinkSettings) -> mqtt.Client:
    """A paho client for the central broker: TLS, credentials or client certificate, last will."""
    v5 = u.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=u.client_id or f"farsight-gw-{gateway}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        # A clean session: the gateway's own buffer, not the broker, holds what is unsent.
        clean_session=None if v5 else True,
    )
    password = os.environ.get("FARSIGHT_EDGE_PASSWORD") or u.password
    if u.username:
        client.username_pw_set(u.username, password)
    if u.tls.enabled:
        # The kernel's context: TLS 1.2 at least, CERT_REQUIRED, bad files named by key path.
        client.tls_set_context(
            client_context(
                ca_file=u.tls.ca_file,
                cert_file=u.tls.cert_file,
                key_file=u.tls.key_file,
                check_hostname=not u.tls.insecure,
                where="uplink.tls",
            )
        )
    client.will_set(
        status_topic(gateway),
        json.dumps({"gateway": gateway, "state": "offline"}),
        qos=1,
        retain=True,
    )
    client.max_inflight_messages_set(max(20, u.inflight * 2))
    client.max_queued_messages_set(0)
    return client


class Uplink:
    """Forwards buffered messages to the central broker; see the module docstring."""

    def __init__(
        self,
        config: GatewayConfig,
        buffer: Buffer,
        key: bytes,
        *,
        heartbeat: Callable[[], dict[str, Any]] | None = None,
        on_config: Callable[[bytes], dict[str, Any] | None] | None = None,
    ) -> None:
        self.config = config
        self.gateway = config.gateway_id
        self.buffer = buffer
        self.key = key
        self.heartbeat = heartbeat
        self.on_config = on_config
        self.client = make_uplink_client(self.gateway, config.uplink)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._inflight: dict[int, tuple[int, int, int]] = {}
        self._cursor = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-uplink", daemon=True)
        self._next_beat = 0.0
        self._pending_acks: list[dict[str, Any]] = []
        self.connected_since: float | None = None
        self.sent_batches = 0
        self.sent_messages = 0
        self.acked_messages = 0
        self.reconnects = 0

    # -- paho callbacks (on our thread, inside client.loop) -----------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning(
                "central broker refused the connection",
                extra=kv(gateway=self.gateway, reason=reason_code),
            )
            return
        self.connected_since = time.monotonic()
        log.info(
            "uplink connected",
            extra=kv(
                gateway=self.gateway,
                broker=f"{self.config.uplink.host}:{self.config.uplink.port}",
                backlog=self.buffer.depth,
            ),
        )
        if self.on_config is not None:
            client.subscribe(config_topic(self.gateway), qos=1)
        self._next_beat = 0.0  # announce "online" at once, replacing the will

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected_since = None
        if not self._stop.is_set():
            log.warning(
                "uplink lost; buffering",
                extra=kv(gateway=self.gateway, reason=reason_code, inflight=len(self._inflight)),
            )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        # This thread both publishes and reads PUBACKs, so a PUBACK never precedes its filing;
        # heartbeat and config-ack publishes are not filed and end here.
        span = self._inflight.pop(mid, None)
        if span is None:
            return
        lo, hi, n = span
        self.buffer.ack(lo, hi)
        self.acked_messages += n

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != config_topic(self.gateway) or self.on_config is None:
            return
        try:
            ack = self.on_config(bytes(msg.payload))
        except Exception:
            log.exception("remote configuration handler failed", extra=kv(gateway=self.gateway))
            return
        if ack is not None:
            self._pending_acks.append(ack)

    # -- the loop ----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def _send_batches(self) -> None:
        u = self.config.uplink
        while len(self._inflight) < u.inflight and self.client.is_connected():
            rows = self.buffer.read(self._cursor, u.batch_max, u.batch_max_bytes - 1024)
            if not rows:
                return
            now_ms = int(time.time() * 1000)
            if (
                len(rows) < u.batch_max
                and self._inflight
                and now_ms - rows[0].ts_ms < u.batch_wait_ms
            ):
                return  # the link is busy anyway: let the batch fill
            late_ms = u.backfill_after_s * 1000
            msgs = [
                BatchMessage(r.topic, r.payload, r.ts_ms, r.offline or now_ms - r.ts_ms > late_ms)
                for r in rows
            ]
            seq = self.buffer.next_seq()
            payload = encode_batch(self.gateway, seq, msgs, self.key, now_ms, self.buffer.loss)
            lo, hi = rows[0].id, rows[-1].id
            # Before publishing: from now on these rows may reach the hub, so the full policy
            # must not count them as lost.
            self.buffer.protect_upto = max(self.buffer.protect_upto, hi)
            info = self.client.publish(batch_topic(self.gateway), payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("publish failed", extra=kv(gateway=self.gateway, rc=info.rc))
                return
            # paho keeps the message (and sends it again after a reconnect) either way.
            self._inflight[info.mid] = (lo, hi, len(rows))
            self._cursor = hi
            self.sent_batches += 1
            self.sent_messages += len(rows)

    def _beat(self) -> None:
        if self.heartbeat is None or not self.client.is_connected():
            return
        now = time.monotonic()
        if now < self._next_beat:
            return
        self._next_beat = now + self.config.health.interval_s
        try:
            doc = self.heartbeat()
        except Exception:
            log.exception("heartbeat failed")
            return
        self.client.publish(
            status_topic(self.gateway), json.dumps(doc, separators=(",", ":")), qos=1, retain=True
        )

    def _run(self) -> None:
        delay = 0.2
        connecting_until = 0.0
        # Whether the last attempt ended without a session (bad credentials, untrusted
        # certificate).
        refused = False
        while not self._stop.is_set():
            if not self.client.is_connected():
                # A CONNECT is out and its CONNACK not yet in (a TLS handshake takes a while):
                # a second CONNECT under the same client id now would make the broker drop both.
                if time.monotonic() < connecting_until and self.client.socket() is not None:
                    self.client.loop(timeout=0.05)
                    continue
                if refused:  # back off as for an unreachable broker, not hammer it
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.config.uplink.reconnect_max_s)
                try:
                    self.client.reconnect()
                    connecting_until = time.monotonic() + CONNECT_TIMEOUT_S
                    refused = True  # until a CONNACK says otherwise
                    self.reconnects += 1
                except (OSError, ValueError, ssl.SSLError) as exc:
                    log.debug(
                        "central broker unreachable",
                        extra=kv(gateway=self.gateway, error=exc, retry_s=delay),
                    )
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.config.uplink.reconnect_max_s)
                    continue
            self.client.loop(timeout=0.01)
            if self.client.is_connected() and refused:
                refused, delay = False, 0.2
            try:
                self._send_batches()
                while self._pending_acks and self.client.is_connected():
                    ack = self._pending_acks.pop(0)
                    self.client.publish(
                        config_ack_topic(self.gateway),
                        json.dumps(ack, separators=(",", ":")),
                        qos=1,
                        retain=True,
                    )
                self._beat()
            except EdgeError:
                log.exception("uplink step failed", extra=kv(gateway=self.gateway))
                self._stop.wait(0.5)
        try:
            if self.client.is_connected():
                # A clean stop says so: the retained status becomes "offline" without the will.
                info = self.client.publish(
                    status_topic(self.gateway),
                    json.dumps({"gateway": self.gateway, "state": "offline"}),
                    qos=1,
                    retain=True,
                )
                deadline = time.monotonic() + 2
                while (
                    not info.is_published()
                    and time.monotonic() < deadline
                    and self.client.is_connected()
                ):
                    self.client.loop(timeout=0.05)
            self.client.disconnect()
            self.client.loop(timeout=0.1)
        except (OSError, ValueError):
            pass

    # -- control -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (retrying while the broker is down) and start forwarding."""
        u = self.config.uplink
        try:
            self.client.connect_async(u.host, u.port, keepalive=u.keepalive_s)
        except (OSError, ValueError) as exc:
            raise EdgeError(f"cannot connect to {u.host}:{u.port}: {exc}") from None
        self._thread.start()

    def update(self, config: GatewayConfig) -> None:
        """Take new forwarding settings (batch sizes, window, health interval) at once."""
        self.config = config

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
