"""Confirmation policies of revisit tracks: first_later, k of n looks, expiry, state files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from farsight.errors import ConfigError
from farsight.types import Location
from remote_sensing.pipeline import Region
from remote_sensing.revisits import (
    DEFAULT_POLICY,
    FIRST_LATER,
    ConfirmationPolicy,
    Track,
    from_json,
    parse_policy,
    to_json,
    update,
)
from remote_sensing.zones import ZoneOverlap

T0 = datetime(2026, 5, 1, 3, 10, tzinfo=UTC)
RED_LINE = (ZoneOverlap("red-1", "ecological_red_line", 1200.0),)


def day(n: int) -> datetime:
    return T0 + timedelta(days=5 * n)


def _region(x0: float = 111.0, kind: str = "new_construction", zones=RED_LINE) -> Region:
    d = 0.002
    g = {
        "type": "Polygon",
        "coordinates": [
            [(x0, 30.0), (x0 + d, 30.0), (x0 + d, 30.0 + d), (x0, 30.0 + d), (x0, 30.0)]
        ],
    }
    c = Location(x0 + d / 2, 30.0 + d / 2)
    return Region(
        f"{kind}-{x0}", kind, g, 40000.0, c, (x0, 30.0, x0 + d, 30.0 + d), 0.8, 400, zones
    )


def run(policy, scenes, observed=None):
    """Feed ``scenes`` (lists of regions, one scene a day step) to update; all state changes as
    (scene index, previous, state)."""
    tracks: tuple[Track, ...] = ()
    out = []
    for i, regions in enumerate(scenes):
        tracks, ch = update(tracks, regions, "aoi-1", day(i), policy, observed=observed)
        out += [(i, c.previous, c.track.state) for c in ch]
    return tracks, out


SEEN, MISS = [_region()], []


def test_first_later_confirms_on_the_next_sighting_and_never_expires():
    tracks, changes = run(FIRST_LATER, [SEEN, MISS, MISS, MISS, MISS, MISS, SEEN])
    assert changes == [(0, None, "possible"), (6, "possible", "confirmed")]
    assert tracks[0].sightings == 2 and tracks[0].looks == 6


@pytest.mark.parametrize(
    ("k", "n", "scenes", "expected"),
    [
        # 2 of 4: two later sightings within four looks confirm, on the second of them.
        (2, 4, [SEEN, SEEN, MISS, SEEN], [(0, None, "possible"), (3, "possible", "confirmed")]),
        (
            2,
            4,
            [SEEN, MISS, MISS, SEEN, SEEN],
            [(0, None, "possible"), (4, "possible", "confirmed")],
        ),
        # One later sighting in four looks: expired after the fourth; seen again, a new track.
        (
            2,
            4,
            [SEEN, SEEN, MISS, MISS, MISS, SEEN],
            [(0, None, "possible"), (4, "possible", "expired"), (5, None, "possible")],
        ),
        # 2 of 3: the first later sighting is not enough.
        (2, 3, [SEEN, SEEN], [(0, None, "possible")]),
        (2, 3, [SEEN, SEEN, SEEN], [(0, None, "possible"), (2, "possible", "confirmed")]),
        (
            3,
            4,
            [SEEN, SEEN, SEEN, MISS, SEEN],
            [(0, None, "possible"), (4, "possible", "confirmed")],
        ),
        (1, 1, [SEEN, MISS], [(0, None, "possible"), (1, "possible", "expired")]),
        (1, 1, [SEEN, SEEN], [(0, None, "possible"), (1, "possible", "confirmed")]),
    ],
)
def test_k_of_n(k, n, scenes, expected):
    _, changes = run(ConfirmationPolicy("k_of_n", k, n), scenes)
    assert changes == expected


def test_a_confirmed_track_stays_confirmed_when_not_seen_again():
    tracks, changes = run(ConfirmationPolicy("k_of_n", 1, 2), [SEEN, SEEN] + [MISS] * 5)
    assert changes[-1] == (1, "possible", "confirmed") and tracks[0].state == "confirmed"


def test_replaying_a_scene_or_an_older_one_changes_nothing():
    policy = ConfirmationPolicy("k_of_n", 2, 3)
    tracks, _ = run(policy, [SEEN, SEEN])
    for when, regions in ((day(1), SEEN), (day(1), MISS), (day(0), SEEN), (day(0), MISS)):
        again, ch = update(tracks, regions, "aoi-1", when, policy)
        assert (again, ch) == (tracks, ())
    # An expired track: its opening scene replayed opens no new track.
    expired, _ = run(ConfirmationPolicy("k_of_n", 1, 1), [SEEN, MISS])
    assert expired[0].state == "expired"
    assert update(expired, SEEN, "aoi-1", day(0), policy) == (expired, ())


def test_expiry_is_a_state_change_that_resolves_the_alert():
    from farsight.registry import Registry
    from remote_sensing.events import change_event
    from rules.engine import Engine
    from rules.loader import load_ruleset

    engine = Engine(load_ruleset(), Registry((), ("env",)))
    policy = ConfirmationPolicy("k_of_n", 2, 2)
    tracks, opened = update((), SEEN, "aoi-1", day(0), policy)
    tracks, _ = update(tracks, MISS, "aoi-1", day(1), policy)
    tracks, expired = update(tracks, MISS, "aoi-1", day(2), policy)
    (c,) = expired
    assert (c.previous, c.track.state, c.track.looks, c.ts) == ("possible", "expired", 2, day(2))
    # The event stands for the track's last outline, in the zones it touched.
    assert c.region.kind == "new_construction" and c.region.zones == RED_LINE
    assert c.region.area_m2 == pytest.approx(_region().area_m2, rel=0.5)
    (fire,) = engine.judge_changes([change_event(opened[0], day(-6), day(0), "env")])
    (close,) = engine.judge_changes([change_event(c, day(-6), day(2), "env")])
    assert (fire.status, close.status) == ("firing", "resolved")
    assert close.fingerprint == fire.fingerprint
    # Seen again after expiry: a new track, under an id of its own.
    tracks, again = update(tracks, SEEN, "aoi-1", day(3), policy)
    assert [(x.previous, x.track.state) for x in again] == [(None, "possible")]
    assert again[0].track.id != c.track.id and len(tracks) == 2


def test_a_scene_that_did_not_observe_the_area_is_no_look():
    policy = ConfirmationPolicy("k_of_n", 1, 2)
    # Cloudy over the track five times: it waits.
    tracks, changes = run(policy, [SEEN] + [MISS] * 5, observed=lambda t: False)
    assert changes == [(0, None, "possible")]
    assert tracks[0].looks == 0 and tracks[0].state == "possible"
    # The same scenes observed: expired after two.
    _, changes = run(policy, [SEEN] + [MISS] * 5, observed=lambda t: True)
    assert changes[-1] == (2, "possible", "expired")
    # A sighting is a look whatever observed() says.
    _, changes = run(policy, [SEEN, MISS, SEEN], observed=lambda t: False)
    assert changes[-1] == (2, "possible", "confirmed")


def test_tracks_of_other_aois_are_left_alone():
    policy = ConfirmationPolicy("k_of_n", 1, 1)
    tracks, _ = update((), SEEN, "aoi-1", day(0), policy)
    later, ch = update(tracks, MISS, "aoi-2", day(1), policy)
    assert (later, ch) == (tracks, ())


def test_state_file_round_trip_and_version_1():
    policy = ConfirmationPolicy("k_of_n", 2, 4)
    tracks, _ = run(policy, [[_region(), _region(111.1, "water_gain", ())], SEEN, MISS])
    doc = to_json(tracks)
    assert doc["version"] == 2
    assert from_json(doc) == tracks
    assert [t.looks for t in tracks] == [2, 2]
    # A version 1 file (before looks were counted): its tracks load and count looks from now.
    v1 = {
        "version": 1,
        "tracks": [
            {
                "id": "aoi-1:x",
                "aoi": "aoi-1",
                "kind": "new_construction",
                "geometry": _region().geometry,
                "state": "possible",
                "first_seen": day(0).isoformat(),
                "last_seen": day(1).isoformat(),
                "sightings": 2,
            }
        ],
    }
    (old,) = from_json(v1)
    assert (old.sightings, old.looks, old.last_checked, old.zones) == (2, 0, day(1), ())
    # It had one later sighting; one more within its looks confirms it under 2 of 4.
    _, ch = update((old,), SEEN, "aoi-1", day(2), policy)
    assert [(c.previous, c.track.state) for c in ch] == [("possible", "confirmed")]
    with pytest.raises(ConfigError, match="version"):
        from_json({"version": 3, "tracks": []})


def test_policy_bounds_name_their_key():
    for kw, key in (
        ({"k": 0}, "confirmation.k"),
        ({"k": 5, "n": 4}, "confirmation.n"),
        ({"n": 17}, "confirmation.n"),
        ({"rule": "sometimes"}, "confirmation.rule"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            ConfirmationPolicy(**kw)
    assert parse_policy("first_later") == FIRST_LATER
    assert parse_policy("2of4") == parse_policy("2/4") == ConfirmationPolicy("k_of_n", 2, 4)
    assert parse_policy(DEFAULT_POLICY.describe()) == DEFAULT_POLICY
    assert ConfirmationPolicy() == DEFAULT_POLICY
    with pytest.raises(ConfigError, match="--confirm"):
        parse_policy("twice")


def test_an_invalid_outline_is_matched_not_refused():
    # A ring pinched on itself (as vectorising can make at a pixel corner): GEOS refuses to
    # intersect it as it is.
    x, y, d = 111.0, 30.0, 0.002
    ring = [(x, y), (x + d, y + d), (x + d, y), (x, y + d), (x, y)]
    bow = _region()
    bow = Region(
        bow.id,
        bow.kind,
        {"type": "Polygon", "coordinates": [ring]},
        bow.area_m2,
        bow.centroid,
        bow.bbox,
        bow.confidence,
        bow.pixels,
    )
    tracks, _ = update((), [bow], "aoi-1", day(0), FIRST_LATER)
    tracks, ch = update(tracks, [_region()], "aoi-1", day(1), FIRST_LATER)
    assert [(c.previous, c.track.state) for c in ch] == [("possible", "confirmed")]
