"""``rate_of_change`` and ``step`` rules: implausibly fast changes of one series."""

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

STACK = {"site": "yc-stack-1", "device": "cems1", "unit": "mg/m3"}  # credit grade C


def so2(values: Iterable[float], start: float = 0, step: float = 1) -> list[Reading]:
    return [reading("so2", v, start + i * step, **STACK) for i, v in enumerate(values)]


def pm10(values: Iterable[float], start: float = 0, step: float = 1) -> list[Reading]:
    return [reading("pm10", v, start + i * step) for i, v in enumerate(values)]


# -- rate_of_change ------------------------------------------------------------------------------


def roc(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "roc",
        "kind": "rate_of_change",
        "select": {"metric": "so2", "device_kind": "cems"},
        "max_rate": 10,
        "severity": "major",
    }
    base.update(fields)
    return base


def test_a_fall_faster_than_the_maximum_rate_fires_and_resolves() -> None:
    e = engine(
        roc(
            summary="SO2 changed {delta} {unit} in {gap_s} s: {value} per minute, from {previous}"
            " to {level}"
        )
    )
    assert e.evaluate(so2([30, 30.5, 31])) == []
    (sig,) = e.evaluate(so2([10], start=3))
    assert (sig.status, sig.ts, sig.value, sig.threshold) == ("firing", at(3), -21.0, 10.0)
    assert sig.summary == "SO2 changed -21 mg/m3/min in 60 s: -21 per minute, from 31 to 10"
    (res,) = e.evaluate(so2([10.5], start=4))
    assert (res.status, res.ts) == ("resolved", at(4))


def test_rate_is_per_elapsed_time_and_per_the_chosen_unit() -> None:
    e = engine(roc(max_rate=60, per="hour"))
    # 3 mg/m3 in 2 minutes is 90 mg/m3 per hour.
    (sig,) = e.evaluate(so2([30, 33], step=2))
    assert (sig.value, sig.ts) == (pytest.approx(90.0), at(2))


@pytest.mark.parametrize(
    "direction, fires_on", [("up", "rise"), ("down", "fall"), ("both", "both")]
)
def test_direction(direction: str, fires_on: str) -> None:
    e = engine(roc(direction=direction))
    rise = e.evaluate(so2([30, 50]))
    fall = e.evaluate(so2([50, 30, 10], start=2))  # 50 at minute 2 is a flat step from 50
    assert [s.status for s in rise] == (["firing"] if fires_on in ("rise", "both") else [])
    if fires_on == "rise":
        assert [s.status for s in fall] == ["resolved"]
    elif fires_on == "fall":
        assert [(s.status, s.ts) for s in fall] == [("firing", at(3))]
    else:
        assert [(s.status, s.ts) for s in fall] == [("resolved", at(2)), ("firing", at(3))]


def test_readings_further_apart_than_max_gap_are_not_compared() -> None:
    e = engine(roc(max_gap="5m"))
    assert e.evaluate(so2([30, 90], step=10)) == []  # ten minutes apart: a data gap, not a slope
    assert [s.status for s in e.evaluate(so2([150], start=11))] == ["firing"]


def test_credit_grade_tightens_the_maximum_rate() -> None:
    e = engine(roc(credit={"C": {"limit_factor": 0.5}}))
    (sig,) = e.evaluate(so2([30, 37]))
    assert (sig.threshold, sig.value) == (5.0, 7.0)


def test_rate_state_survives_a_restart() -> None:
    first = engine(roc())
    first.evaluate(so2([30]))
    second = engine(roc())
    second.restore(json.loads(json.dumps(first.snapshot())))
    assert [s.status for s in second.evaluate(so2([60], start=1))] == ["firing"]


# -- step ----------------------------------------------------------------------------------------


def step(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "step",
        "kind": "step",
        "select": {"metric": "pm10"},
        "previous": 10,
        "min_ratio": 0.75,
        "min_step": 30,
        "direction": "down",
        "severity": "warning",
    }
    base.update(fields)
    return base


BASELINE = [98, 104, 101, 97, 103, 99, 102, 100, 96, 105]  # median 100.5


