"""The 2099 frame over a real mosquitto: one HJ 212 frame dated 2099-12-31 among valid traffic is
a dead letter, no open alert escalates, and the readings after it are judged (issue 15)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from app.roles.ingest import IngestService
from farsight.hj212 import build_data_frame
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from farsight.settings import Settings
from tests.conftest import wait_until
from tests.factories import registry, signal

pytestmark = pytest.mark.e2e

AQ = "fs/v1/env/yc-aq-1/aq1/reading"
CEMS = "fs/v1/env/yc-stack-1/cems1/hj212"
MN = "42050000000001"
RULES = {
    "rules": [
        {"id": "so2", "select": {"metric": "so2"}, "threshold": "site_limit", "severity": "major"},
        {"id": "pm25", "select": {"metric": "pm25"}, "threshold": 75, "for": "2m"},
    ]
}


def settings_for(broker, data_dir: Path) -> Settings:
    rules = data_dir / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES), encoding="utf-8")
    return Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "broker": {"host": broker.host, "port": broker.port, "embedded": "none"},
            "ingest": {"client_id": "test-ingest-future"},
            "rules": {"files": [str(rules)], "default_pack": False, "tick_s": 0.1},
        }
    )


def frame(ts: datetime, so2: float) -> bytes:
    return build_data_frame(mn=MN, ts=ts, values={"a21026": {"Rtd": so2, "Flag": "N"}})


def test_a_frame_dated_2099_is_refused_nothing_escalates_and_later_readings_are_judged(
    mosquitto, data_dir: Path
) -> None:
    s = settings_for(mosquitto, data_dir)
    svc = IngestService(s, registry())
    # Open alerts with handling deadlines, as on the day the frame arrived.
    opened = svc.alert_pipeline.apply(
        [signal(fingerprint=f"open-{i}", site=site) for i, site in enumerate(["yc-aq-1"] * 4)]
        + [signal(fingerprint="open-stack", site="yc-stack-1", value=120.0)]
    )
    assert len(opened) == 5 and all(a.due_at is not None for a in opened)
    svc.start()
    try:
        # Whole seconds: HJ 212's DataTime carries no fraction.
        now = datetime.now(UTC).replace(microsecond=0)
        pub = make_client(s.broker, "test-pub-future", persistent=False)
        tracker = PublishTracker(pub)
        connect(pub, s.broker, persistent=False)
        wait_connected(pub)
        for m in (3, 2, 1):
            body = {"ts": (now - timedelta(minutes=m)).isoformat(), "metrics": {"pm25": 20}}
            tracker.add(pub.publish(AQ, json.dumps(body), qos=1))
            tracker.add(pub.publish(CEMS, frame(now - timedelta(minutes=m), 10.0), qos=1))
        tracker.add(pub.publish(CEMS, frame(datetime(2099, 12, 31, 23, tzinfo=UTC), 10.0), qos=1))
        # After it, the stack exceeds its SO2 limit (35): that must still raise its alert.
        tracker.add(pub.publish(CEMS, frame(now, 80.0), qos=1))
        body = {"ts": now.isoformat(), "metrics": {"pm25": 22}}
        tracker.add(pub.publish(AQ, json.dumps(body), qos=1))
        assert tracker.wait(10)
        pub.disconnect()
        pub.loop_stop()

        def so2_alerts() -> list:
            return [a for a in svc.alerts.list(limit=100)[0] if a.rule_id == "so2"]

        # The last reading may come in a later batch than the SO2 frame: wait for it as well.
        wait_until(
            lambda: (
                svc.readings.dead_letter_count() == 1 and so2_alerts() and svc.readings.count() >= 8
            ),
            what="the 2099 frame dead-lettered, the SO2 exceedance alerted, 8 readings stored",
        )
        (letter,) = svc.readings.dead_letters()
        assert letter.reason == "future_timestamp" and letter.topic == CEMS
        assert "2099-12-31" in letter.detail and "after receive time" in letter.detail
        (so2,) = so2_alerts()
        assert so2.site == "yc-stack-1" and so2.value == 80.0
        assert svc.readings.count() == 8  # 3 + 3 before, 2 after: everything but the frame
        assert svc.engine.stats.late == 0 and svc.engine.stats.future == 0
        assert svc.engine.watermark is not None and svc.engine.watermark <= now
        # Several periodic ticks (escalation, silences) run after the frame was handled.
        ticks = svc.pipeline.stats.ticks
        wait_until(lambda: svc.pipeline.stats.ticks >= ticks + 3, what="three more ticks")
        for a in opened:
            after = svc.alerts.get(a.id)
            assert after.escalation == 0 and after.due_at == a.due_at, after
            assert "escalated" not in {e.action for e in svc.alerts.events(a.id)}
    finally:
        svc.stop()
