"""Engine behaviour shared by every kind: hysteresis, keep_firing_for, allowed lateness,
maintenance windows and credit-grade adjustments, through the public entry point."""

from __future__ import annotations

from datetime import timedelta

from rules.engine import Engine
from rules.loader import parse_ruleset
from tests.factories import T0, reading, registry


def engine(rule: dict, maintenance: list | None = None) -> Engine:
    doc: dict = {"rules": [rule]}
    if maintenance:
        doc["maintenance"] = maintenance
    return Engine(parse_ruleset(doc), registry())


def statuses(e: Engine, values: list[tuple[float, float]], **kw) -> list[tuple[float, str]]:
    """Feed (minute, value) pairs one by one; return (minute, status) of every signal."""
    out = []
    for minute, value in values:
        for s in e.evaluate(
            [
                reading(
                    kw.get("metric", "pm25"),
                    value,
                    minute,
                    **{k: v for k, v in kw.items() if k != "metric"},
                )
            ]
        ):
            out.append((minute, s.status))
    return out


PM25 = {"id": "pm25", "select": {"metric": "pm25"}, "threshold": 100, "severity": "warning"}


def test_hysteresis_keeps_an_alert_firing_until_the_value_clears_the_lower_level() -> None:
    e = engine({**PM25, "clear_ratio": 0.9})
    got = statuses(e, [(0, 101), (1, 95), (2, 99), (3, 89), (4, 99), (5, 101)])
    # Fires at 101, stays through 95 and 99 (above 90), clears at 89, 99 alone does not refire.
    assert got == [(0, "firing"), (3, "resolved"), (5, "firing")]


def test_without_hysteresis_the_same_values_flap() -> None:
    got = statuses(engine(PM25), [(0, 101), (1, 95), (2, 101), (3, 95)])
    assert got == [(0, "firing"), (1, "resolved"), (2, "firing"), (3, "resolved")]


def test_keep_firing_for_rides_out_short_dips() -> None:
    e = engine({**PM25, "keep_firing_for": "5m"})
    got = statuses(e, [(0, 120), (1, 50), (3, 120), (4, 50), (8, 50), (9, 50), (10, 50)])
    # The dips at 1 and 4 come less than 5 minutes after the last violation (3); at 8 it has been 5.
    assert got == [(0, "firing"), (8, "resolved")]


def test_readings_within_the_allowed_lateness_are_put_in_order() -> None:
    rule = {**PM25, "for": "3m", "lateness": "2m"}
    in_order = engine(rule)
    shuffled = engine(rule)
    minutes = [(m, 150.0) for m in range(8)] + [(8, 10.0), (9, 10.0), (10, 10.0), (11, 10.0)]
    expected = statuses(in_order, minutes)
    # Swap neighbours: each reading arrives up to one minute late, within the 2-minute lateness.
    swapped = []
    for i in range(0, len(minutes) - 1, 2):
        swapped += [minutes[i + 1], minutes[i]]
    got = statuses(shuffled, swapped)
    assert [s for _, s in got] == [s for _, s in expected] == ["firing", "resolved"]
    assert shuffled.stats.late == 0
    signals = shuffled.evaluate([reading("pm25", 10, 12)])
    assert signals == []


def test_readings_later_than_the_allowed_lateness_are_counted_not_evaluated() -> None:
    e = engine({**PM25, "lateness": "1m"})
    e.evaluate([reading("pm25", 10, m) for m in range(10)])
    assert e.evaluate([reading("pm25", 500, 2)]) == []  # 7 minutes behind the newest reading
    assert e.stats.late == 1 and e.stats.late_by_rule["pm25"] == 1


def test_a_maintenance_window_suppresses_the_alert_and_its_resolution() -> None:
    window = [
        {
            "site": "yc-aq-1",
            "device": "aq1",
            "start": (T0 + timedelta(minutes=5)).isoformat(),
            "end": (T0 + timedelta(minutes=30)).isoformat(),
            "reason": "analyser calibration",
        }
    ]
    e = engine(PM25, window)
    got = statuses(e, [(10, 150), (20, 10), (40, 150), (41, 10)])
    assert got == [(40, "firing"), (41, "resolved")]
    assert e.stats.suppressed == 1


def test_credit_grade_tightens_limit_duration_and_severity_for_low_grade_operators() -> None:
    rule = {
        "id": "so2",
        "select": {"metric": "so2", "device_kind": "cems"},
        "threshold": "site_limit",
        "for": "10m",
        "severity": "warning",
        "credit": {"C": {"limit_factor": 0.8, "for_factor": 0.5, "severity": "major"}},
    }
    e = engine(rule)  # yc-stack-1 has credit grade C and an SO2 permit of 35 mg/m3
    signals = []
    for m in range(6):
        signals += e.evaluate(
            [reading("so2", 30, m, site="yc-stack-1", device="cems1", unit="mg/m3")]
        )
    assert len(signals) == 1
    s = signals[0]
    # 30 is under the permit (35) but over 0.8 x 35 = 28, held 5 minutes = half of 10.
    assert (s.threshold, s.severity, s.ts) == (28.0, "major", T0 + timedelta(minutes=5))


def test_annotations_are_templated_with_the_values_that_fired() -> None:
    e = engine(
        {
            **PM25,
            "annotations": {
                "summary": "PM2.5 {value} {unit} at {site_name} over {threshold}",
                "runbook": "call {city}",
            },
        }
    )
    (s,) = e.evaluate([reading("pm25", 123.4, 0)])
    assert dict(s.annotations) == {
        "summary": "PM2.5 123.4 ug/m3 at Yichang Xiling air station over 100",
        "runbook": "call Yichang",
    }
    assert s.summary == dict(s.annotations)["summary"]
