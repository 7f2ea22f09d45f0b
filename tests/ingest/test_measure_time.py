"""Measure times at the door: readings ahead of their receipt are refused, history past the
backfill horizon is stored but not judged live, and no message moves the engine's clock or the
escalation clock (a real SQLite file, the real engine and alert store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerts.store import AlertStore
from farsight.clock import ManualClock
from farsight.db import Database
from farsight.hj212 import build_data_frame
from farsight.settings import IngestTimeSettings, Settings
from ingest.measure_time import FUTURE_TIMESTAMP, future_refusal, live_flags
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from rules.engine import Engine
from rules.loader import parse_rules
from rules.state import RuleStateStore
from tests.factories import T0, reading, registry

RULES = {
    "rules": [
        {"id": "pm25", "select": {"metric": "pm25"}, "threshold": 75, "for": "2m"},
        {"id": "so2", "select": {"metric": "so2"}, "threshold": "site_limit"},
    ]
}
NOW = T0 + timedelta(hours=1)
"""The wall clock of these tests, and when ingest received their messages."""

AQ = "fs/v1/env/yc-aq-1/aq1/reading"
CEMS = "fs/v1/env/yc-stack-1/cems1/hj212"


class Parts:
    def __init__(self, db: Database, time: IngestTimeSettings, tickers: list[datetime]) -> None:
        reg = registry()
        self.clock = ManualClock(NOW)
        self.readings, self.alerts = ReadingStore(db), AlertStore(db, clock=self.clock)
        self.engine = Engine(parse_rules(RULES), reg)
        self.ticked = tickers
        self.pipe = IngestPipeline(
            reg,
            self.readings,
            self.engine,
            self.alerts,
            rule_state=RuleStateStore(db),
            tickers=(tickers.append,),
            time=time,
            clock=self.clock,
        )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.open(tmp_path / "farsight.db")
    yield d
    d.close()


def parts(db: Database, **time: object) -> Parts:
    return Parts(db, IngestTimeSettings.model_validate(time), [])


def aq(ts: datetime, pm25: float, received: datetime = NOW) -> Message:
    body = {"ts": ts.isoformat(), "metrics": {"pm25": pm25}}
    return Message(AQ, json.dumps(body).encode(), received)


def cems(ts: datetime, so2: float, received: datetime = NOW) -> Message:
    frame = build_data_frame(
        mn="42050000000001", ts=ts, values={"a21026": {"Rtd": so2, "Flag": "N"}}
    )
    return Message(CEMS, frame, received)


def test_a_frame_dated_2099_is_a_dead_letter_naming_its_time_and_the_receive_time(
    db: Database,
) -> None:
    p = parts(db)
    res = p.pipe.process([cems(datetime(2099, 12, 31, tzinfo=UTC), 500)])
    assert (res.stored, res.rejected, res.signals) == (0, 1, ())
    (letter,) = p.readings.dead_letters()
    assert letter.reason == FUTURE_TIMESTAMP == "future_timestamp"
    assert "2099-12-3" in letter.detail and NOW.isoformat() in letter.detail
    assert "device kind cems" in letter.detail and "300 s" in letter.detail
    assert p.engine.watermark is None and p.engine.stats.readings == 0
    assert p.pipe.stats.rejected_by_reason == {"future_timestamp": 1}


def test_the_allowed_skew_is_per_device_kind_and_judged_against_the_receive_time(
    db: Database,
) -> None:
    p = parts(db, max_future_skew_s=300, future_skew_by_kind={"cems": 3600})
    half_hour = NOW + timedelta(minutes=30)
    res = p.pipe.process(
        [
            cems(half_hour, 10),  # cems clocks may run an hour ahead
            aq(half_hour, 10),  # an air station's 5 minutes
            aq(NOW + timedelta(minutes=4), 10),
            # Measured long "after" the wall clock, but received later still: the receive time
            # judges (a message queued by the broker while ingest was down is not refused).
            aq(NOW + timedelta(hours=3), 10, received=NOW + timedelta(hours=3, seconds=1)),
        ]
    )
    assert (res.stored, res.rejected) == (3, 1)
    (letter,) = p.readings.dead_letters()
    assert letter.topic == AQ and "30 min after" in letter.detail


def test_a_kind_with_less_skew_than_the_default_is_held_to_it(db: Database) -> None:
    # The pipeline looks a device's kind up only past the least skew of any kind: a kind below
    # the default must still be found and applied.
    p = parts(db, max_future_skew_s=300, future_skew_by_kind={"air_quality": 60})
    two_min = NOW + timedelta(minutes=2)
    res = p.pipe.process([cems(two_min, 10), aq(two_min, 10), aq(NOW + timedelta(seconds=59), 10)])
    assert (res.stored, res.rejected) == (2, 1)  # the frame's SO2 and the air station's 59 s
    (letter,) = p.readings.dead_letters()
    assert letter.topic == AQ and "device kind air_quality" in letter.detail


def test_history_past_the_backfill_horizon_is_stored_but_never_moves_live_rule_state(
    db: Database,
) -> None:
    p = parts(db, backfill_horizon_s=6 * 3600)
    p.pipe.process([aq(NOW - timedelta(minutes=m), 20) for m in (3, 2, 1)])
    newest = p.engine.watermark
    # A logger's memory from two days ago, all exceedances, arrives now.
    old = [aq(NOW - timedelta(days=2, minutes=m), 500) for m in range(10, 0, -1)]
    res = p.pipe.process(old)
    assert res.stored == 10 and res.signals == ()
    assert len(p.readings.series("yc-aq-1", "pm25", NOW - timedelta(days=3), NOW)) == 13
    assert p.pipe.stats.past_horizon == 10
    assert p.engine.watermark == newest and p.engine.stats.late == 0
    assert p.engine.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "inactive"
    # Live data is judged as before: an exceedance of 2 minutes fires.
    res = p.pipe.process([aq(NOW + timedelta(seconds=s), 120, NOW) for s in (0, 60, 120)])
    assert [s.status for s in res.signals] == ["firing"]
    p.pipe.tick()
    assert p.readings.counters()[("ingest_readings_past_horizon", "")] == 10


def test_a_message_whose_receive_time_lies_cannot_move_the_engine_clock(db: Database) -> None:
    p = parts(db)
    # The door judges against the message's receive time, which a broken consumer clock could
    # set to 2099 too: the engine's own bound (the wall clock plus the skew) still holds.
    forged = datetime(2099, 12, 31, tzinfo=UTC)
    res = p.pipe.process([aq(forged, 500, received=forged)])
    assert res.stored == 1 and res.signals == ()
    assert p.engine.watermark is None and p.engine.stats.future == 1
    res = p.pipe.process([aq(NOW + timedelta(minutes=m), 120) for m in range(3)])
    assert [s.status for s in res.signals] == ["firing"] and p.engine.stats.late == 0
    p.pipe.tick()
    assert p.readings.counters()[("rule_future_readings", "")] == 1


def test_tickers_run_on_the_wall_clock_not_on_the_readings_time(db: Database) -> None:
    p = parts(db)
    p.pipe.process([aq(T0 - timedelta(minutes=5), 20), aq(NOW + timedelta(minutes=4), 20)])
    assert p.engine.watermark == NOW + timedelta(minutes=4)
    p.pipe.tick()
    p.clock.advance(timedelta(minutes=1))
    p.pipe.tick()
    assert p.ticked == [NOW, NOW + timedelta(minutes=1)]


def test_the_engine_drops_samples_after_its_bound_before_they_touch_state() -> None:
    e = Engine(parse_rules(RULES), registry())
    bound = T0 + timedelta(minutes=10)
    future = reading("pm25", 500, 60 * 24 * 365)
    assert e.evaluate([future], not_after=bound) == []
    assert e.watermark is None and e.stats.future == 1 and e.snapshot() == []
    sigs = e.evaluate([reading("pm25", 120, m) for m in range(3)], not_after=bound)
    assert [s.status for s in sigs] == ["firing"] and e.stats.late == 0


def test_pure_judgements() -> None:
    r = reading("pm25", 1, 10)
    assert future_refusal([r], T0 + timedelta(minutes=5), 300, None) is None
    refusal = future_refusal([r], T0 + timedelta(minutes=4), 300, None)
    assert refusal is not None and refusal.reason == FUTURE_TIMESTAMP
    assert "6 min after" in refusal.detail and "(default," in refusal.detail
    assert future_refusal([], T0, 0, None) is None
    r0 = reading("pm25", 1, 0)
    assert live_flags([r0], r0.ts + timedelta(hours=2), 3600) == [False]
    assert live_flags([r0], r0.ts + timedelta(minutes=59), 3600) == [True]
    # Per reading of a message, also exactly on the horizon.
    received = T0 + timedelta(hours=1, minutes=10)
    readings = [reading("pm25", 1, m) for m in (0, 9, 10, 11, 70)]
    assert live_flags(readings, received, 3600) == [False, False, True, True, True]


def test_the_time_settings_have_bounds_named_by_key_path() -> None:
    t = Settings.model_validate({}).ingest.time
    assert (t.max_future_skew_s, t.backfill_horizon_s) == (300.0, 86_400.0)
    assert t.skew_for("cems") == 300.0 and t.widest_skew_s == 300.0
    t = IngestTimeSettings(max_future_skew_s=60, future_skew_by_kind={"cems": 900})
    assert (t.skew_for("cems"), t.skew_for("wim"), t.skew_for(None)) == (900, 60, 60)
    assert t.widest_skew_s == 900
    for bad in (
        {"max_future_skew_s": -1},
        {"max_future_skew_s": 86_401},
        {"backfill_horizon_s": 1},
        {"future_skew_by_kind": {"cems": -5}},
        {"surprise": 1},
    ):
        with pytest.raises(ValidationError) as exc:
            Settings.model_validate({"ingest": {"time": bad}})
        assert "ingest.time" in str(exc.value) or "time." in str(exc.value)
