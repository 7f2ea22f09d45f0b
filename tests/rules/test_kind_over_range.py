"""The over_range kind: a metric flagged T (over the analyser's range) is a finding of its own."""

from __future__ import annotations

import pytest

from farsight.errors import RuleError
from farsight.types import AlertSignal
from rules.engine import Engine
from rules.loader import parse_rules
from tests.factories import reading, registry


def engine(**spec: object) -> Engine:
    rule = {"id": "over", "kind": "over_range", "for": "2m"} | spec
    return Engine(parse_rules({"rules": [rule]}), registry())


def feed(eng: Engine, minutes: range, flags: dict[str, str]) -> list[AlertSignal]:
    out: list[AlertSignal] = []
    for m in minutes:
        out += eng.evaluate([reading(metric, 900.0, m, flag=f) for metric, f in flags.items()])
    return out


def test_each_metric_over_range_fires_after_for_and_resolves_when_back_in_range() -> None:
    eng = engine()
    assert feed(eng, range(2), {"pm25": "T", "pm10": "N"}) == []
    fired = feed(eng, range(2, 3), {"pm25": "T", "pm10": "T"})
    assert [(s.status, s.metric, s.value) for s in fired] == [("firing", "pm25", 900.0)]
    fired = feed(eng, range(3, 5), {"pm25": "T", "pm10": "T"})
    assert [(s.status, s.metric) for s in fired] == [("firing", "pm10")]
    back = feed(eng, range(5, 6), {"pm25": "N", "pm10": "T"})
    assert [(s.status, s.metric) for s in back] == [("resolved", "pm25")]
    assert len({s.fingerprint for s in fired + back}) == 2  # one alert series per metric


def test_other_flags_and_unchosen_metrics_raise_nothing() -> None:
    eng = engine(metrics=["pm10"])
    assert feed(eng, range(10), {"pm25": "T", "pm10": "M"}) == []
    assert feed(eng, range(10, 13), {"pm10": "T"})[0].metric == "pm10"


def test_state_survives_a_restart() -> None:
    eng = engine()
    feed(eng, range(3), {"pm25": "T"})
    again = engine()
    again.restore(eng.snapshot())
    assert [s.status for s in feed(again, range(3, 4), {"pm25": "N"})] == ["resolved"]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(RuleError, match="flags"):
        engine(flags=["T"])
