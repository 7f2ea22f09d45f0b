"""Revisits: possible when first seen, confirmed when seen again in a later scene (the
``first_later`` policy; the other policies are in test_confirmation.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from farsight.types import Location
from remote_sensing.pipeline import Region
from remote_sensing.revisits import FIRST_LATER, from_json, to_json, update

T0 = datetime(2026, 5, 1, 3, 10, tzinfo=UTC)


def _region(x0: float, kind: str = "new_construction", d: float = 0.002) -> Region:
    g = {
        "type": "Polygon",
        "coordinates": [
            [(x0, 30.0), (x0 + d, 30.0), (x0 + d, 30.0 + d), (x0, 30.0 + d), (x0, 30.0)]
        ],
    }
    return Region(
        f"{kind}-{x0}",
        kind,
        g,
        40000.0,
        Location(x0 + d / 2, 30.0 + d / 2),
        (x0, 30.0, x0 + d, 30.0 + d),
        0.8,
        400,
    )


def test_possible_then_confirmed_then_quiet():
    tracks, ev = update((), [_region(111.0)], "aoi-1", T0)
    assert [(e.previous, e.track.state) for e in ev] == [(None, "possible")]
    again, ev = update(tracks, [_region(111.0)], "aoi-1", T0)  # the same scene again
    assert ev == () and again == tracks
    shifted = _region(111.0003)  # a slightly different outline next time
    tracks, ev = update(tracks, [shifted], "aoi-1", T0 + timedelta(days=5), FIRST_LATER)
    assert [(e.previous, e.track.state, e.track.sightings) for e in ev] == [
        ("possible", "confirmed", 2)
    ]
    tracks, ev = update(tracks, [shifted], "aoi-1", T0 + timedelta(days=10), FIRST_LATER)
    assert ev == () and tracks[0].sightings == 3


def test_other_kind_aoi_or_place_is_another_track():
    tracks, _ = update((), [_region(111.0)], "aoi-1", T0)
    later = T0 + timedelta(days=5)
    for regions, aoi in (
        ([_region(111.0, "bare_soil")], "aoi-1"),
        ([_region(111.0)], "aoi-2"),
        ([_region(111.1)], "aoi-1"),
    ):
        new, ev = update(tracks, regions, aoi, later)
        assert len(new) == 2 and ev[0].previous is None and ev[0].track.state == "possible"


def test_state_round_trips_through_json():
    tracks, _ = update((), [_region(111.0), _region(111.1, "water_gain")], "aoi-1", T0)
    assert from_json(to_json(tracks)) == tracks
    assert from_json({}) == ()


def test_state_changes_become_one_alert_series_whose_severity_rises():
    from farsight.registry import Registry
    from remote_sensing.events import change_event
    from remote_sensing.zones import ZoneOverlap
    from rules.engine import Engine
    from rules.loader import load_ruleset

    engine = Engine(load_ruleset(), Registry((), ("env",)))
    base = _region(111.0)
    in_red_line = Region(
        base.id,
        base.kind,
        base.geometry,
        base.area_m2,
        base.centroid,
        base.bbox,
        base.confidence,
        base.pixels,
        (ZoneOverlap("red-1", "ecological_red_line", 1200.0),),
        ("ab" * 32,),
    )
    tracks, first = update((), [in_red_line], "aoi-1", T0)
    tracks, second = update(tracks, [in_red_line], "aoi-1", T0 + timedelta(days=5), FIRST_LATER)
    e1 = change_event(first[0], T0 - timedelta(days=30), T0, "env")
    e2 = change_event(second[0], T0 - timedelta(days=30), T0 + timedelta(days=5), "env")
    assert (e1.state, e2.state, e2.sightings, e2.zones) == (
        "possible",
        "confirmed",
        2,
        (("red-1", "ecological_red_line"),),
    )
    (s1,) = engine.judge_changes([e1])
    (s2,) = engine.judge_changes([e2])
    assert s1.rule_id == s2.rule_id == "rs-change-protected"
    assert s1.fingerprint == s2.fingerprint and s1.status == s2.status == "firing"
    assert (s1.severity, s2.severity) == ("major", "critical")
    assert (
        "red-1" in s2.summary
        and "confirmed" in s2.summary
        and s2.value == 40000.0
        and s2.evidence == ("ab" * 32,)
    )
    assert dict(s2.labels)["state"] == "confirmed" and s2.department == "env" and s2.site == "aoi-1"
    # Outside every zone the default pack raises nothing.
    _, lone = update((), [base], "aoi-2", T0)
    assert engine.judge_changes([change_event(lone[0], T0 - timedelta(days=30), T0)]) == []
