"""``near_limit`` rules (贴限排放): readings held in a band just under the limit."""

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

STACK = {
    "site": "yc-stack-1",
    "device": "cems1",
    "unit": "mg/m3",
}  # so2 permit 35: the band is 31.5..35

MIDNIGHT = -480  # minutes from T0 (08:00 Beijing) back to 00:00 Beijing time


def near(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "near",
        "kind": "near_limit",
        "select": {"metric": "so2", "device_kind": "cems"},
        "window": "24h",
        "limit": "site_limit",
        "band": 0.1,
        "min_share": 0.6,
        "severity": "major",
    }
    base.update(fields)
    return base


def so2(values: Iterable[float], start: float = MIDNIGHT, step: float = 10) -> list[Reading]:
    return [reading("so2", v, start + i * step, **STACK) for i, v in enumerate(values)]


def day(in_band: int, under: int, above: int = 0) -> list[float]:
    """144 ten-minute values of one day, interleaved: in the band, well under, over the limit."""
    values = (
        [33.8, 34.6, 31.5, 35.0] * (in_band // 4)
        + [34.2] * (in_band % 4)
        + [18.0] * under
        + [41.0] * above
    )
    assert len(values) == 144
    return sorted(values, key=lambda v: hash(v) % 7)  # any order: the share does not care


def test_a_day_held_just_under_the_permit_fires_at_midnight() -> None:
    e = engine(
        near(
            summary="{share_pct}% of {count} SO2 readings in {band_low}..{limit} {level_unit} on"
            " {window_start}"
        )
    )
    assert (
        e.evaluate(so2(day(in_band=101, under=43))) == []
    )  # 70 % in the band (31.5 and 35.0 included)
    (sig,) = e.evaluate(so2([20.0], start=MIDNIGHT + 1440))
    assert (sig.status, sig.ts, sig.threshold) == ("firing", at(MIDNIGHT + 1440), 0.6)
    assert sig.value == pytest.approx(101 / 144)
    assert sig.summary == "70.1% of 144 SO2 readings in 31.5..35 mg/m3 on 2026-11-25T00:00:00+08:00"
    # The next day is ordinary: resolved at its end.
    e.evaluate(so2([20.0] * 143, start=MIDNIGHT + 1450))
    (res,) = e.evaluate(so2([20.0], start=MIDNIGHT + 2880))
    assert (res.status, res.ts, res.value) == ("resolved", at(MIDNIGHT + 2880), 0.0)


def test_a_plant_that_scatters_under_the_limit_is_not_near_limit() -> None:
    e = engine(near())
    assert e.evaluate(so2(day(in_band=72, under=72) + [20.0])) == []  # 50 %
    assert e.series_state("near", "yc-stack-1", "cems1", "so2") == "inactive"


def test_exceedances_are_counted_apart_not_as_near_limit() -> None:
    e = engine(near(min_share=0.5, summary="{in_band} in band, {above} above, {count} readings"))
    # 50 in the band and 60 over the limit: 35 % near-limit, the rest is another rule's business.
    sigs = e.evaluate(so2(day(in_band=50, under=34, above=60) + [20.0]))
    assert sigs == []
    e2 = engine(near(min_share=0.3, summary="{in_band} in band, {above} above, {count} readings"))
    (sig,) = e2.evaluate(so2(day(in_band=50, under=34, above=60) + [20.0]))
    assert sig.summary == "50 in band, 60 above, 144 readings"


def test_min_count_leaves_a_thin_day_unjudged() -> None:
    e = engine(near(min_count=120))
    assert e.evaluate(so2([34.0] * 100 + [20.0])) == []  # 100 readings in the day only
    # (The reading at midnight opens the next window and counts there.)
    e2 = engine(near(min_count=100))
    assert [
        s.status for s in e2.evaluate(so2([34.0] * 100) + so2([20.0], start=MIDNIGHT + 1440))
    ] == ["firing"]


def test_the_credit_factor_does_not_move_the_permit() -> None:
    # Grade C with a tighter factor: near-limit is still judged against the 35 the plant holds.
    e = engine(
        near(window="1h", credit={"C": {"limit_factor": 0.5}}, summary="{band_low}..{limit}")
    )
    (sig,) = e.evaluate(so2([34.0] * 6 + [20.0], start=0))
    assert sig.summary == "31.5..35"


def test_a_fixed_limit_and_a_short_window() -> None:
    e = engine(near(window="1h", limit=50, band=0.05))
    sigs = e.evaluate(so2([48.0] * 4 + [30.0] * 2 + [30.0], start=0))  # 4 of 6 in 47.5..50
    assert [(s.status, s.ts) for s in sigs] == [("firing", at(60))]


def test_near_limit_state_survives_a_restart() -> None:
    data = so2(day(in_band=101, under=43) + [20.0] * 145)
    expected = engine(near()).evaluate(data)
    assert [s.status for s in expected] == ["firing", "resolved"]
    first = engine(near())
    got = first.evaluate(data[:70])
    second = engine(near())
    assert second.restore(json.loads(json.dumps(first.snapshot()))) == 1
    got += second.evaluate(data[70:])
    assert got == expected


@pytest.mark.parametrize(
    "fields, path, words",
    [
        ({"band": 0}, "rules.0[near].band", "greater than 0"),
        ({"band": 1}, "rules.0[near].band", "less than 1"),
        ({"min_share": 0}, "rules.0[near].min_share", "greater than 0"),
        ({"limit": "permit"}, "rules.0[near].limit", "site_limit"),
        ({"select": {}}, "rules.0[near]", "select.metric is required"),
    ],
)
def test_invalid_near_limit_rules_name_the_key(
    fields: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [near(**fields)]})
    assert any(
        p.path == path or p.path.startswith(path + ".") for p in info.value.problems
    )  # unions add the branch
    assert words in str(info.value)
