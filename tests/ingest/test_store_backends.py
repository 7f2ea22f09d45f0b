"""Readings, dead letters, counters and rule state behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from farsight.types import Reading
from ingest.store import DeadLetter, ReadingStore
from rules.state import RuleStateStore
from tests.factories import T0


def _reading(minutes: int, value: float, metric: str = "pm25") -> Reading:
    return Reading(
        site="yc-aq-1",
        device="aq1",
        metric=metric,
        value=value,
        unit="ug/m3",
        ts=T0 + timedelta(minutes=minutes),
    )


def test_readings_are_idempotent_and_stream_back_in_order(backend: str) -> None:
    store = ReadingStore(backend)
    batch = [_reading(m, 10.0 + m) for m in range(5)]
    assert store.write_batch(batch) == [True] * 5
    # A redelivery, with one new reading and one key twice in the same batch.
    assert store.write_batch(batch[:2] + [_reading(5, 99.5), _reading(5, 99.5)]) == [
        False,
        False,
        True,
        False,
    ]
    assert store.count() == 6 and store.count(metric="pm25") == 6
    got = list(store.iter_range(T0, T0 + timedelta(hours=1), batch=4))
    assert [r.value for r in got] == [10.0, 11.0, 12.0, 13.0, 14.0, 99.5]
    assert got[0].ts == T0 and got[0].unit == "ug/m3"
    points = store.series("yc-aq-1", "pm25", T0, T0 + timedelta(minutes=5), interval_s=120)
    assert [p["value"] for p in points] == [10.5, 12.5, (14.0 + 99.5) / 2]
    store.close()


def test_dead_letters_keep_the_payload_bytes_and_counters_add_up(backend: str) -> None:
    store = ReadingStore(backend)
    payload = b"\x00\xffnot json \xe4\xb8\xad"
    store.write_batch(
        [],
        dead=[
            DeadLetter(
                topic="t/x", payload=payload, reason="json", detail="bad", received=T0, codec="json"
            )
        ],
        irregular=[("yc-aq-1", "aq1", "seq_gap"), ("yc-aq-1", "aq1", "seq_gap")],
        received=T0,
    )
    (letter,) = store.dead_letters()
    assert letter.payload == payload and letter.reason == "json" and store.dead_letter_count() == 1
    assert store.irregularities()[0]["count"] == 2
    store.add_counters({("late", "r1"): 3, ("late", "r2"): 0})
    store.add_counters({("late", "r1"): 4})
    assert store.counters() == {("late", "r1"): 7}
    store.close()


def test_rule_state_round_trips(backend: str) -> None:
    state = RuleStateStore(backend)
    entries = [
        {
            "rule": "pm25-high",
            "scope": ["yc-aq-1", "aq1", "pm25"],
            "digest": "d1",
            "since": 3,
            "firing": True,
        }
    ]
    assert state.save(entries, now=T0) == 1
    assert state.save([dict(entries[0], since=4)], now=T0) == 1  # upsert
    assert state.load() == [dict(entries[0], since=4)] and state.count() == 1
    state.close()


def test_each_reading_keeps_the_receive_time_it_was_given(backend: str) -> None:
    store = ReadingStore(backend)
    first, second = T0 + timedelta(seconds=3), T0 + timedelta(minutes=9)
    batch = [_reading(0, 1.0), _reading(0, 2.0, "pm10"), _reading(1, 3.0)]
    assert store.write_batch(batch, received=[first, first, second]) == [True] * 3
    rows = store.db.query("SELECT metric, ts, received FROM readings ORDER BY ts, metric")
    assert [(r["metric"], r["received"] - r["ts"]) for r in rows] == [
        ("pm10", 3000),
        ("pm25", 3000),
        ("pm25", 8 * 60_000),
    ]
    with pytest.raises(ValueError, match="2 receive times for 3 readings"):
        store.write_batch(batch, received=[first, second])
    store.close()
