"""Ingest over a real mosquitto: QoS 1, persistent session, restart without loss, idempotency."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from app.roles.ingest import IngestService
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from farsight.settings import Settings
from tests.conftest import wait_until
from tests.factories import T0, registry

pytestmark = pytest.mark.e2e


def settings_for(broker, data_dir: Path, protocol: str = "5") -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "protocol": protocol,
                "embedded": "none",
            },
            # A client id of its own: tests sharing a broker must not share a persistent
            # session (one test's leftovers would reach the next test's ingest).
            "ingest": {"client_id": f"test-ingest-{uuid.uuid4().hex[:12]}"},
        }
    )


def publish_readings(settings: Settings, start: int, n: int) -> None:
    pub = make_client(settings.broker, f"test-pub-{start}", persistent=False)
    tracker = PublishTracker(pub)
    connect(pub, settings.broker, persistent=False)
    wait_connected(pub)
    for i in range(start, start + n):
        body = {
            "ts": (T0 + timedelta(seconds=i)).isoformat(),
            "metrics": {"pm25": 20 + i % 7},
            "seq": i,
        }
        tracker.add(pub.publish("fs/v1/env/yc-aq-1/aq1/reading", json.dumps(body), qos=1))
    assert tracker.wait(30)
    pub.disconnect()
    pub.loop_stop()


def test_start_returns_once_the_broker_has_the_subscription(mosquitto, data_dir: Path) -> None:
    # Connected is not consuming: a message published between the CONNACK and the SUBACK is not
    # routed to a new session. start() waits for the SUBACK, so the first publish is stored.
    s = settings_for(mosquitto, data_dir)
    svc = IngestService(s, registry())
    assert not svc.consumer.subscribed
    svc.start()
    try:
        assert svc.consumer.subscribed
        publish_readings(s, 0, 1)
        wait_until(lambda: svc.readings.count() == 1, what="the first reading stored")
    finally:
        svc.stop()


def test_readings_published_while_ingest_is_down_are_all_stored_after_it_returns(
    fresh_mosquitto, data_dir: Path
) -> None:
    s = settings_for(fresh_mosquitto, data_dir)
    reg = registry()
    first = IngestService(s, reg)
    first.start()
    publish_readings(s, 0, 300)
    wait_until(lambda: first.readings.count() == 300, what="300 readings stored")
    first.stop()

    publish_readings(s, 300, 500)  # nobody is consuming: the broker queues them for the session

    second = IngestService(s, reg)
    second.start()
    try:
        wait_until(lambda: second.readings.count() == 800, timeout=30, what="800 readings stored")
        seqs = [
            r["seq"] for r in second.readings.series("yc-aq-1", "pm25", T0, T0 + timedelta(hours=1))
        ]
        assert seqs == list(range(800))  # every reading, once, in order
        assert second.readings.dead_letter_count() == 0
    finally:
        second.stop()


def test_mqtt_311_persistent_session_works_too(fresh_mosquitto, data_dir: Path) -> None:
    s = settings_for(fresh_mosquitto, data_dir, protocol="3.1.1")
    reg = registry()
    svc = IngestService(s, reg)
    svc.start()
    svc.stop()
    publish_readings(s, 0, 100)
    svc = IngestService(s, reg)
    svc.start()
    try:
        wait_until(lambda: svc.readings.count() == 100, what="100 readings stored")
    finally:
        svc.stop()


def test_a_malformed_message_is_dead_lettered_and_ingest_keeps_going(
    mosquitto, data_dir: Path
) -> None:
    s = settings_for(mosquitto, data_dir)
    svc = IngestService(s, registry())
    svc.start()
    try:
        pub = make_client(s.broker, "test-pub-bad", persistent=False)
        tracker = PublishTracker(pub)
        connect(pub, s.broker, persistent=False)
        wait_connected(pub)
        tracker.add(pub.publish("fs/v1/env/yc-aq-1/aq1/reading", b"\xff\xfe garbage", qos=1))
        tracker.add(pub.publish("fs/v1/env/yc-stack-1/cems1/hj212", b"##0010QN=1\r\n", qos=1))
        body = {"ts": T0.isoformat(), "metrics": {"pm25": 12.5}}
        tracker.add(pub.publish("fs/v1/env/yc-aq-1/aq1/reading", json.dumps(body), qos=1))
        assert tracker.wait(10)
        pub.disconnect()
        pub.loop_stop()
        wait_until(
            lambda: svc.readings.count() == 1 and svc.readings.dead_letter_count() == 2,
            what="1 stored, 2 dead letters",
        )
        assert sorted(d.reason for d in svc.readings.dead_letters()) == ["not_utf8", "truncated"]
        assert svc.consumer.connected
    finally:
        svc.stop()


def test_messages_queued_for_ingest_survive_a_broker_restart(
    fresh_mosquitto, data_dir: Path
) -> None:
    s = settings_for(fresh_mosquitto, data_dir)
    reg = registry()
    svc = IngestService(s, reg)
    svc.start()
    svc.stop()
    publish_readings(s, 0, 200)
    fresh_mosquitto.stop()  # SIGTERM: mosquitto writes its persistence file
    fresh_mosquitto.start()
    svc = IngestService(s, reg)
    svc.start()
    try:
        wait_until(
            lambda: svc.readings.count() == 200,
            timeout=30,
            what="200 readings stored after the broker restart",
        )
    finally:
        svc.stop()
