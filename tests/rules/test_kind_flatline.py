"""``flatline`` rules (恒值异常): a value that stops moving over a trailing window."""

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

STACK = {"site": "yc-stack-1", "device": "cems1", "unit": "mg/m3"}


def flat(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "flat",
        "kind": "flatline",
        "select": {"metric": "nox", "device_kind": "cems"},
        "window": "30m",
        "min_count": 10,
        "severity": "major",
    }
    base.update(fields)
    return base


def nox(
    values: Iterable[float], start: float = 0, step: float = 1, flag: str = "N"
) -> list[Reading]:
    return [reading("nox", v, start + i * step, flag=flag, **STACK) for i, v in enumerate(values)]


def transitions(sigs: list[AlertSignal]) -> list[tuple[str, object]]:
    """(status, ts) of each change, without the repeats a firing alert sends every 10 minutes."""
    out: list[tuple[str, object]] = []
    for s in sigs:
        if not out or out[-1][0] != s.status:
            out.append((s.status, s.ts))
    return out


def natural(n: int, seed: int = 1) -> list[float]:
    """A live analyser: values wander in the last reported decimal."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in np.round(25 + 2 * rng.standard_normal(n), 2)]


def test_a_frozen_value_fires_once_the_whole_window_is_flat() -> None:
    e = engine(
        flat(
            summary="恒值 (constant value): NOx at {site_name} stuck at {level} {unit} for"
            " {flat_for_min} min ({count} readings)"
        )
    )
    assert e.evaluate(nox(natural(20))) == []
    # Frozen at 42.0 from minute 20: the moving readings leave the 30-minute window at minute 49.
    assert e.evaluate(nox([42.0] * 29, start=20)) == []
    assert e.series_state("flat", "yc-stack-1", "cems1", "nox") == "inactive"
    (sig,) = e.evaluate(nox([42.0], start=49))
    assert (sig.status, sig.ts, sig.value, sig.metric) == ("firing", at(49), 42.0, "nox")
    assert (
        sig.summary
        == "恒值 (constant value): NOx at Yichang power plant stack 1 stuck at 42 mg/m3 for 29 min"
        " (30 readings)"
    )
    # Still frozen ten minutes later: the repeated signal carries the longer duration.
    (again,) = e.evaluate(nox([42.0] * 10, start=50))
    assert (again.status, again.ts) == ("firing", at(59)) and "for 39 min" in again.summary
    (res,) = e.evaluate(nox([41.87], start=60))
    assert (res.status, res.ts) == ("resolved", at(60))


def test_natural_repeats_are_too_short_to_count() -> None:
    e = engine(flat())
    values = natural(60)
    values[10:16] = [values[10]] * 6  # six equal values in a row happen in real data
    assert e.evaluate(nox(values)) == []


def test_min_count_guards_a_sparse_window() -> None:
    e = engine(flat())
    # One reading every 5 minutes: 6 equal readings in 30 minutes are not enough to call it frozen.
    assert e.evaluate(nox([42.0] * 20, step=5)) == []
    # At a fresh start, min_count equal readings are the evidence there is.
    fresh = engine(flat())
    assert [(s.status, s.ts) for s in fresh.evaluate(nox([42.0] * 10))] == [("firing", at(9))]


def test_ignore_below_keeps_a_stopped_plant_from_looking_frozen() -> None:
    doc = flat(ignore_below=0.5)
    e = engine(doc)
    # A plant that stops and reports 0 with flag N (loggers that do not flag a stop).
    assert e.evaluate(nox(natural(10) + [0.0] * 60)) == []
    # A zero in the middle of a frozen stretch breaks it: the window starts again after it.
    e2 = engine(doc)
    sigs = e2.evaluate(nox([42.0] * 20 + [0.0] + [42.0] * 15))
    assert transitions(sigs) == [("firing", at(9)), ("resolved", at(20)), ("firing", at(30))]


def test_readings_flagged_stopped_are_not_judged() -> None:
    e = engine(flat())
    # HJ 212-2017 flag F (facility stopped): the engine never feeds them to the condition.
    assert e.evaluate(nox([0.0] * 60, flag="F")) == []
    assert e.stats.flagged == 60


def test_epsilon_range_and_stddev() -> None:
    jitter = [42.0, 42.01] * 20  # a value toggling in the last decimal
    assert e_signals(flat(), jitter) == []
    assert transitions(e_signals(flat(epsilon=0.01), jitter)) == [("firing", at(9))]
    # Spread by standard deviation: a range of 0.02 but a stddev of 0.006.
    wobble = [42.0, 42.0, 42.0, 42.02, 42.0, 42.0, 42.0, 42.0, 42.0, 42.0] * 4
    assert e_signals(flat(epsilon=0.01), wobble) == []
    assert transitions(e_signals(flat(epsilon=0.01, measure="stddev"), wobble)) == [
        ("firing", at(9))
    ]
    # Equal values have no spread, even where their floating-point mean is not exactly them.
    assert transitions(e_signals(flat(measure="stddev"), [0.1] * 10)) == [("firing", at(9))]


def e_signals(doc: dict[str, Any], values: list[float]) -> list[AlertSignal]:
    return engine(doc).evaluate(nox(values))


def test_for_holds_the_flat_line_longer() -> None:
    e = engine(flat(**{"for": "30m"}))
    sigs = e.evaluate(nox(natural(5) + [42.0] * 70))
    # Flat over the window from minute 34, held 30 more minutes.
    assert transitions(sigs) == [("firing", at(64))]


def test_flatline_state_survives_a_restart() -> None:
    data = nox(natural(15) + [42.0] * 60 + natural(10, seed=2), start=0)
    expected = engine(flat()).evaluate(data)
    assert transitions(expected) == [("firing", at(44)), ("resolved", at(75))]
    first = engine(flat())
    got = first.evaluate(data[:40])  # mid-window, not yet firing
    second = engine(flat())
    assert second.restore(json.loads(json.dumps(first.snapshot()))) == 1
    got += second.evaluate(data[40:])
    assert got == expected


@pytest.mark.parametrize(
    "fields, path, words",
    [
        ({"min_count": 1}, "rules.0[flat].min_count", "greater than or equal to 2"),
        ({"epsilon": -1}, "rules.0[flat].epsilon", "greater than or equal to 0"),
        ({"measure": "iqr"}, "rules.0[flat].measure", "range"),
        ({"window": "0m"}, "rules.0[flat].window", "longer than 0"),
        ({"select": {"device_kind": "cems"}}, "rules.0[flat]", "select.metric is required"),
    ],
)
def test_invalid_flatline_rules_name_the_key(fields: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [flat(**fields)]})
    assert path in [p.path for p in info.value.problems]
    assert words in str(info.value)
