"""Fixtures of the gateway tests: a site broker and a central broker (real mosquitto, free ports),
a key per gateway generated per test, the hub's ingest, and the gateway as a real process."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from app.roles.ingest import IngestService
from farsight.broker import MosquittoBroker
from farsight.settings import Settings
from tests.conftest import wait_until
from tests.factories import registry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site_broker(mosquitto_path: str, tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The site's local broker, where devices publish."""
    broker = MosquittoBroker(data_dir=tmp_path / "site-broker")
    yield broker
    broker.close()


@pytest.fixture
def central_broker(mosquitto_path: str, tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The central broker the gateway forwards to and the hub consumes from."""
    broker = MosquittoBroker(data_dir=tmp_path / "central-broker")
    yield broker
    broker.close()


@pytest.fixture
def gateway_key() -> str:
    """A fresh batch key (hex), never written to the repository."""
    return secrets.token_hex(32)


class BrokerAddress(Protocol):
    """Where a broker listens: a MosquittoBroker, or test_tls.py's TlsBroker (plain listener)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class Hub:
    """The hub's ingest (in this process) consuming gateway batches from the central broker."""

    def __init__(self, broker: BrokerAddress, data_dir: Path, keys: dict[str, str]) -> None:
        keys_file = data_dir / "gateway-keys.yaml"
        keys_file.write_text(yaml.safe_dump(keys), encoding="utf-8")
        keys_file.chmod(0o600)
        self.settings = Settings.model_validate(
            {
                "data_dir": str(data_dir),
                "broker": {
                    "host": broker.host,
                    "port": broker.port,
                    "protocol": "5",
                    "embedded": "none",
                },
                "ingest": {"client_id": "test-hub-ingest"},
                "edge": {"keys_file": str(keys_file)},
            }
        )
        self.service: IngestService | None = None

    def start(self) -> Hub:
        self.service = IngestService(self.settings, registry())
        self.service.start()
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def count(self) -> int:
        assert self.service is not None
        return self.service.readings.count()

    def order_by_device(self) -> dict[str, list[int]]:
        """Per device, the seq of its readings in the order the hub stored them."""
        assert self.service is not None
        rows = self.service.readings.db.query("SELECT device, seq FROM readings ORDER BY id")
        out: dict[str, list[int]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(r[1])
        return out

    def gateways(self) -> dict[str, dict[str, Any]]:
        assert self.service is not None and self.service.edge is not None
        return {g["gateway"]: g for g in self.service.edge.gateways()}

    def dead_letters(self) -> list:
        assert self.service is not None
        return self.service.readings.dead_letters(limit=1000)


@pytest.fixture
def hub(central_broker: MosquittoBroker, tmp_path: Path, gateway_key: str) -> Iterator[Hub]:
    d = tmp_path / "hub"
    d.mkdir()
    h = Hub(central_broker, d, {"gw-test": gateway_key}).start()
    yield h
    h.stop()


class StatusWatcher:
    """Follows the gateway's retained status (heartbeat, will) on the central broker."""

    def __init__(self, broker: MosquittoBroker, gateway: str = "gw-test") -> None:
        self.last: dict[str, Any] | None = None
        self.acks: list[dict[str, Any]] = []
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"status-{secrets.token_hex(4)}",
        )
        self.client.on_connect = lambda c, *a: c.subscribe(
            [(f"fs/v1/gw/{gateway}/status", 1), (f"fs/v1/gw/{gateway}/config/ack", 1)]
        )
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        doc = json.loads(msg.payload)
        if msg.topic.endswith("/config/ack"):
            self.acks.append(doc)
        else:
            self.last = doc

    def ready(self) -> bool:
        """The gateway is online and its local collector subscribed."""
        return bool(
            self.last
            and self.last.get("state") == "online"
            and all(
                v in ("connected", "listening") for v in self.last.get("collectors", {}).values()
            )
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def status(central_broker: MosquittoBroker) -> Iterator[StatusWatcher]:
    w = StatusWatcher(central_broker)
    yield w
    w.close()


class GatewayProcess:
    """``farsight edge --config gateway.yaml`` as a child process."""

    def __init__(self, config: dict[str, Any], workdir: Path, key: str) -> None:
        self.config = config
        self.workdir = workdir
        self.path = workdir / "gateway.yaml"
        self.path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.env = {**os.environ, "FARSIGHT_EDGE_KEY": key, "PYTHONPATH": str(REPO)}
        self.proc: subprocess.Popen | None = None
        # Open for the gateway's whole life (its stdout and stderr), across restarts.
        self.log = open(workdir / "gateway.log", "ab")  # noqa: SIM115

    def start(self) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "edge", "--config", str(self.path)],
            cwd=self.workdir,
            env=self.env,
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def buffer_path(self) -> Path:
        return Path(self.workdir) / self.config.get("data_dir", "var/edge") / "buffer.db"

    def buffer(self) -> dict[str, int]:
        """Rows held and losses counted, read from the buffer file (WAL: safe while it runs)."""
        if not self.buffer_path.exists():
            return {"depth": 0, "dropped": 0, "refused": 0, "expired": 0}
        con = sqlite3.connect(f"file:{self.buffer_path}?mode=ro", uri=True, timeout=5)
        try:
            depth = con.execute("SELECT COUNT(*) FROM buffer").fetchone()[0]
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:
            return {"depth": 0, "dropped": 0, "refused": 0, "expired": 0}
        finally:
            con.close()
        return {
            "depth": depth,
            **{k: int(meta.get(f"loss.{k}", 0)) for k in ("dropped", "refused", "expired")},
        }

    def tail(self) -> str:
        return (self.workdir / "gateway.log").read_text(errors="replace")[-4000:]

    def close(self) -> None:
        self.stop()
        self.log.close()


def gateway_config(site: MosquittoBroker, central: MosquittoBroker, **over: Any) -> dict[str, Any]:
    """A gateway.yaml collecting from ``site`` and forwarding to ``central``."""
    cfg: dict[str, Any] = {
        "gateway_id": "gw-test",
        "data_dir": "var/edge",
        "uplink": {
            "host": central.host,
            "port": central.port,
            "keepalive_s": 5,
            "batch_max": 200,
            "inflight": 4,
            "backfill_after_s": 2,
            "reconnect_max_s": 0.5,
        },
        "buffer": {"max_bytes": 64 * 1024 * 1024},
        "collectors": {"mqtt_local": {"enabled": True, "host": site.host, "port": site.port}},
        "health": {"interval_s": 1},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


@pytest.fixture
def start_gateway(tmp_path: Path, gateway_key: str) -> Iterator:
    """Start gateway processes; every one is stopped at the end of the test."""
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any]) -> GatewayProcess:
        workdir = tmp_path / "gateway"
        workdir.mkdir(exist_ok=True)
        gw = GatewayProcess(config, workdir, gateway_key).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()


def assert_exactly_once_in_order(hub: Hub, sent: dict[str, int], lost: int = 0) -> None:
    """The hub holds every reading once (less ``lost``), and each device's in increasing seq
    order."""
    order = hub.order_by_device()
    total = sum(len(v) for v in order.values())
    assert total == sum(sent.values()) - lost, (total, sum(sent.values()), lost)
    for dev, seqs in order.items():
        assert seqs == sorted(seqs), f"{dev} out of order"
        assert len(set(seqs)) == len(seqs), f"{dev} has duplicates"
        if not lost:
            assert seqs == list(range(sent[dev])), f"{dev} misses readings"


__all__ = ["GatewayProcess", "Hub", "assert_exactly_once_in_order", "gateway_config", "wait_until"]
