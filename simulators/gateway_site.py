"""A simulated site behind an edge gateway: N devices publishing to the site's local broker, and
HJ 212 data loggers pushing frames to the gateway over TCP, each counting what it sent.

"Sent" means acknowledged by the next hop (the local broker's PUBACK, the gateway's HJ 212 data
response): that is what a device would consider delivered, and what the hub must end up holding
exactly once. Readings are deterministic for a seed: device ``d{i}``'s ``k``-th reading has
event time ``start + k * step_s`` and ``seq`` ``k``, so a test can check order per stream.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from farsight.hj212 import build_data_frame, split_stream
from farsight.logs import kv

log = logging.getLogger("farsight.simulators.gateway_site")

DEFAULT_START = datetime(2026, 11, 25, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """Where the simulated devices live: topic parts and the event-time grid."""

    dept: str = "env"
    site: str = "yc-aq-1"
    devices: int = 5
    metric: str = "pm25"
    start: datetime = DEFAULT_START
    step_s: float = 1.0

    def device_id(self, i: int) -> str:
        return f"d{i}"

    def topic(self, i: int) -> str:
        return f"fs/v1/{self.dept}/{self.site}/{self.device_id(i)}/reading"


class SiteSimulator:
    """N devices publishing JSON readings at QoS 1 to a local broker, at a given total rate."""

    def __init__(
        self,
        host: str,
        port: int,
        spec: SiteSpec = SiteSpec(),
        *,
        seed: int = 2026,
        client_id: str = "site-sim",
    ) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        self._lock = threading.Lock()
        self._pending: dict[int, str] = {}
        self._early: set[int] = set()
        self.published: Counter[str] = Counter()  # handed to paho, per device
        self.acked: Counter[str] = Counter()  # acknowledged by the local broker, per device
        self.next_k = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode | None = None,
        properties: Properties | None = None,
    ) -> None:
        with self._lock:
            dev = self._pending.pop(mid, None)
            if dev is None:
                self._early.add(mid)
            else:
                self.acked[dev] += 1

    def payload(self, i: int, k: int) -> bytes:
        """Device ``i``'s ``k``-th reading."""
        ts = self.spec.start + timedelta(seconds=k * self.spec.step_s)
        value = round(float(20 + 10 * self.rng.random()), 2)
        return json.dumps(
            {"ts": ts.isoformat(), "metrics": {self.spec.metric: value}, "seq": k}
        ).encode()

    def round(self) -> None:
        """One reading from every device."""
        k = self.next_k
        for i in range(self.spec.devices):
            dev = self.spec.device_id(i)
            info = self.client.publish(self.spec.topic(i), self.payload(i, k), qos=1)
            with self._lock:
                self.published[dev] += 1
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.acked[dev] += 1
                else:
                    self._pending[info.mid] = dev
        self.next_k = k + 1

    def run(self, rounds: int | None = None, rate: float | None = None) -> None:
        """Publish ``rounds`` rounds (``None``: until :meth:`stop`) at ``rate`` messages/s.

        ``rate`` ``None`` publishes as fast as possible.
        """
        interval = self.spec.devices / rate if rate else 0.0
        t0 = time.monotonic()
        n = 0
        while not self._stop.is_set() and (rounds is None or n < rounds):
            self.round()
            n += 1
            if interval:
                delay = t0 + n * interval - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)

    def start(self, rate: float, rounds: int | None = None) -> None:
        """Publish in a background thread."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(rounds, rate), name="site-sim", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def total_published(self) -> int:
        return sum(self.published.values())

    @property
    def total_acked(self) -> int:
        with self._lock:
            return sum(self.acked.values())

    def wait_acked(self, timeout: float = 60.0) -> bool:
        """Wait until the local broker acknowledged everything published."""
        deadline = time.monotonic() + timeout
        while self.total_acked < self.total_published:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self.stop()
        self.client.disconnect()
        self.client.loop_stop()


class Hj212Logger:
    """A data logger that connects to the gateway over TCP and pushes HJ 212 frames, asking for a
    response (Flag=5) and sending a frame again until the gateway answers it with CN=9014."""

    def __init__(
        self,
        host: str,
        port: int,
        mn: str,
        *,
        start: datetime = DEFAULT_START,
        step_s: float = 60.0,
        code: str = "a21026",
        seed: int = 2026,
        timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.mn = host, port, mn
        self.start, self.step_s, self.code = start, step_s, code
        self.rng = np.random.default_rng(seed)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._rest = b""
        self.sent = 0  # frames the gateway acknowledged
        self.retries = 0
        self.next_k = 0

    def frame(self, k: int) -> bytes:
        ts = self.start + timedelta(seconds=k * self.step_s)
        return build_data_frame(
            mn=self.mn,
            ts=ts,
            values={self.code: {"Rtd": round(float(10 + self.rng.random()), 3), "Flag": "N"}},
            flag=5,
        )

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._rest = b""
        return self.sock

    def _reply(self, sock: socket.socket) -> bytes:
        while True:
            frames, self._rest = split_stream(self._rest)
            if frames:
                reply, extra = frames[0], frames[1:]
                self._rest = b"".join(extra) + self._rest
                return reply
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("gateway closed the connection")
            self._rest += chunk

    def send_next(self, attempts: int = 20) -> bytes:
        """Send the next frame until answered; returns the response frame."""
        frame = self.frame(self.next_k)
        for _ in range(attempts):
            try:
                sock = self._connect()
                sock.sendall(frame)
                reply = self._reply(sock)
                if b"CN=9014" in reply:
                    self.sent += 1
                    self.next_k += 1
                    return reply
            except OSError as exc:
                log.info("logger link failed; sending again", extra=kv(mn=self.mn, error=exc))
                self.close()
                time.sleep(0.1)
            self.retries += 1
        raise ConnectionError(
            f"frame {self.next_k} of {self.mn} not answered after {attempts} attempts"
        )

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
