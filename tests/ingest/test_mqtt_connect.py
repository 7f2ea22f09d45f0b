"""The ingest consumer waits for a slow CONNACK instead of connecting again (a real mosquitto
behind a loopback proxy that holds the broker's first answer back)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from farsight.broker import MosquittoBroker
from farsight.settings import BrokerSettings, IngestSettings
from ingest.mqtt import MqttConsumer


class SlowFirstAnswer:
    """Forwards TCP connections to ``upstream``; the broker's first bytes on each (its CONNACK)
    are held for ``delay`` seconds. Counts the connections it accepts."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            broker = socket.create_connection(self.upstream)
            self._open += [client, broker]
            threading.Thread(target=self._pump, args=(client, broker, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(broker, client, self.delay), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, first_delay: float) -> None:
        delay = first_delay
        try:
            while data := src.recv(65536):
                if delay:
                    time.sleep(delay)  # the slow answer this proxy exists to make
                    delay = 0.0
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for s in self._open:
            s.close()


@pytest.fixture
def slow_proxy(fresh_mosquitto: MosquittoBroker) -> Iterator[SlowFirstAnswer]:
    proxy = SlowFirstAnswer((fresh_mosquitto.host, fresh_mosquitto.port), delay=0.5)
    yield proxy
    proxy.close()


def test_a_slow_connack_is_waited_for_on_one_connection(slow_proxy: SlowFirstAnswer) -> None:
    broker = BrokerSettings(host="127.0.0.1", port=slow_proxy.port, embedded="none")
    consumer = MqttConsumer(
        broker, IngestSettings(client_id="slow-connack"), lambda batch: None, period_s=60
    )
    try:
        consumer.start(wait=True, timeout=10)
        assert consumer.connected
        assert slow_proxy.connections == 1
    finally:
        consumer.stop()
