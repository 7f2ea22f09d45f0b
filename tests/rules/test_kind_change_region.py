"""``change_region``: satellite change events judged by rules (kind, area, zone kinds, area of
interest), one alert series per tracked region whose severity rises once confirmed; and the
default pack's two change rules (change events are not reading series, so `rules test` files
cannot drive them: they are tested here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from farsight.errors import ConfigError
from farsight.registry import Registry
from farsight.types import ChangeEvent, ChangeRegion, Location
from rules.engine import Engine
from rules.loader import load_ruleset, parse_ruleset

DEFAULT_PACK_RULES_TESTED = ("rs-change-protected", "rs-change-farmland-river-road")
"""Default-pack rules this module tests (read by test_pack_tests' coverage check)."""

T1 = datetime(2026, 5, 11, 3, 10, tzinfo=UTC)
SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[111.3, 30.7], [111.301, 30.7], [111.301, 30.701], [111.3, 30.701], [111.3, 30.7]]
    ],
}


def event(
    kind: str = "new_construction",
    area_ha: float = 2.0,
    zones: tuple = (("red-1", "ecological_red_line"),),
    state: str = "possible",
    sightings: int = 1,
    aoi: str = "aoi-1",
    track: str = "t1",
) -> ChangeEvent:
    region = ChangeRegion(
        aoi,
        kind,
        SQUARE,
        area_ha * 10_000,
        Location(111.3005, 30.7005),
        0.9,
        T1 - timedelta(days=60),
        T1,
        ("cd" * 32,),
    )
    return ChangeEvent(region, track, state, sightings, zones, "env")


def engine(doc: dict | None = None) -> Engine:
    return Engine(parse_ruleset(doc) if doc else load_ruleset(), Registry((), ("env",)))


def test_protected_zone_change_is_major_then_critical_on_one_alert_series() -> None:
    e = engine()
    (first,) = e.judge_changes([event()])
    (again,) = e.judge_changes([event(state="confirmed", sightings=2)])
    assert first.rule_id == "rs-change-protected" and first.fingerprint == again.fingerprint
    assert (first.severity, again.severity) == ("major", "critical")
    assert first.summary == "new construction of 2 ha in red-1 (possible, seen 1x)"
    assert (first.site, first.device, first.metric, first.value, first.department) == (
        "aoi-1",
        "satellite",
        "new_construction",
        20000.0,
        "env",
    )
    assert (
        first.evidence == ("cd" * 32,)
        and dict(first.annotations)["centroid"] == "111.300500,30.700500"
    )
    # Another track is another alert.
    (other,) = e.judge_changes([event(track="t2")])
    assert other.fingerprint != first.fingerprint


def test_farmland_rule_skips_vegetation_loss_small_changes_and_changes_outside_zones() -> None:
    e = engine()
    farm = (("farm-7", "basic_farmland"),)
    (s,) = e.judge_changes([event("bare_soil", 0.5, farm)])
    assert (s.rule_id, s.severity) == ("rs-change-farmland-river-road", "warning")
    assert e.judge_changes([event("vegetation_loss", 5.0, farm)]) == []  # harvest, usually
    assert e.judge_changes([event("new_construction", 0.2, farm)]) == []  # under 0.25 ha
    assert e.judge_changes([event(zones=())]) == []  # outside every zone
    assert (
        e.judge_changes([event("new_construction", 0.05)]) == []
    )  # under 0.1 ha even in a red line


def test_rule_fields_select_kinds_aois_and_area() -> None:
    e = engine(
        {
            "rules": [
                {
                    "id": "pits-east",
                    "kind": "change_region",
                    "change_kinds": ["bare_soil"],
                    "aois": ["east"],
                    "min_area_ha": 1,
                    "severity": "info",
                    "confirmed_severity": "warning",
                    "summary": "{change} {area_ha} ha at {aoi}",
                }
            ]
        }
    )
    assert [
        s.summary for s in e.judge_changes([event("bare_soil", 1.5, aoi="east", zones=())])
    ] == ["bare soil 1.5 ha at east"]
    assert e.judge_changes([event("bare_soil", 1.5, aoi="west")]) == []
    assert e.judge_changes([event("bare_soil", 0.5, aoi="east")]) == []
    assert e.judge_changes([event("water_gain", 5, aoi="east")]) == []


def test_bad_change_rules_are_refused_with_their_key_paths() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_ruleset(
            {
                "rules": [
                    {
                        "id": "x",
                        "kind": "change_region",
                        "change_kinds": ["volcano"],
                        "zone_kinds": ["moon"],
                        "min_area_ha": -1,
                    }
                ]
            }
        )
    text = str(exc.value)
    assert "change_kinds" in text and "zone_kinds" in text and "min_area_ha" in text


def test_change_events_validate_their_state() -> None:
    with pytest.raises(ValueError):
        event(state="maybe")
