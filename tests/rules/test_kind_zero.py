"""``stuck_at_zero`` and ``zero_drift`` rules: an analyser whose zero is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from farsight.errors import RuleError
from farsight.types import Reading
from rules.loader import parse_ruleset
from tests.factories import at, reading
from tests.factories import rule_engine as engine

STACK = {"site": "yc-stack-1", "device": "cems1"}


def stack(
    metric: str,
    values: Iterable[float],
    start: float = 0,
    step: float = 1,
    unit: str = "mg/m3",
    flag: str = "N",
) -> list[Reading]:
    return [
        reading(metric, v, start + i * step, unit=unit, flag=flag, **STACK)
        for i, v in enumerate(values)
    ]


# -- stuck_at_zero -------------------------------------------------------------------------------


def stuck(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "o2-zero",
        "kind": "stuck_at_zero",
        "select": {"metric": "o2", "device_kind": "cems"},
        "zero_level": 0.5,
        "for": "10m",
        "severity": "major",
    }
    base.update(fields)
    return base


def test_o2_at_zero_for_the_duration_fires() -> None:
    e = engine(stuck(summary="O2 at {site_name} reads {value} {unit} (zero level {zero_level})"))
    o2 = lambda values, start=0: stack("o2", values, start, unit="%")  # noqa: E731
    assert e.evaluate(o2([8.4, 8.6, 8.5, 8.7, 8.5])) == []
    assert e.evaluate(o2([0.0] * 10, start=5)) == []  # minutes 5..14: pending
    assert e.series_state("o2-zero", "yc-stack-1", "cems1", "o2") == "pending"
    (sig,) = e.evaluate(o2([0.2], start=15))  # noise around zero still counts as zero
    assert (sig.status, sig.ts, sig.value, sig.threshold) == ("firing", at(15), 0.2, 0.5)
    assert sig.summary == "O2 at Yichang power plant stack 1 reads 0.2 % (zero level 0.5)"
    (res,) = e.evaluate(o2([8.1], start=16))
    assert (res.status, res.ts) == ("resolved", at(16))


def test_a_short_dip_to_zero_does_not_fire() -> None:
    e = engine(stuck(zero_level=0))
    assert e.evaluate(stack("o2", [8.5] * 5 + [0.0] * 5 + [8.5] * 5 + [0.0] * 9, unit="%")) == []


def test_a_stop_reported_with_flag_f_is_not_stuck() -> None:
    e = engine(stuck())
    assert e.evaluate(stack("o2", [0.0] * 30, unit="%", flag="F")) == []


# -- zero_drift ----------------------------------------------------------------------------------


def drift(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "pm-drift",
        "kind": "zero_drift",
        "select": {"metric": "particulate", "device_kind": "cems"},
        "window": "15m",
        "reference": 0,
        "max_drift": 0.5,
        "direction": "down",
        "min_count": 5,
        "severity": "major",
    }
    base.update(fields)
    return base


def test_negative_readings_mean_the_zero_drifted_down() -> None:
    e = engine(drift(summary="particulate baseline {baseline} {unit}, {drift} from zero"))
    assert e.evaluate(stack("particulate", [3.1, 2.9, 3.0] * 7)) == []
    (sig,) = e.evaluate(stack("particulate", [-1.2], start=21))
    assert (sig.status, sig.ts, sig.value, sig.threshold) == ("firing", at(21), -1.2, -0.5)
    assert sig.summary == "particulate baseline -1.2 mg/m3, -1.2 from zero"
    # The lower envelope keeps the negative reading for one window length (t - 15 min, t].
    sigs = e.evaluate(stack("particulate", [3.0] * 20, start=22))
    assert [(s.status, s.ts) for s in sigs] == [("firing", at(31)), ("resolved", at(36))]


def test_a_baseline_lifted_off_zero_drifted_up() -> None:
    # A series that should touch zero (a clean stack at low load) but never comes below 2.
    doc = drift(id="up", direction="up", max_drift=1.5, window="30m", min_count=10)
    lifted = engine(doc)
    sigs = lifted.evaluate(stack("particulate", [2.0, 2.6, 3.1, 2.2] * 10))
    assert sigs and sigs[0].status == "firing" and sigs[0].ts == at(9) and sigs[0].threshold == 1.5
    # Touching zero once every half hour is enough to stay inactive.
    healthy = engine(doc)
    assert healthy.evaluate(stack("particulate", ([0.1] + [2.0, 2.6, 3.1, 2.2] * 5) * 3)) == []


def test_both_directions_report_the_side_crossed() -> None:
    e = engine(drift(id="both", direction="both", max_drift=1.0, min_count=1))
    (up,) = e.evaluate(stack("particulate", [1.5]))
    assert (up.status, up.threshold) == ("firing", 1.0)
    e2 = engine(drift(id="both", direction="both", max_drift=1.0, min_count=1))
    (down,) = e2.evaluate(stack("particulate", [-1.5]))
    assert (down.status, down.threshold) == ("firing", -1.0)


def test_min_count_waits_for_enough_readings() -> None:
    e = engine(drift(min_count=5))
    assert e.evaluate(stack("particulate", [-3.0] * 4)) == []
    assert [s.status for s in e.evaluate(stack("particulate", [-3.0], start=4))] == ["firing"]


def test_zero_drift_state_survives_a_restart() -> None:
    data = stack("particulate", [3.0] * 10 + [-1.0] + [2.5, 3.5, 2.0, 4.0] * 6)
    expected = engine(drift()).evaluate(data)
    assert [s.status for s in expected] == ["firing", "firing", "resolved"]
    first = engine(drift())
    got = first.evaluate(data[:13])
    second = engine(drift())
    assert second.restore(json.loads(json.dumps(first.snapshot()))) == 1
    got += second.evaluate(data[13:])
    assert got == expected


@pytest.mark.parametrize(
    "doc, path, words",
    [
        (drift(max_drift=0), "rules.0[pm-drift].max_drift", "greater than 0"),
        (
            {k: v for k, v in drift().items() if k != "window"},
            "rules.0[pm-drift].window",
            "required",
        ),
        (drift(direction="sideways"), "rules.0[pm-drift].direction", "up"),
        (stuck(select={}), "rules.0[o2-zero]", "select.metric is required"),
        (stuck(zero_level="low"), "rules.0[o2-zero].zero_level", "number"),
    ],
)
def test_invalid_rules_name_the_key(doc: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [doc]})
    assert path in [p.path for p in info.value.problems]
    assert words in str(info.value)
