"""paho-mqtt clients configured the one way Farsight uses them: MQTT 5 or 3.1.1, persistent
sessions, QoS 1, automatic reconnect with backoff. paho errors become :class:`BrokerError`."""

from __future__ import annotations

import os
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from farsight.errors import BrokerError
from farsight.settings import BrokerSettings
from farsight.tls import broker_context


def make_client(
    broker: BrokerSettings,
    client_id: str,
    *,
    persistent: bool = True,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A paho client for ``broker``; ``persistent`` keeps the session (and its queue) across
    disconnects: clean_session=False in 3.1.1, clean_start=False plus session expiry in 5.
    With ``broker.tls.enabled`` it speaks TLS (:mod:`farsight.tls`; a bad file is a
    :class:`~farsight.errors.ConfigError` naming its key)."""
    v5 = broker.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls.enabled:
        # Made per client: paho adjusts the context it is given (check_hostname).
        client.tls_set_context(broker_context(broker.tls))
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # Outgoing QoS 1 window: paho's default of 20 throttles a publisher on a fast link.
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    return client


def session_connect_kwargs(
    broker: BrokerSettings, *, persistent: bool = True, session_expiry_s: int = 7 * 86400
) -> dict:
    """Keyword arguments of paho's ``connect`` for a persistent (or clean) session."""
    kwargs: dict = {"keepalive": broker.keepalive_s}
    if broker.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = session_expiry_s
        kwargs["clean_start"] = not persistent
        kwargs["properties"] = props
    return kwargs


def connect(
    client: mqtt.Client,
    broker: BrokerSettings,
    *,
    persistent: bool = True,
    session_expiry_s: int = 7 * 86400,
) -> None:
    """Start connecting in the background (``connect_async`` + ``loop_start``): a broker that
    is down now is retried with backoff instead of failing the caller."""
    kwargs = session_connect_kwargs(
        broker, persistent=persistent, session_expiry_s=session_expiry_s
    )
    try:
        client.connect_async(broker.host, broker.port, **kwargs)
    except (OSError, ValueError) as exc:
        raise BrokerError(f"cannot connect to {broker.host}:{broker.port}: {exc}") from None
    client.loop_start()


def wait_connected(client: mqtt.Client, timeout: float = 10.0) -> None:
    """Poll until the client is connected, or raise :class:`BrokerError`."""
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise BrokerError(f"not connected to the broker after {timeout:.0f} s")
        time.sleep(0.02)


class PublishTracker:
    """Counts QoS 1 publishes until the broker acknowledges them (PUBACK)."""

    def __init__(self, client: mqtt.Client) -> None:
        self._pending: set[int] = set()
        # The PUBACK can arrive before publish() returns the mid to the caller.
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self.acked = 0
        client.on_publish = self._on_publish

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            if mid in self._pending:
                self._pending.discard(mid)
            else:
                self._early.add(mid)
            self.acked += 1

    def add(self, info: mqtt.MQTTMessageInfo) -> None:
        """Track one publish (paho queues it while disconnected and sends it on reconnect)."""
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._pending.add(info.mid)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until every tracked publish is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def anonymous_accepted(broker: BrokerSettings, timeout: float = 5.0) -> bool | None:
    """Whether the broker lets a client in without a user name: True when it accepts an
    anonymous CONNECT, False when it refuses it, None when it did not answer in ``timeout``."""
    answer: list[bool] = []
    # Anonymous means no user name *and* no client certificate: with use_identity_as_username
    # the certificate would be the user name.
    tls = broker.tls.model_copy(update={"cert_file": None, "key_file": None})
    probe = make_client(
        broker.model_copy(update={"username": None, "password": None, "tls": tls}),
        f"farsight-probe-{os.getpid()}",
        persistent=False,
    )

    def on_connect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        answer.append(not reason_code.is_failure)

    probe.on_connect = on_connect
    try:
        probe.connect(broker.host, broker.port, keepalive=max(5, int(timeout) + 1))
    except ssl.SSLError:
        return False  # a TLS listener that wants a client certificate refused the handshake
    except (OSError, ValueError):
        return None
    deadline = time.monotonic() + timeout
    try:
        while not answer and time.monotonic() < deadline:
            if probe.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS and not answer:
                # The broker closed the connection instead of answering the CONNECT: a TLS
                # listener whose client certificate check comes after the handshake (TLS 1.3).
                return False
    finally:
        if answer and answer[0]:
            probe.disconnect()
            probe.loop(timeout=0.05)
        sock = probe.socket()  # a refused CONNECT leaves it to us to close
        if sock is not None:
            sock.close()
    return answer[0] if answer else None
