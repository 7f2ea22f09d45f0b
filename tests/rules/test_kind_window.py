"""``window`` rules: tumbling, hopping and sliding aggregates on event time, judged at window
end."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from farsight.errors import RuleError
from farsight.types import AlertSignal, Reading
from rules.loader import parse_ruleset
from tests.factories import at, reading
from tests.factories import rule_engine as engine

STACK = {
    "site": "yc-stack-1",
    "device": "cems1",
    "unit": "mg/m3",
}  # so2 permit 35 mg/m3, credit grade C


def rule(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "w",
        "kind": "window",
        "select": {"metric": "so2", "device_kind": "cems"},
        "window": "1h",
        "agg": "avg",
        "threshold": "site_limit",
        "severity": "major",
    }
    base.update(fields)
    return base


def series(
    metric: str, values: Iterable[float], start: float = 0, step: float = 1, **where: Any
) -> list[Reading]:
    """One reading per ``step`` minutes from ``start`` minutes after T0."""
    return [reading(metric, v, start + i * step, **where) for i, v in enumerate(values)]


def so2(values: Iterable[float], start: float = 0, step: float = 1) -> list[Reading]:
    return series("so2", values, start, step, **STACK)


def test_hourly_mean_above_the_permit_fires_at_the_window_end() -> None:
    e = engine(
        rule(
            summary="SO2 hourly mean {value} {unit} over {window_start}..{window_end} ({count}"
            " values), permit {threshold}"
        )
    )
    # Hour 0: mean 30, under the 35 permit. Hour 1: half the readings at 30 and half at 42 ->
    # mean 36, over the permit though no reading stays over it for long.
    assert e.evaluate(so2([30] * 60)) == []
    assert e.evaluate(so2([30, 42] * 30, start=60)) == []  # the window is still open
    assert e.series_state("w", "yc-stack-1", "cems1", "so2") == "inactive"
    (sig,) = e.evaluate(so2([30], start=120))  # first reading at the window end closes it
    assert (sig.status, sig.ts, sig.value, sig.threshold, sig.severity) == (
        "firing",
        at(120),
        36.0,
        35.0,
        "major",
    )
    assert (sig.site, sig.device, sig.metric) == ("yc-stack-1", "cems1", "so2")
    assert (
        sig.summary
        == "SO2 hourly mean 36 mg/m3 over 2026-11-25T09:00:00+08:00..2026-11-25T10:00:00+08:00 (60"
        " values), permit 35"
    )
    # The next hour's mean is back under the permit: resolved at that window's end.
    assert e.evaluate(so2([30] * 59, start=121)) == []
    (res,) = e.evaluate(so2([30], start=180))
    assert (res.status, res.ts, res.value) == ("resolved", at(180), 30.0)


def test_a_gap_closes_the_window_on_the_first_later_reading() -> None:
    e = engine(rule())
    e.evaluate(so2([50] * 10))
    (sig,) = e.evaluate(so2([10], start=200))  # hours 1 and 2 saw nothing: no verdict for them
    assert (sig.status, sig.ts, sig.value) == ("firing", at(60), 50.0)


def test_24_hour_mean_of_pm25_uses_the_beijing_natural_day() -> None:
    doc = rule(
        id="pm25-24h",
        select={"metric": "pm25", "device_kind": "air_quality"},
        window="24h",
        threshold=75,
        severity="warning",
        summary="{window_start} to {window_end}: 24-hour mean PM2.5 {value} {unit} over GB"
        " 3095-2012 grade II ({threshold})",
    )
    e = engine(doc)
    # T0 is 08:00 Beijing time; the day runs from 00:00 Beijing (T0 - 8 h), one reading every
    # 10 min: 90 in the night, 72.5 from 08:00, a mean of 78.33 for the day.
    day = series("pm25", [90] * 48 + [72.5] * 96, start=-480, step=10)
    assert e.evaluate(day) == []
    (sig,) = e.evaluate([reading("pm25", 20, 960)])  # 00:00 the next day
    assert (sig.status, sig.ts, sig.threshold) == (
        "firing",
        at(960),
        75.0,
    ) and sig.value == pytest.approx(78.333, abs=1e-3)
    assert (
        sig.summary
        == "2026-11-25T00:00:00+08:00 to 2026-11-26T00:00:00+08:00: 24-hour mean PM2.5 78.33 ug/m3"
        " over GB 3095-2012 grade II (75)"
    )
    # Aligned to UTC instead, the same readings split at 08:00 Beijing: the night alone fires.
    utc = engine({**doc, "utc_offset": "+00:00"})
    sigs = utc.evaluate(day + [reading("pm25", 20, 960), reading("pm25", 20, 1440)])
    assert [(s.status, s.ts, round(s.value, 2)) for s in sigs] == [
        ("firing", at(0), 90.0),
        ("resolved", at(1440), 71.96),
    ]
    assert sigs[0].summary.startswith("2026-11-24T00:00:00+00:00 to 2026-11-25T00:00:00+00:00")


def test_hopping_windows_overlap_and_fire_at_each_window_end() -> None:
    # 1-hour means every 15 minutes; a 30-minute burst of 100 in a series of zeros. The windows
    # starting at minutes 60, 75 and 90 each hold the whole burst (mean 50 > 40); those at 45
    # and 105 only half of it (mean 25).
    e = engine(rule(id="hop", threshold=40, every="15m"))
    sigs = e.evaluate(so2([0] * 90 + [100] * 30 + [0] * 121))
    assert [(s.status, s.ts, s.value) for s in sigs] == [
        ("firing", at(120), 50.0),
        (
            "firing",
            at(135),
            50.0,
        ),  # still firing: the signal repeats so the alert's last-seen moves
        ("firing", at(150), 50.0),
        ("resolved", at(165), 25.0),
    ]
    # Tumbling hours see the burst once.
    tumbling = engine(rule(id="tum", threshold=40))
    assert [
        (s.status, s.ts) for s in tumbling.evaluate(so2([0] * 90 + [100] * 30 + [0] * 121))
    ] == [("firing", at(120)), ("resolved", at(180))]


def test_sliding_max_is_judged_at_every_reading() -> None:
    e = engine(
        rule(
            id="slide",
            window="10m",
            sliding=True,
            agg="max",
            threshold=100,
            summary="max {value} over {count} readings",
        )
    )
    sigs = e.evaluate(so2([50] * 5 + [120] + [50] * 15))
    # The spike at minute 5 is in the trailing window (t - 10 min, t] until minute 15.
    assert [(s.status, s.ts, s.value) for s in sigs] == [
        ("firing", at(5), 120.0),
        ("resolved", at(15), 50.0),
    ]
    assert sigs[0].summary == "max 120 over 6 readings"


def test_percentile_95_matches_numpy() -> None:
    e = engine(rule(id="p95", window="20m", agg="percentile", q=95, threshold=19))
    values = [float(v) for v in range(20, 0, -1)]  # 20..1 in the 20-minute window [00:00, 00:20)
    assert e.evaluate(so2(values)) == []
    (sig,) = e.evaluate(so2([0], start=20))
    assert sig.value == pytest.approx(float(np.percentile(values, 95))) == pytest.approx(19.05)
    assert sig.status == "firing" and sig.ts == at(20)


def test_stddev_of_a_window_population() -> None:
    noisy = engine(rule(id="sd", agg="stddev", threshold=4))
    (sig,) = noisy.evaluate(so2([10, 20] * 30 + [0], start=0))
    assert sig.value == pytest.approx(5.0) and sig.status == "firing"
    # A frozen value has no spread: "stddev below 0.01" catches it on a window basis.
    frozen = engine(rule(id="sd-low", agg="stddev", op="<", threshold=0.01))
    (sig,) = frozen.evaluate(so2([42.0] * 60 + [41.0]))
    assert sig.value == 0.0 and sig.status == "firing"


def test_count_below_the_hourly_completeness() -> None:
    # Fewer than 45 one-minute values in an hour: the hour is incomplete (GB 3095-2012 table 4).
    e = engine(rule(id="n", agg="count", op="<", threshold=45, summary="{count} values"))
    (sig,) = e.evaluate(so2([20] * 30, step=2) + so2([20], start=60))
    assert (sig.status, sig.ts, sig.value, sig.summary) == ("firing", at(60), 30.0, "30 values")


def test_min_count_leaves_thin_windows_unjudged() -> None:
    e = engine(rule(min_count=45))
    # 30 readings far over the permit, but too few to make an hourly mean: no verdict.
    assert e.evaluate(so2([100] * 30, step=2) + so2([100] * 60, start=60)) == []
    assert e.series_state("w", "yc-stack-1", "cems1", "so2") == "inactive"
    (sig,) = e.evaluate(so2([100], start=120))
    assert (sig.status, sig.ts) == ("firing", at(120))


def test_credit_grade_scales_the_limit() -> None:
    e = engine(
        rule(credit={"C": {"limit_factor": 0.8, "severity": "critical"}})
    )  # yc-stack-1 is grade C
    (sig,) = e.evaluate(so2([30] * 61))
    assert (sig.threshold, sig.value, sig.severity) == (28.0, 30.0, "critical")


def test_a_site_without_a_permit_is_not_judged() -> None:
    e = engine(rule(select={"metric": "so2"}))
    assert e.evaluate(series("so2", [999] * 130)) == []  # the air station has no so2 permit


def test_lateness_puts_readings_back_in_their_window() -> None:
    e = engine(rule(lateness="5m", threshold=40))
    # Minute 59 arrives after minute 61: within the allowed lateness it still counts for hour 0.
    readings = (
        so2([30] * 59)
        + [reading("so2", 30, 61, **STACK), reading("so2", 1000, 59, **STACK)]
        + so2([30] * 10, start=62)
    )
    (sig,) = e.evaluate(readings)
    assert sig.ts == at(60) and sig.value == pytest.approx((30 * 59 + 1000) / 60)
    assert e.stats.late == 0


@pytest.mark.parametrize(
    "doc",
    [
        rule(id="tumbling", threshold=28),
        rule(id="hopping-p90", every="20m", agg="percentile", q=90),
        rule(id="sliding-sd", window="15m", sliding=True, agg="stddev", threshold=5),
        rule(id="min", agg="min", op="<", threshold=28, every="30m"),
    ],
    ids=lambda d: d["id"],
)
def test_state_survives_a_restart(doc: dict[str, Any]) -> None:
    rng = np.random.default_rng(7)
    values = [float(v) for v in np.round(30 + 12 * rng.standard_normal(300), 2)]
    data = so2(values)
    whole = engine(doc)
    expected = whole.evaluate(data)
    assert expected, "the series should make the rule fire"

    first = engine(doc)
    cut = 95  # mid-window for each shape
    got: list[AlertSignal] = first.evaluate(data[:cut])
    saved = json.loads(json.dumps(first.snapshot()))  # what the state store keeps
    second = engine(doc)
    assert second.restore(saved) == 1
    got += second.evaluate(data[cut:])
    assert got == expected


@pytest.mark.parametrize(
    "fields, path, words",
    [
        ({"agg": "percentile"}, "rules.0[w]", "needs q"),
        ({"q": 50}, "rules.0[w]", "only to agg percentile"),
        ({"every": "2h"}, "rules.0[w]", "must not be longer than window"),
        ({"sliding": True, "every": "10m"}, "rules.0[w]", "either sliding or every"),
        ({"every": "1s", "window": "1d"}, "rules.0[w]", "at most 1440"),
        ({"window": "0s"}, "rules.0[w].window", "longer than 0"),
        ({"select": {"device_kind": "cems"}}, "rules.0[w]", "select.metric is required"),
        ({"agg": "median"}, "rules.0[w].agg", "avg"),
        ({"min_count": 0}, "rules.0[w].min_count", "greater than or equal to 1"),
        ({"utc_offset": "8"}, "rules.0[w].utc_offset", "pattern"),
    ],
)
def test_invalid_window_rules_name_the_key(fields: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [rule(**fields)]})
    assert path in [p.path for p in info.value.problems]
    assert words in str(info.value)


def test_a_silent_series_window_is_closed_by_the_engines_event_time() -> None:
    """A device that stops mid-window still gets its window judged, once the other streams'
    event time is past the window's end (plus grace); a straggler cannot reopen it."""
    e = engine(
        {
            "id": "pm25-hour",
            "kind": "window",
            "select": {"metric": "pm25"},
            "window": "1h",
            "agg": "avg",
            "threshold": 75,
            "min_count": 10,
            "severity": "warning",
        }
    )
    for m in range(30):
        assert e.evaluate([reading("pm25", 100, m)]) == []
    assert e.tick(at(200)) == []  # nothing else has moved event time: the window stays open
    for m in range(62):
        e.evaluate([reading("so2", 10, m, site="yc-stack-1", device="cems1", unit="mg/m3")])
    assert e.tick(at(200)) == []  # event time 61: not yet past the end (60) plus two cadences (2)
    e.evaluate([reading("so2", 10, 62, site="yc-stack-1", device="cems1", unit="mg/m3")])
    (sig,) = e.tick(at(200))
    assert (sig.status, sig.value, sig.ts) == ("firing", 100, at(60))
    assert e.evaluate([reading("pm25", 10, 45)]) == []  # late for a judged window
    assert e.tick(at(201)) == []
