"""The gateway service in this process: HJ 212 loggers through to the hub, heartbeat, and remote
configuration (validate, apply, roll back, acknowledge) over a real central broker."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import parse_gateway_config
from edge.remote_config import load_applied
from edge.service import EdgeService
from simulators.gateway_site import Hj212Logger
from tests.conftest import wait_until

MN = "42050000000001"


@pytest.fixture
def gateway(central_broker, tmp_path: Path, gateway_key: str, monkeypatch):
    monkeypatch.setenv("FARSIGHT_EDGE_KEY", gateway_key)
    raw = {
        "gateway_id": "gw-test",
        "data_dir": str(tmp_path / "edge"),
        "uplink": {"host": central_broker.host, "port": central_broker.port, "keepalive_s": 5},
        "collectors": {
            "hj212_tcp": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": 0,
                "devices": {MN: {"dept": "env", "site": "yc-stack-1", "device": "cems1"}},
            }
        },
        "health": {"interval_s": 0.5},
    }
    svc = EdgeService(parse_gateway_config(raw), raw)
    svc.start()
    yield svc
    svc.stop()


def _publish_retained(broker, topic: str, doc: dict) -> None:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-hub-config")
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.publish(topic, json.dumps(doc), qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def test_hj212_loggers_reach_the_hub_through_the_gateway(gateway, hub, status) -> None:
    logger = Hj212Logger("127.0.0.1", gateway.collectors["hj212_tcp"].port, MN)
    for _ in range(30):
        logger.send_next()
    logger.close()
    wait_until(lambda: hub.count() == 30, timeout=30, what="30 SO2 readings at the hub")
    assert hub.service.readings.count(site="yc-stack-1", metric="so2") == 30
    wait_until(
        lambda: (
            status.last
            and status.last["buffer"]["depth"] == 0
            and status.last["buffer"]["acked"] == 30
        ),
        timeout=10,
        what="a heartbeat after the drain",
    )
    beat = status.last
    assert beat["state"] == "online" and beat["collectors"] == {"hj212_tcp": "listening"}
    assert set(beat["system"]) == {"cpu_pct", "mem_pct", "disk_pct"}
    assert {"depth", "bytes", "oldest_age_s"} <= set(beat["buffer"]) and "clock_offset_s" in beat


def test_remote_configuration_is_validated_applied_rolled_back_and_acknowledged(
    gateway, central_broker, status, hub
) -> None:
    topic = "fs/v1/gw/gw-test/config"
    _publish_retained(
        central_broker,
        topic,
        {"version": 2, "config": {"buffer": {"max_bytes": 2048, "policy": "drop_oldest"}}},
    )
    wait_until(
        lambda: any(a["version"] == 2 for a in status.acks), timeout=15, what="the ack of version 2"
    )
    assert status.acks[-1] == {
        "gateway": "gw-test",
        "version": 2,
        "status": "applied",
        "applied_version": 2,
        "errors": [],
    }
    assert gateway.buffer.settings.max_bytes == 2048 and gateway.config.version == 2
    assert load_applied(gateway.config.data_dir)["version"] == 2  # a restart resumes it

    _publish_retained(
        central_broker,
        topic,
        {"version": 3, "config": {"buffer": {"policy": "drop_newest"}, "uplink": {"inflight": 0}}},
    )
    wait_until(
        lambda: any(a["version"] == 3 for a in status.acks), timeout=15, what="the ack of version 3"
    )
    ack = status.acks[-1]
    assert ack["status"] == "rejected" and ack["applied_version"] == 2
    assert any(e.startswith("buffer.policy") for e in ack["errors"]) and any(
        e.startswith("uplink.inflight") for e in ack["errors"]
    )

    # Valid, but cannot be applied: the new listening port is taken. The old listener stays.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        old_port = gateway.collectors["hj212_tcp"].port
        _publish_retained(
            central_broker,
            topic,
            {"version": 4, "config": {"collectors": {"hj212_tcp": {"port": port}}}},
        )
        wait_until(
            lambda: any(a["version"] == 4 for a in status.acks),
            timeout=15,
            what="the ack of version 4",
        )
    ack = status.acks[-1]
    assert (
        ack["status"] == "rolled_back"
        and ack["applied_version"] == 2
        and "cannot listen" in ack["errors"][0]
    )
    assert gateway.config.version == 2 and gateway.collectors["hj212_tcp"].state == "listening"
    # (The rolled-back collector listens again on a port of its own choosing: the config says 0.)
    assert old_port > 0

    n = len(status.acks)
    _publish_retained(central_broker, topic, {"version": 1, "config": {}})  # older: ignored
    wait_until(
        lambda: status.last and status.last["config_version"] == 2,
        timeout=10,
        what="a heartbeat with version 2",
    )
    assert len(status.acks) == n
    # The hub audited every outcome, in the hash-chained log.
    audit = hub.service.alerts.audit
    wait_until(
        lambda: len(audit.entries(subject="gateway/gw-test")) == 3,
        timeout=15,
        what="three audited config outcomes",
    )
    assert [e.action for e in audit.entries(subject="gateway/gw-test")] == [
        "edge.config.applied",
        "edge.config.rejected",
        "edge.config.rolled_back",
    ]
    assert audit.verify().ok


def test_local_rules_raise_site_alerts_on_the_site_broker(
    site_broker, central_broker, tmp_path: Path, gateway_key: str, monkeypatch
) -> None:
    import yaml

    from tests.factories import registry_doc

    monkeypatch.setenv("FARSIGHT_EDGE_KEY", gateway_key)
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump(registry_doc()))
    rules = tmp_path / "local-rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "id": "so2-local",
                        "select": {"metric": "so2", "device_kind": "cems"},
                        "op": ">",
                        "threshold": 5,
                        "for": 0,
                        "severity": "major",
                    }
                ]
            }
        )
    )
    raw = {
        "gateway_id": "gw-test",
        "data_dir": str(tmp_path / "edge"),
        "uplink": {"host": central_broker.host, "port": central_broker.port},
        "collectors": {
            "mqtt_local": {"enabled": True, "host": site_broker.host, "port": site_broker.port},
            "hj212_tcp": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": 0,
                "devices": {MN: {"dept": "env", "site": "yc-stack-1", "device": "cems1"}},
            },
        },
        "rules": {"enabled": True, "files": [str(rules)], "sites_file": str(sites)},
    }
    got: list[dict] = []
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="site-screen")
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.on_connect = lambda c, *a: c.subscribe("fs/v1/gw/gw-test/alert", qos=1)
    sub.connect(site_broker.host, site_broker.port)
    sub.loop_start()
    central_broker.stop()  # the uplink is down: the site still gets its alert
    svc = EdgeService(parse_gateway_config(raw), raw)
    svc.start()
    try:
        logger = Hj212Logger("127.0.0.1", svc.collectors["hj212_tcp"].port, MN)
        logger.send_next()
        logger.close()
        wait_until(lambda: got, timeout=15, what="a local alert on the site broker")
        assert (got[0]["rule_id"], got[0]["status"], got[0]["site"], got[0]["device"]) == (
            "so2-local",
            "firing",
            "yc-stack-1",
            "cems1",
        )
        assert svc.buffer.depth == 1  # and the frame waits for the uplink
    finally:
        svc.stop()
        sub.disconnect()
        sub.loop_stop()
