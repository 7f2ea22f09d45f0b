"""Ingest over a real mosquitto refuses absurd, unknown and oversized payloads with reasons while
valid traffic flows (issue 15, "At the door": values, metrics, caps)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from app.roles.ingest import IngestService
from farsight.hj212 import build_data_frame
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from farsight.settings import Settings
from tests.conftest import wait_until
from tests.factories import T0, registry

pytestmark = pytest.mark.e2e

AQ = "fs/v1/env/yc-aq-1/aq1/reading"
STACK = "fs/v1/env/yc-stack-1/cems1/hj212"


def reading(second: int, metrics: dict[str, object]) -> bytes:
    body = {"ts": (T0 + timedelta(seconds=second)).isoformat(), "metrics": metrics}
    return json.dumps(body).encode()


def test_absurd_unknown_and_oversized_payloads_are_refused_while_valid_traffic_flows(
    mosquitto, data_dir: Path
) -> None:
    s = Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "broker": {"host": mosquitto.host, "port": mosquitto.port, "embedded": "none"},
            "ingest": {"client_id": "test-ingest-admission", "dead_letters": {"keep_bytes": 1024}},
        }
    )
    valid = [(AQ, reading(i, {"pm25": 20.0 + i, "pm10": 40.0})) for i in range(20)]
    bad = [
        # Impossible values beside a good one: the good one is stored.
        (AQ, reading(100, {"pm25": -1e308, "pm10": 41.0})),
        (AQ, reading(101, {"pm25": 1e308, "pm10": 42.0})),
        (AQ, reading(102, {"pm25": -3.5, "pm10": 43.0})),
        (AQ, b'{"ts": "2026-11-25T00:02:00+00:00", "metrics": {"pm25": NaN}}'),
        # 25 names the device does not report, beside one it does.
        (AQ, reading(103, {"pm25": 30.0, **{f"bogus{i}": 1.0 for i in range(25)}})),
        # 12,000 metric names: over the 64 KiB payload cap.
        (AQ, reading(104, {f"m{i}": 1.0 for i in range(12_000)})),
        # 301 names in under 64 KiB: over the metrics-per-message cap.
        (AQ, reading(105, {f"m{i}": 1.0 for i in range(301)})),
        # An HJ 212 frame with a negative SO2 and a code outside the catalogue: NOx is stored.
        (
            STACK,
            build_data_frame(
                mn="42050000000001",
                ts=T0,
                values={
                    "a21026": {"Rtd": "-12.0", "Flag": "N"},
                    "a21002": {"Rtd": "31.5", "Flag": "N"},
                    "a99999": {"Rtd": "1.0", "Flag": "N"},
                },
            ),
        ),
    ]
    svc = IngestService(s, registry())
    svc.start()
    try:
        pub = make_client(s.broker, "test-pub-admission", persistent=False)
        tracker = PublishTracker(pub)
        connect(pub, s.broker, persistent=False)
        wait_connected(pub)
        # Valid traffic interleaved with the bad.
        for i, (topic, payload) in enumerate(valid):
            tracker.add(pub.publish(topic, payload, qos=1))
            if i < len(bad):
                tracker.add(pub.publish(bad[i][0], bad[i][1], qos=1))
        assert tracker.wait(30)
        pub.disconnect()
        pub.loop_stop()
        store = svc.readings
        # 40 valid readings, pm10 of the three absurd messages, pm25 beside the unknown names,
        # NOx of the frame.
        wait_until(
            lambda: store.count() == 45 and store.dead_letter_count() == 9,
            what="45 readings stored, 9 dead letters",
        )
        letters = store.dead_letters()
        assert sorted(d.reason for d in letters) == [
            "bad_value",
            "out_of_range",
            "out_of_range",
            "out_of_range",
            "out_of_range",
            "too_large",
            "too_many_metrics",
            "unknown_metric",
            "unknown_metric",
        ]
        details = {d.detail for d in letters}
        assert "pm25=-1e+308 outside 0..20000 ug/m3" in details
        assert "pm25=1e+308 outside 0..20000 ug/m3" in details
        assert "pm25=-3.5 outside 0..20000 ug/m3" in details
        assert "so2=-12 outside 0..30000 mg/m3" in details
        assert "not in the device's registered metrics: a99999" in details
        assert any(d.startswith("not in the device's registered metrics: bogus0") for d in details)
        # Only registered metrics were stored, and no value outside its range.
        latest = {(r["site"], r["metric"]): r["value"] for r in store.latest()}
        assert latest == {
            ("yc-aq-1", "pm25"): 30.0,  # the one beside the unknown names is the newest
            ("yc-aq-1", "pm10"): 43.0,
            ("yc-stack-1", "nox"): 31.5,
        }
        # The oversized payload keeps its first bytes, its length and its hash.
        (big,) = [d for d in letters if d.reason == "too_large"]
        assert big.truncated and len(big.payload) == 1024 and big.size == len(bad[5][1])
        # The counters move after the batch's transaction commits, so they may trail the store.
        wait_until(
            lambda: svc.pipeline.stats.rejected_by_reason.get("out_of_range") == 4,
            what="4 out-of-range refusals counted",
        )
        assert svc.consumer.connected
    finally:
        svc.stop()