def test_a_sudden_drop_far_under_the_median_fires() -> None:
    # A mist cannon aimed at a dust monitor: PM10 falls from about 100 to 12 within a minute.
    e = engine(
        step(summary="PM10 fell to {value} {unit} from a median of {median} ({ratio} of it)")
    )
    assert e.evaluate(pm10(BASELINE)) == []
    (sig,) = e.evaluate(pm10([12], start=10))
    assert (sig.status, sig.ts, sig.value) == ("firing", at(10), 12.0)
    assert sig.threshold == pytest.approx(100.5 * 0.25)  # the level the value had to fall under
    assert sig.summary == "PM10 fell to 12 ug/m3 from a median of 100.5 (0.8806 of it)"


def test_not_judged_before_the_baseline_is_full() -> None:
    e = engine(step())
    assert e.evaluate(pm10(BASELINE[:9] + [1])) == []
    assert e.series_state("step", "yc-aq-1", "aq1", "pm10") == "inactive"


def test_the_median_ignores_a_single_outlier_in_the_baseline() -> None:
    e = engine(step(direction="both"))
    # One spike of 400 in the baseline: a mean would jump to 130, the median stays at 100.5.
    assert e.evaluate(pm10(BASELINE[:5] + [400] + BASELINE[6:])) == []
    assert e.evaluate(pm10([101], start=10)) == []
    assert e.series_state("step", "yc-aq-1", "aq1", "pm10") == "inactive"


@pytest.mark.parametrize(
    "fields, value, fires",
    [
        ({"min_ratio": 0.75, "min_step": 30}, 20, True),  # -80.5 and 0.80: both criteria met
        ({"min_ratio": 0.75, "min_step": 90}, 20, False),  # not far enough in absolute terms
        ({"min_ratio": 0.9, "min_step": 30}, 20, False),  # not far enough in relative terms
        ({"min_ratio": None, "min_step": 30}, 60, True),  # absolute criterion alone
        ({"min_ratio": 0.3, "min_step": None}, 60, True),  # relative criterion alone
    ],
)
def test_absolute_and_relative_criteria_must_both_hold(
    fields: dict[str, Any], value: float, fires: bool
) -> None:
    doc = step(**fields)
    e = engine({k: v for k, v in doc.items() if v is not None})
    sigs = e.evaluate(pm10(BASELINE + [value]))
    assert [s.status for s in sigs] == (["firing"] if fires else [])


def test_direction_up_ignores_falls() -> None:
    e = engine(step(direction="up", min_ratio=1.0, min_step=50))
    assert e.evaluate(pm10(BASELINE + [5])) == []
    (sig,) = e.evaluate(pm10([260], start=11))
    assert sig.status == "firing" and sig.threshold == pytest.approx(201.0)


def test_a_lasting_step_is_over_once_it_fills_half_the_baseline() -> None:
    e = engine(step(**{"for": "2m"}))
    sigs = e.evaluate(pm10(BASELINE + [10] * 8))
    # Active at minutes 10..15 (at 15 half the baseline is low: median 53, 10 is still 81 % under
    # it); from minute 16 most of the baseline is the new level and the median is 10.
    assert [(s.status, s.ts) for s in sigs] == [("firing", at(12)), ("resolved", at(16))]


def test_max_gap_forgets_an_old_baseline() -> None:
    e = engine(step(max_gap="30m"))
    e.evaluate(pm10(BASELINE))
    # The monitor comes back two hours later at a much lower level: not a step, a new baseline.
    assert e.evaluate(pm10([12] * 10, start=130)) == []


def test_step_state_survives_a_restart() -> None:
    first = engine(step())
    first.evaluate(pm10(BASELINE))
    second = engine(step())
    second.restore(json.loads(json.dumps(first.snapshot())))
    assert [s.status for s in second.evaluate(pm10([12], start=10))] == ["firing"]


@pytest.mark.parametrize(
    "doc, path, words",
    [
        (step(min_ratio=None, min_step=None), "rules.0[step]", "needs min_step"),
        (step(previous=1), "rules.0[step].previous", "greater than or equal to 2"),
        (step(select={}), "rules.0[step]", "select.metric is required"),
        (roc(max_rate=0), "rules.0[roc].max_rate", "greater than 0"),
        (roc(per="day"), "rules.0[roc].per", "minute"),
        (roc(max_gap="0s"), "rules.0[roc].max_gap", "longer than 0"),
    ],
)
def test_invalid_rules_name_the_key(doc: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [doc]})
    assert path in [p.path for p in info.value.problems]
    assert words in str(info.value)
