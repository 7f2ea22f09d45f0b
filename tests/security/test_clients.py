"""Our own clients on the authenticating broker: simulated devices connect each as itself and
sign their HJ 212 frames with their own PW; an edge gateway forwards, reports and takes its
configuration with its gateway credentials and nothing more."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.config import parse_gateway_config
from edge.service import EdgeService
from farsight.broker import MosquittoBroker
from farsight.credentials import INGEST
from farsight.settings import BrokerSettings
from simulators.gateway_site import Hj212Logger
from simulators.publisher import Simulator
from tests.security.conftest import Peer, Trust, wait_for

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
PW_RE = re.compile(rb";PW=([^;]*);")


def broker_settings(broker: MosquittoBroker) -> BrokerSettings:
    return BrokerSettings(host=broker.host, port=broker.port, embedded="none")


def test_simulated_devices_connect_each_as_itself(
    secure_broker: MosquittoBroker, trust: Trust, peers: Callable[..., Peer]
) -> None:
    hub = peers(INGEST).connected()
    assert not hub.subscribe("fs/v1/+/+/+/+").is_failure
    sim = Simulator(trust.registry, "quiet", seed=3, start=T0, secrets=trust.secrets)
    stats = sim.run(broker_settings(secure_broker), rounds=3, interval_s=0.05, speedup=1200)
    # Every device publishes only its own topics (the ACL): all of them getting through means
    # each went out on its own device's connection.
    assert stats.messages > 0 and stats.acknowledged == stats.messages
    wait_for(lambda: len(hub.live()) >= stats.messages, "every simulated message at ingest")
    devices = {t.rsplit("/", 1)[0] for t in hub.live()}
    assert devices == {
        "fs/v1/env/s-air/aq1",
        "fs/v1/env/s-other/aq1",
        "fs/v1/env/s-stack/cems1",
        "fs/v1/transport/s-wim/wim1",
    }
    frames = hub.received("fs/v1/env/s-stack/cems1/hj212")
    assert frames
    for frame in frames:
        found = PW_RE.search(frame)
        assert found is not None
        assert trust.store.hj212_password_ok("s-stack", "cems1", found.group(1).decode()) is True


def test_a_simulator_without_a_devices_secret_refuses_to_run(
    secure_broker: MosquittoBroker, trust: Trust
) -> None:
    partial = {k: v for k, v in trust.secrets.items() if k != "env/s-air/aq1"}
    sim = Simulator(trust.registry, "quiet", seed=3, start=T0, secrets=partial)
    with pytest.raises(ValueError, match="env/s-air/aq1"):
        sim.run(broker_settings(secure_broker), rounds=1)


def test_an_edge_gateway_works_with_its_own_credentials(
    secure_broker: MosquittoBroker,
    trust: Trust,
    peers: Callable[..., Peer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = peers(INGEST).connected()
    assert not hub.subscribe("fs/v1/gw/gw-b/#").is_failure
    monkeypatch.setenv("FARSIGHT_EDGE_KEY", secrets.token_hex(32))
    monkeypatch.setenv("FARSIGHT_EDGE_PASSWORD", trust.secrets["gw/gw-b"].password)
    mn = "42050000000001"
    raw = {
        "gateway_id": "gw-b",
        "data_dir": str(tmp_path / "edge"),
        "uplink": {
            "host": secure_broker.host,
            "port": secure_broker.port,
            "username": "gw/gw-b",
            "keepalive_s": 5,
        },
        "collectors": {
            "hj212_tcp": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": 0,
                "devices": {mn: {"dept": "env", "site": "s-stack", "device": "cems1"}},
            }
        },
        "health": {"interval_s": 0.5},
    }
    gateway = EdgeService(parse_gateway_config(raw), raw)
    gateway.start()
    try:
        logger = Hj212Logger("127.0.0.1", gateway.collectors["hj212_tcp"].port, mn)
        for _ in range(5):
            logger.send_next()
        logger.close()
        wait_for(lambda: hub.received("fs/v1/gw/gw-b/batch"), "the gateway's batch")
        wait_for(lambda: hub.received("fs/v1/gw/gw-b/status"), "the gateway's heartbeat")
        # The hub's identity pushes a configuration; the gateway reads it and acknowledges it.
        config = {"version": 2, "config": {"buffer": {"max_bytes": 4096}}}
        assert not hub.publish(
            "fs/v1/gw/gw-b/config", json.dumps(config).encode(), retain=True
        ).is_failure
        ack = wait_for(lambda: hub.received("fs/v1/gw/gw-b/config/ack"), "the config's ack")
        assert json.loads(ack[-1])["status"] == "applied"
        assert gateway.buffer.settings.max_bytes == 4096
        # One CONNECT, the first: nothing the ACL refused threw the gateway off.
        assert gateway.uplink.reconnects == 1
    finally:
        gateway.stop()
