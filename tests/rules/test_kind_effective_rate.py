"""``effective_rate``: a site's effective data transmission rate of a day below a threshold
raises an alert, judged when the day is over; a good day raises nothing and resolves it."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from farsight.types import AlertSignal, Reading
from ingest.store import ReadingStore
from rules.engine import Engine
from rules.kinds.effective_rate import EffectiveRateModel
from rules.loader import load_ruleset, parse_ruleset
from tests.quality_day import AQ_METRICS, DAY, STACK_STOPPED, make_registry, truth

RULE = {"id": "rate", "kind": "effective_rate", "severity": "warning", "threshold": 0.9}


def _engine(declared: bool = False, **fields: object) -> Engine:
    return Engine(parse_ruleset({"rules": [{**RULE, **fields}]}), make_registry(declared))


def _air(start: datetime, minutes: int, flag: str = "N") -> list[Reading]:
    return [
        Reading("qd-air", "aq1", m, 10.0, "ug/m3", start + timedelta(minutes=k), flag=flag)
        for k in range(minutes)
        for m in AQ_METRICS
    ]


def _summary(sigs: list[AlertSignal]) -> list[tuple[str, str, float | None]]:
    return [(s.status, s.site, s.value) for s in sigs]


def test_the_simulated_day_raises_for_the_bad_site_only(
    quality_day_sqlite: Path, tmp_path: Path
) -> None:
    registry = make_registry()
    shutil.copyfile(quality_day_sqlite, tmp_path / "day.db")
    store = ReadingStore(tmp_path / "day.db")
    e = _engine()
    sigs: list[AlertSignal] = []
    batch: list[Reading] = []
    for r in store.iter_range(DAY, DAY + timedelta(days=1)):
        batch.append(r)
        if len(batch) == 500:
            sigs += e.evaluate(batch)
            batch = []
    sigs += e.evaluate(batch)
    store.close()
    assert sigs == []  # nothing is judged before the day is over
    # The engine's clock moves on: the day is judged once the site's clock passes end + grace.
    assert e.tick(DAY + timedelta(days=1)) == []
    assert e.tick(DAY + timedelta(days=1, minutes=59)) == []
    sigs = e.tick(DAY + timedelta(days=1, hours=1, minutes=1))
    stack = truth(registry, "qd-stack", "cems1")
    air = truth(registry, "qd-air", "aq1")
    rate = 100 * sum(stack.valid) / sum(stack.expected)
    assert sum(air.valid) / sum(air.expected) >= 0.9  # the air station had a good day
    assert _summary(sigs) == [("firing", "qd-stack", round(rate, 2))]
    (s,) = sigs
    ann = dict(s.annotations)
    assert s.ts == DAY + timedelta(days=1) and s.threshold == 90.0
    assert f"{sum(stack.valid)} of {sum(stack.expected)}" in ann["summary"]
    assert "2026-11-24" in ann["summary"]


def test_a_bad_day_fires_a_good_day_resolves_and_flags_do_not_count() -> None:
    e = _engine(select={"site": "qd-air"})
    # Day 1: 12 hours of data, 2 of them flagged M (maintenance): 10 of 24 hours valid.
    assert e.evaluate(_air(DAY, 10 * 60)) == []
    assert e.evaluate(_air(DAY + timedelta(hours=10), 2 * 60, flag="M")) == []
    day2 = DAY + timedelta(days=1)
    sigs = e.evaluate(_air(day2, 1))
    assert _summary(sigs) == [("firing", "qd-air", round(100 * 10 / 24, 2))]
    # Day 2 complete but for 60 minutes: 95.8 %, above 90 %: resolved when day 3 begins.
    assert e.evaluate(_air(day2 + timedelta(minutes=1), 23 * 60 - 1)) == []
    sigs = e.evaluate(_air(DAY + timedelta(days=2), 1))
    assert _summary(sigs) == [("resolved", "qd-air", round(100 * 23 / 24, 2))]


def test_a_site_that_sends_nothing_is_judged_on_the_engine_clock() -> None:
    e = _engine()
    assert e.tick(DAY) == []
    assert e.tick(DAY + timedelta(hours=20)) == []
    sigs = e.tick(DAY + timedelta(days=1, hours=2))
    # Both env sites owe data; the weigh station owes nothing on a cadence.
    assert sorted(_summary(sigs)) == [("firing", "qd-air", 0.0), ("firing", "qd-stack", 0.0)]


def test_counts_survive_a_restart_and_a_part_day_owes_from_the_start() -> None:
    e = _engine(select={"site": "qd-air"})
    noon = DAY + timedelta(hours=12)
    assert e.tick(noon) == []  # the engine starts watching at noon
    assert e.evaluate(_air(noon, 6 * 60)) == []
    saved = e.snapshot()
    again = _engine(select={"site": "qd-air"})
    again.restore(saved)
    assert again.evaluate(_air(noon + timedelta(hours=6), 5 * 60)) == []
    sigs = again.evaluate(_air(DAY + timedelta(days=1), 1))
    # 11 of the 12 hours owed since noon: 91.67 %, not below 90 %: nothing fires.
    assert sigs == []
    strict = _engine(select={"site": "qd-air"}, threshold=0.95)
    strict.tick(noon)
    strict.evaluate(_air(noon, 11 * 60))
    (s,) = strict.evaluate(_air(DAY + timedelta(days=1), 1))
    assert (s.status, s.value) == ("firing", round(100 * 11 / 12, 2))


def test_the_default_pack_has_the_rule() -> None:
    rules = {r.id: r for r in load_ruleset()}
    rule = rules["site-effective-rate"]
    assert rule.kind == "effective_rate"
    assert rule.spec_as(EffectiveRateModel).threshold == pytest.approx(0.9)


def test_a_declared_stoppage_is_owed_nothing(quality_day_sqlite: Path, tmp_path: Path) -> None:
    registry = make_registry(declared=True)
    # A declaration changes what is owed, not what arrives: the same simulated day.
    shutil.copyfile(quality_day_sqlite, tmp_path / "day.db")
    store = ReadingStore(tmp_path / "day.db")
    e = _engine(declared=True, threshold=0.99)
    e.evaluate(list(store.iter_range(DAY, DAY + timedelta(days=1))))
    store.close()
    assert e.tick(DAY + timedelta(days=1)) == []  # the site's clock starts to move
    sigs = e.tick(DAY + timedelta(days=1, hours=1, minutes=1))
    want = truth(registry, "qd-stack", "cems1", declared=[STACK_STOPPED])
    undeclared = truth(registry, "qd-stack", "cems1")
    (stack,) = [s for s in sigs if s.site == "qd-stack"]
    # The same rate as the quality figures: the declared hours neither owed nor counted.
    assert stack.value == round(100 * sum(want.valid) / sum(want.expected), 2)
    assert stack.value > round(100 * sum(undeclared.valid) / sum(undeclared.expected), 2)
