"""End to end over a real mosquitto: HJ 212 frames flagged M (maintenance) far over the permit
raise nothing through the default pack; the same values flagged N raise the permit alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.model import Alert
from app.roles.ingest import IngestService
from farsight.hj212 import build_data_frame
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from farsight.settings import Settings
from tests.conftest import wait_until
from tests.e2e.test_ingest_mqtt import settings_for
from tests.factories import registry

pytestmark = pytest.mark.e2e

TOPIC = "fs/v1/env/yc-stack-1/cems1/hj212"

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
"""Measure time of the first frame: within the backfill horizon of a receive time of now."""


def publish_frames(settings: Settings, minutes: range, flag: str) -> None:
    pub = make_client(settings.broker, f"test-logger-{flag}", persistent=False)
    tracker = PublishTracker(pub)
    connect(pub, settings.broker, persistent=False)
    wait_connected(pub)
    for m in minutes:
        frame = build_data_frame(
            mn="42050000000001",
            ts=START + timedelta(minutes=m),
            # Permit 35 mg/m3; the values vary, as real ones do (a constant is a flat line).
            values={"a21026": {"Rtd": 80.0 + m % 7, "Flag": flag}},
        )
        tracker.add(pub.publish(TOPIC, frame, qos=1))
    assert tracker.wait(30)
    pub.disconnect()
    pub.loop_stop()


def permit_alerts(service: IngestService) -> list[Alert]:
    return [a for a in service.alerts.list(limit=1000)[0] if a.site == "yc-stack-1"]


def test_maintenance_flagged_exceedance_raises_nothing_and_a_normal_one_does(
    fresh_mosquitto, data_dir: Path
) -> None:
    s = settings_for(fresh_mosquitto, data_dir)
    service = IngestService(s, registry())
    service.start()
    try:
        publish_frames(s, range(10), "M")
        wait_until(lambda: service.readings.count() == 10, what="10 flagged readings stored")
        # Other sites fall silent in event time (site-offline); only the stack's limits matter.
        assert permit_alerts(service) == []
        publish_frames(s, range(10, 20), "N")
        wait_until(lambda: service.readings.count() == 20, what="20 readings stored")
        wait_until(lambda: permit_alerts(service), what="the permit alert from normal readings")
        [alert] = permit_alerts(service)
        assert (alert.rule_id, alert.device, alert.metric) == (
            "cems-so2-over-permit",
            "cems1",
            "so2",
        )
        # Counted from the first normal reading (minute 10), never from the M ones.
        assert alert.starts_at >= START + timedelta(minutes=10)
    finally:
        service.stop()
