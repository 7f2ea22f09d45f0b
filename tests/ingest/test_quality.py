"""Quality figures over a simulated day with gaps and flags match the simulator's ground truth,
on SQLite and PostgreSQL; refusals are attributed to their device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from farsight.clock import BEIJING, to_epoch_ms
from farsight.quality import Cell, Stream, compute, declared_stops, registry_streams, total
from ingest.message import Message
from ingest.pipeline import IngestPipeline
from ingest.quality_store import QualityStore
from ingest.store import DeadLetter, ReadingStore
from tests.factories import registry
from tests.quality_day import (
    AQ_METRICS,
    CEMS_METRICS,
    DAY,
    DELAY_S,
    STACK_STOPPED,
    make_registry,
    truth,
)


@pytest.fixture
def day_store(quality_day: str) -> Iterator[ReadingStore]:
    store = ReadingStore(quality_day)
    yield store
    store.close()


def test_hourly_and_daily_figures_match_the_ground_truth(day_store: ReadingStore) -> None:
    registry = make_registry()
    qs = QualityStore(day_store)
    end = DAY + timedelta(days=1)
    cells = qs.cells(DAY, end, sites=["qd-stack", "qd-air"])
    streams = registry_streams(registry, "env")
    hourly = compute(cells, streams, DAY, end, "hour")
    daily = compute(cells, streams, DAY, end, "day")
    checked = 0
    for site, device in (("qd-stack", "cems1"), ("qd-air", "aq1")):
        want = truth(registry, site, device)
        rows = [f for f in hourly if f.site == site and f.device == device]
        assert len(rows) == 24
        for h, f in enumerate(rows):
            assert f.start == DAY + timedelta(hours=h)
            got = (f.expected, f.received, f.valid, f.hourly_valid, f.late)
            assert got == (
                want.expected[h],
                want.received[h],
                want.valid[h],
                want.hourly_valid[h],
                want.late[h],
            ), f"{site}/{device} hour {h}"
            checked += 1
        (day,) = [f for f in daily if f.site == site and f.device == device]
        assert day.start == DAY and day.end == end
        assert (day.expected, day.received, day.valid) == (
            sum(want.expected),
            sum(want.received),
            sum(want.valid),
        )
        assert day.hourly_valid == sum(want.hourly_valid)
        assert day.daily_values == len(CEMS_METRICS if device == "cems1" else AQ_METRICS)
        assert day.daily_valid == want.daily_valid
        assert day.effective_rate == pytest.approx(sum(want.valid) / sum(want.expected))
    assert checked == 48
    # The gaps are real: the stack lost 95 minutes, and stopped data is not valid.
    stack = next(f for f in daily if (f.site, f.device) == ("qd-stack", "cems1"))
    assert stack.received == stack.expected - 95 * 7
    assert stack.valid < stack.received
    # The air station's 20-minute gap makes its 13:00 hour invalid; the 10-minute one does not.
    air = {f.start.astimezone(BEIJING).hour: f for f in hourly if f.device == "aq1"}
    assert air[13].hourly_valid == 0 and air[16].hourly_valid == 6 and air[12].hourly_valid == 6
    # The site's own figure sums its devices; the camera owes nothing (it sends detections).
    site_day = next(f for f in daily if (f.site, f.device) == ("qd-stack", ""))
    assert (site_day.expected, site_day.valid) == (stack.expected, stack.valid)


def test_timeliness_is_receive_minus_measure_time(day_store: ReadingStore) -> None:
    registry = make_registry()
    cells = QualityStore(day_store).cells(DAY, DAY + timedelta(hours=8), sites=["qd-air"])
    figures = compute(
        cells, registry_streams(registry, site="qd-air"), DAY, DAY + timedelta(hours=8), "hour"
    )
    by_hour = {f.start.astimezone(BEIJING).hour: f for f in figures if f.device == "aq1"}
    assert by_hour[6].latency_mean_s == DELAY_S and by_hour[6].latency_max_s == DELAY_S
    # Hour 7: two minutes late (420 s and 30 s) among 58 on time, six metrics each.
    mean = (58 * DELAY_S + 420 + 30) / 60
    assert by_hour[7].latency_mean_s == pytest.approx(mean, abs=1e-3)
    assert by_hour[7].latency_max_s == 420.0 and by_hour[7].late == 6


def test_a_device_registered_mid_day_owes_from_then_and_totals_add_up(
    day_store: ReadingStore,
) -> None:
    registry = make_registry()
    end = DAY + timedelta(days=1)
    cells = QualityStore(day_store).cells(DAY, end)
    streams = registry_streams(registry, site="qd-air")
    since = {("qd-air", "aq1"): DAY + timedelta(hours=12)}
    (_site_day, dev_day) = compute(cells, streams, DAY, end, "day", since=since)
    assert dev_day.expected == 12 * 60 * 6
    hours = compute(cells, streams, DAY, end, "hour")
    whole = total(f for f in hours if f.device == "aq1")
    assert whole is not None
    (day,) = [f for f in compute(cells, streams, DAY, end, "day") if f.device == "aq1"]
    assert (whole.expected, whole.received, whole.valid, whole.hourly_valid) == (
        day.expected,
        day.received,
        day.valid,
        day.hourly_valid,
    )


def test_faster_than_the_cadence_is_not_more_than_complete() -> None:
    stream = Stream("s", "d", "m", 300.0)
    hour = to_epoch_ms(DAY)
    (_site, dev) = compute(
        [Cell("s", "d", "m", hour, "N", 30), Cell("s", "d", "m", hour, "M", 5)],
        [stream],
        DAY,
        DAY + timedelta(hours=1),
        "hour",
    )
    # 12 owed at 5-minute cadence; 35 arrived; 9 valid values are 45 valid minutes.
    assert (dev.expected, dev.received, dev.valid) == (12, 12, 12)
    assert dev.completeness == 1.0 and dev.hourly_valid == 1
    (_, short) = compute(
        [Cell("s", "d", "m", hour, "N", 8), Cell("s", "d", "m", hour, "D", 4)],
        [stream],
        DAY,
        DAY + timedelta(hours=1),
        "hour",
    )
    assert (short.received, short.valid, short.hourly_valid) == (12, 8, 0)
    assert short.validity == pytest.approx(8 / 12) and short.effective_rate == pytest.approx(8 / 12)


def test_dead_letters_and_irregularities_are_counted_per_device(backend: str) -> None:
    store = ReadingStore(backend)
    t = DAY + timedelta(hours=3)

    def letter(topic: str, reason: str, at: timedelta = timedelta(0)) -> DeadLetter:
        return DeadLetter(topic, b"x", reason, "d", t + at)

    store.write_batch(
        [],
        dead=[
            letter("fs/v1/env/qd-air/aq1/reading", "json"),
            letter("fs/v1/env/qd-air/aq1/reading", "json"),
            letter("fs/v1/env/qd-air/aq1/reading", "bad_value"),
            letter("fs/v1/env/qd-stack/cems1/hj212", "crc"),
            letter("fs/v1/env/qd-stack/cems1/hj212", "crc", timedelta(days=2)),
            letter("fs/v1/gw/gw1/batch", "signature"),
            letter("not/a/topic", "bad_topic"),
        ],
        irregular=[("qd-stack", "cems1", "crc_lowercase")] * 3,
        received=t,
    )
    got = QualityStore(store).refusals(DAY, DAY + timedelta(days=1))
    assert got[("qd-air", "aq1")].dead_letters == {"json": 2, "bad_value": 1}
    assert got[("qd-stack", "cems1")].dead_letters == {"crc": 1}
    assert got[("qd-stack", "cems1")].irregularities == {"crc_lowercase": 3}
    assert set(got) == {("qd-air", "aq1"), ("qd-stack", "cems1")}
    only_air = QualityStore(store).refusals(DAY, DAY + timedelta(days=1), sites=["qd-air"])
    assert set(only_air) == {("qd-air", "aq1")}
    store.close()


def test_a_declared_stoppage_is_owed_nothing_and_f_data_outside_it_still_counts(
    quality_day: str,
) -> None:
    registry = make_registry(declared=True)
    store = ReadingStore(quality_day)  # a declaration changes what is owed, not what arrives
    end = DAY + timedelta(days=1)
    streams = registry_streams(registry, site="qd-stack")
    cells = QualityStore(store).cells(DAY, end, exclude=declared_stops(streams))
    hourly = [f for f in compute(cells, streams, DAY, end, "hour") if f.device == "cems1"]
    want = truth(registry, "qd-stack", "cems1", declared=[STACK_STOPPED])
    got = [(f.expected, f.received, f.valid, f.hourly_valid) for f in hourly]
    assert got == list(
        zip(want.expected, want.received, want.valid, want.hourly_valid, strict=True)
    )
    n = len(CEMS_METRICS)
    # Nothing owed while declared stopped, half of hour 3; hour 4 is stopped (F) undeclared: owed,
    # received and, but for `running`, not valid.
    assert [f.expected for f in hourly[:5]] == [0, 0, 0, 30 * n, 60 * n]
    assert (hourly[0].received, hourly[3].received, hourly[4].valid) == (0, 30 * n, 60)
    (day,) = [f for f in compute(cells, streams, DAY, end, "day") if f.device == "cems1"]
    undeclared = truth(registry, "qd-stack", "cems1")
    assert day.expected == sum(undeclared.expected) - 210 * n
    assert day.effective_rate == pytest.approx(sum(want.valid) / sum(want.expected))
    assert day.effective_rate > sum(undeclared.valid) / sum(undeclared.expected)
    store.close()


def test_timeliness_counts_from_the_messages_receipt_not_from_the_write(backend: str) -> None:
    # A backlog: messages received 2 s after their measure time on 2026-11-25 and processed
    # (stored) only now, weeks later. Timeliness is the device's and the network's, 2 s; the
    # store's write time would make every reading weeks late.
    store = ReadingStore(backend)
    pipe = IngestPipeline(registry(), store)
    t = DAY + timedelta(hours=5)
    msgs = [
        Message(
            "fs/v1/env/yc-aq-1/aq1/reading",
            json.dumps(
                {
                    "ts": (t + timedelta(minutes=k)).isoformat(),
                    "metrics": {"pm25": 20.0, "pm10": 30.0},
                }
            ).encode(),
            received=t + timedelta(minutes=k, seconds=2),
        )
        for k in range(3)
    ]
    assert pipe.process(msgs).stored == 6
    rows = store.db.query("SELECT ts, received FROM readings ORDER BY ts, metric")
    assert [r["received"] - r["ts"] for r in rows] == [2000] * 6
    cells = QualityStore(store).cells(DAY, DAY + timedelta(days=1), sites=["yc-aq-1"])
    streams = registry_streams(registry(), "env")
    (hour,) = [
        f
        for f in compute(cells, streams, t, t + timedelta(hours=1), "hour")
        if (f.site, f.device) == ("yc-aq-1", "aq1")
    ]
    assert (hour.latency_mean_s, hour.latency_max_s, hour.late) == (2.0, 2.0, 0)
    store.close()
