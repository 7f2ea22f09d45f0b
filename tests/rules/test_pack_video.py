"""The default pack's video rules: their own rule tests, and detections through the real
ingest pipeline (topic + JSON payload -> detection codec -> SQLite -> engine -> AlertStore)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.store import AlertStore
from farsight.db import Database
from farsight.registry import load_registry
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from rules.cli import pack_test_files
from rules.engine import Engine
from rules.loader import load_ruleset
from rules.testing import format_result, run_test_file

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
SMOKE_TOPIC = "fs/v1/env/yc-cs-dongzhan/cam1/detection"
COVER_TOPIC = "fs/v1/env/yc-cems-xiaoting-power/cam1/detection"
FRAME = "ab" * 32


def test_video_pack_rule_tests_pass() -> None:
    (path,) = [f for f in pack_test_files() if f.name == "video.test.yaml"]
    result = run_test_file(path)
    assert result.passed, format_result(result)
    assert len(result.cases) == 6


@pytest.fixture
def pipe(tmp_path: Path):
    db = Database.open(tmp_path / "farsight.db")
    readings, alerts = ReadingStore(db), AlertStore(db)
    reg = load_registry()
    # The whole default pack on the demo registry: what a hub runs out of the box.
    yield IngestPipeline(reg, readings, Engine(load_ruleset(), reg), alerts), readings, alerts
    readings.close()
    alerts.close()


def detection(topic: str, second: int, kind: str, confidence: float, **extra: object) -> Message:
    body = {
        "ts": (T0 + timedelta(seconds=second)).isoformat(),
        "kind": kind,
        "confidence": confidence,
        **extra,
    }
    # Received a second after it was seen: live, within the backfill horizon.
    return Message(topic, json.dumps(body).encode(), T0 + timedelta(seconds=second + 1))


def smoke(second: int, confidence: float = 0.87, **extra: object) -> Message:
    return detection(
        SMOKE_TOPIC,
        second,
        "smoke",
        confidence,
        bbox=[120, 40, 200, 160],
        zone="gate",
        evidence=[FRAME],
        **extra,
    )


def test_construction_site_smoke_alerts_after_30_s_with_its_zone(pipe) -> None:
    p, readings, alerts = pipe
    for second in range(0, 30, 5):
        res = p.process([smoke(second)])
        assert (res.stored, res.rejected, res.signals) == (1, 0, ())
    assert alerts.list()[1] == 0
    res = p.process([smoke(30)])
    (sig,) = res.signals
    assert (sig.rule_id, sig.status, sig.site, sig.device, sig.metric) == (
        "video-construction-smoke",
        "firing",
        "yc-cs-dongzhan",
        "cam1",
        "video_smoke",
    )
    assert sig.item_code == "ENV-VIDEO-SMOKE" and sig.value == 0.87
    (alert,) = alerts.list()[0]
    assert alert.rule_id == "video-construction-smoke" and alert.activity == "firing"
    assert (
        alert.labels["zone"] == "gate"
        and "evidence" not in alert.labels
        and alert.evidence == (FRAME,)
    )
    assert readings.count(site="yc-cs-dongzhan", metric="video_smoke") == 7


def test_cleared_smoke_resolves_after_keep_firing_for(pipe) -> None:
    p, _, alerts = pipe
    for second in range(0, 45, 5):
        p.process([smoke(second)])
    (alert,) = alerts.list()[0]
    # The analyser's end-of-condition finding: confidence kept, state cleared -> value 0.
    p.process([smoke(second, 1.0, detail={"state": "cleared"}) for second in range(45, 100, 5)])
    assert (
        alerts.get(alert.id).activity == "firing"
    )  # kept firing 1 min after the last smoke (40 s)
    p.process([smoke(100, 1.0, state="cleared")])
    assert alerts.get(alert.id).activity == "resolved"


def test_a_covered_stack_camera_is_a_suspected_cover_up(pipe) -> None:
    p, _, alerts = pipe
    p.process([detection(COVER_TOPIC, s, "camera_covered", 0.95) for s in range(0, 120, 10)])
    assert alerts.list()[1] == 0
    res = p.process([detection(COVER_TOPIC, 120, "camera_covered", 0.95)])
    (sig,) = res.signals
    assert sig.rule_id == "video-cems-camera-covered" and sig.severity == "major"
    assert "suspected attempt to hide something" in dict(sig.annotations)["summary"]


def test_bad_detections_are_dead_letters_not_crashes(pipe) -> None:
    p, readings, _ = pipe
    bad = [
        detection(SMOKE_TOPIC, 0, "unicorn", 0.9),
        detection(SMOKE_TOPIC, 0, "smoke", 1.5),
        detection(SMOKE_TOPIC, 0, "smoke", 0.9, evidence=["not-a-hash"]),
        detection(SMOKE_TOPIC, 0, "smoke", 0.9, bbox=[1, 2, 0, 4]),
        Message(SMOKE_TOPIC, b"{nope"),
    ]
    res = p.process(bad)
    assert (res.stored, res.rejected) == (0, 5)
    assert p.stats.rejected_by_reason == {
        "bad_kind": 1,
        "bad_confidence": 1,
        "bad_evidence": 1,
        "bad_bbox": 1,
        "not_json": 1,
    }
    assert readings.count() == 0
