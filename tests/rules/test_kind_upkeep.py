"""The upkeep_share kind: share of M/C/D-flagged readings per device over a trailing window."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from farsight.errors import RuleError
from farsight.types import AlertSignal
from rules.engine import Engine
from rules.loader import parse_rules
from tests.factories import reading, registry


def engine(**spec: object) -> Engine:
    rule = {"id": "upkeep", "kind": "upkeep_share", "window": "1h", "min_span": "50m"} | spec
    return Engine(parse_rules({"rules": [rule]}), registry())


def feed(
    eng: Engine,
    minutes: range,
    flag_of: Callable[[int, str], str],
    metrics: tuple[str, ...] = ("pm25", "pm10"),
) -> list[AlertSignal]:
    out: list[AlertSignal] = []
    for m in minutes:
        out += eng.evaluate(
            [reading(metric, 10.0, m, flag=flag_of(m, metric)) for metric in metrics]
        )
    return out


def test_fires_over_the_share_once_the_span_is_covered_and_resolves_below() -> None:
    eng = engine()
    # pm25 in maintenance every minute, pm10 normal: 50 % flagged.
    early = feed(eng, range(50), lambda m, x: "M" if x == "pm25" else "N")
    assert early == []  # 49 minutes < min_span 50m
    signals = feed(eng, range(50, 52), lambda m, x: "M" if x == "pm25" else "N")
    assert [(s.status, s.device, s.value, s.threshold) for s in signals] == [
        ("firing", "aq1", 50.0, 30.0)
    ]
    # An hour of normal data brings the share back under 30 %; until then the alert refreshes.
    later = [s.status for s in feed(eng, range(52, 140), lambda m, x: "N")]
    assert later[-1] == "resolved" and set(later[:-1]) == {"firing"}


def test_a_share_at_or_under_the_limit_does_not_fire() -> None:
    eng = engine(max_share=0.5)
    assert feed(eng, range(120), lambda m, x: "C" if x == "pm25" else "N") == []


def test_only_the_chosen_flags_and_metrics_count() -> None:
    # F (stopped) is not upkeep; with metrics: [pm10] the flagged pm25 is not counted at all.
    assert feed(engine(), range(120), lambda m, x: "F") == []
    assert (
        feed(engine(metrics=["pm10"]), range(120), lambda m, x: "D" if x == "pm25" else "N") == []
    )
    assert feed(engine(flags=["D"]), range(60), lambda m, x: "D")[0].status == "firing"


def test_state_survives_a_restart() -> None:
    eng = engine()
    feed(eng, range(40), lambda m, x: "M")
    saved = eng.snapshot()
    fresh = engine()
    fresh.restore(saved)
    signals = feed(fresh, range(40, 52), lambda m, x: "M")
    assert [s.status for s in signals] == ["firing"]  # span counted from minute 0, not 40


def test_a_silence_longer_than_the_window_starts_the_span_anew() -> None:
    eng = engine()
    feed(eng, range(10), lambda m, x: "M")
    assert feed(eng, range(100, 140), lambda m, x: "M") == []  # 39 minutes since the return
    assert [s.status for s in feed(eng, range(140, 152), lambda m, x: "M")] == ["firing"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"flags": ["N"]}, "not upkeep"),
        ({"flags": ["Q"]}, "not HJ 212 data flags"),
        ({"max_share": 1.5}, "max_share"),
        ({"min_span": "2h"}, "min_span must not be longer than window"),
        ({"window": "0s"}, "longer than 0"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(spec: dict, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        engine(**spec)
