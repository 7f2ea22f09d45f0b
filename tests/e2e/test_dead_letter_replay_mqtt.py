"""Messages a real ingest refused over a real mosquitto are replayed by `farsight deadletters
replay` after the registry is fixed: JSON readings of a site that was not registered yet and
HJ 212 frames whose MN the registry had wrong are stored exactly once, a frame whose CRC fails
stays refused with its reason, and a second replay stores nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from app.cli import main as farsight
from app.roles.ingest import IngestService
from farsight.hj212 import build_data_frame
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from ingest.store import ReadingStore
from tests.conftest import wait_until
from tests.e2e.test_ingest_mqtt import settings_for
from tests.factories import T0, registry
from tests.ingest.test_dead_letter_replay import NEW_SITE, fixed_doc

pytestmark = pytest.mark.e2e

REAL_MN = "42050000000009"
"""The MN the stack's data logger really sends; the registry had 42050000000001."""


def frame(minute: int) -> bytes:
    return build_data_frame(
        mn=REAL_MN,
        ts=T0 + timedelta(minutes=minute),
        values={"a21026": {"Rtd": 20.0 + minute, "Flag": "N"}},
    )


def test_refused_messages_are_stored_once_after_the_registry_is_fixed(
    mosquitto,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = settings_for(mosquitto, data_dir)
    svc = IngestService(s, registry())
    svc.start()
    try:
        pub = make_client(s.broker, "test-pub-replay", persistent=False)
        tracker = PublishTracker(pub)
        connect(pub, s.broker, persistent=False)
        wait_connected(pub)
        for minute in range(3):
            body = {"ts": (T0 + timedelta(minutes=minute)).isoformat(), "metrics": {"pm25": 30}}
            topic = f"fs/v1/env/{NEW_SITE}/aq1/reading"
            tracker.add(pub.publish(topic, json.dumps(body), qos=1))
            tracker.add(pub.publish("fs/v1/env/yc-stack-1/cems1/hj212", frame(minute), qos=1))
        broken = frame(9)[:-6] + b"0000\r\n"
        tracker.add(pub.publish("fs/v1/env/yc-stack-1/cems1/hj212", broken, qos=1))
        assert tracker.wait(10)
        pub.disconnect()
        pub.loop_stop()
        wait_until(lambda: svc.readings.dead_letter_count() == 7, what="7 dead letters")
        reasons = sorted(d.reason for d in svc.readings.dead_letters())
        assert reasons == ["bad_crc"] + ["mn_mismatch"] * 3 + ["unknown_site"] * 3
        assert svc.readings.count() == 0
    finally:
        svc.stop()

    doc = fixed_doc()
    stack = next(x for x in doc["sites"] if x["id"] == "yc-stack-1")
    stack["devices"][0]["mn"] = REAL_MN
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("FARSIGHT__DATA_DIR", str(data_dir))
    replay = ["deadletters", "replay", "--db", str(s.database), "--registry", str(sites), "--json"]

    assert farsight(replay) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    outcomes = sorted((r["outcome"], r["stored"], r["reason"]) for r in results)
    assert outcomes == [("failed", 0, "bad_crc")] + [("stored", 1, "")] * 6

    store = ReadingStore(s.database)
    try:
        assert store.count(site=NEW_SITE, metric="pm25") == 3
        assert store.count(site="yc-stack-1", metric="so2") == 3
        assert store.dead_letter_count() == 7
    finally:
        store.close()

    assert farsight(replay) == 0  # only the broken frame is pending, and it still fails
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["outcome"], r["reason"]) for r in again] == [("failed", "bad_crc")]
    assert farsight([*replay, "--all"]) == 0  # every letter: nothing is stored twice
    forced = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(r["stored"] for r in forced) == 0
    assert sorted(r["outcome"] for r in forced) == ["duplicate"] * 6 + ["failed"]
    store = ReadingStore(s.database)
    try:
        assert store.count() == 6
    finally:
        store.close()
