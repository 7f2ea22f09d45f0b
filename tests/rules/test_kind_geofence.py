"""``geofence``: point in polygon, entry and dwell alerts per zone."""

from __future__ import annotations

import copy

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from farsight.credit import make_credit_code
from farsight.errors import RuleError
from farsight.registry import Registry, parse_registry
from farsight.types import Reading
from rules.engine import Engine
from rules.kinds.geofence import point_in_polygon
from rules.loader import parse_ruleset
from tests.factories import reading, registry_doc

SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
# A "U": the notch between x 3..7 above y 3 is outside.
U_SHAPE = [(0, 0), (10, 0), (10, 10), (7, 10), (7, 3), (3, 3), (3, 10), (0, 10)]
# A "W"-like zig-zag top: a ray to the right from (1, 5) passes exactly through vertices (4, 5), (8,
# 5).
ZIGZAG = [(0, 0), (12, 0), (12, 8), (10, 8), (8, 5), (6, 8), (4, 5), (2, 8), (0, 8)]


@pytest.mark.parametrize(
    ("point", "polygon", "inside"),
    [
        ((5, 5), SQUARE, True),
        ((15, 5), SQUARE, False),
        ((-0.001, 5), SQUARE, False),
        ((0, 0), SQUARE, True),  # on a vertex
        ((10, 10), SQUARE, True),  # on the opposite vertex
        ((5, 0), SQUARE, True),  # on an edge
        ((10, 5), SQUARE, True),  # on a vertical edge
        ((5, 10.0001), SQUARE, False),
        ((5, 5), U_SHAPE, False),  # in the notch of a concave polygon
        ((5, 2), U_SHAPE, True),  # in its base
        ((1.5, 9), U_SHAPE, True),  # in a leg
        ((8.5, 9), U_SHAPE, True),
        ((7, 5), U_SHAPE, True),  # on the notch's wall
        ((1, 5), ZIGZAG, True),  # ray through two vertices at the same latitude
        ((4, 6), ZIGZAG, False),  # above the vertex (4, 5), between two teeth
        ((4, 5), ZIGZAG, True),  # on that vertex
        ((13, 5), ZIGZAG, False),  # right of everything, ray through nothing
        ((5, 5), SQUARE + [SQUARE[0]], True),  # closed ring (GeoJSON style)
        ((5, 5), [(0, 0), (10, 0)], False),  # not a polygon
    ],
)
def test_point_in_polygon(point: tuple[float, float], polygon: list, inside: bool) -> None:
    assert point_in_polygon(point[0], point[1], polygon) is inside


@given(
    st.floats(-20, 20, allow_nan=False),
    st.floats(-20, 20, allow_nan=False),
    st.floats(-10, 10, allow_nan=False),
    st.floats(-10, 10, allow_nan=False),
    st.floats(0.01, 10),
    st.floats(0.01, 10),
    st.booleans(),
)
def test_rectangles_agree_with_a_bounds_check(
    x: float, y: float, x0: float, y0: float, w: float, h: float, clockwise: bool
) -> None:
    rect = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    # The boundary counts as inside within a tolerance of about 1e-12 degrees (0.1 mm).
    assume(min(abs(x - x0), abs(x - x0 - w), abs(y - y0), abs(y - y0 - h)) > 1e-9)
    if clockwise:
        rect.reverse()
    assert point_in_polygon(x, y, rect) == (x0 <= x <= x0 + w and y0 <= y <= y0 + h)


# -- the rule through the engine -----------------------------------------------------------

SITE, DEV = "yc-fleet", "gps1"
ZONE_A = [[111.30, 30.60], [111.40, 30.60], [111.40, 30.70], [111.30, 30.70]]
ZONE_B = [[111.50, 30.60], [111.60, 30.60], [111.60, 30.70], [111.50, 30.70]]


def _registry() -> Registry:
    doc = copy.deepcopy(registry_doc())
    doc["sites"].append(
        {
            "id": SITE,
            "name": "Yichang muck-truck fleet",
            "department": "transport",
            "entity_id": make_credit_code("91420500MA4900013"),
            "location": {"lon": 111.29, "lat": 30.70},
            "kind": "fleet",
            "devices": [
                {"id": DEV, "kind": "gps", "metrics": ["lat", "lon", "speed"], "cadence_s": 30}
            ],
        }
    )
    return parse_registry(doc)


def _engine(**fields: object) -> Engine:
    rule = {
        "id": "zone",
        "kind": "geofence",
        "select": {"device_kind": "gps"},
        "severity": "warning",
        "zones": [
            {"name": "red-line A", "polygon": ZONE_A},
            {"name": "water source B", "polygon": ZONE_B},
        ],
        **fields,
    }
    return Engine(parse_ruleset({"rules": [rule]}), _registry())


def fix(minutes: float, lon: float, lat: float) -> list[Reading]:
    return [
        reading("lat", lat, minutes, site=SITE, device=DEV, unit="deg"),
        reading("lon", lon, minutes, site=SITE, device=DEV, unit="deg"),
    ]


def test_enter_fires_on_the_first_point_inside_and_resolves_on_leaving() -> None:
    e = _engine(mode="enter")
    assert e.evaluate(fix(0, 111.20, 30.65)) == []
    sigs = e.evaluate(fix(1, 111.35, 30.65))
    assert [(s.status, s.site, s.device, s.metric, s.severity) for s in sigs] == [
        ("firing", SITE, DEV, "", "warning")
    ]
    assert (
        sigs[0].summary
        == "gps1 at Yichang muck-truck fleet inside red-line A since 2026-11-25T08:01:00+08:00 (0"
        " min)"
    )
    assert e.evaluate(fix(2, 111.36, 30.66)) == []
    assert [s.status for s in e.evaluate(fix(3, 111.45, 30.65))] == ["resolved"]


def test_dwell_fires_only_after_staying_inside() -> None:
    e = _engine(mode="dwell", dwell="10m")
    e.evaluate(fix(0, 111.35, 30.65))
    assert e.evaluate(fix(9, 111.35, 30.65)) == []
    sigs = e.evaluate(fix(10, 111.35, 30.66))
    assert [(s.status, s.value, s.threshold) for s in sigs] == [("firing", 10.0, 10.0)]
    assert "since 2026-11-25T08:00:00+08:00 (10 min)" in sigs[0].summary
    # A short visit never fires.
    e2 = _engine(mode="dwell", dwell="10m")
    e2.evaluate(fix(0, 111.35, 30.65))
    assert e2.evaluate(fix(5, 111.20, 30.65)) == []
    assert e2.evaluate(fix(6, 111.35, 30.65)) == []
    assert e2.evaluate(fix(15, 111.35, 30.65)) == []  # re-entered at 6: 9 minutes only
    assert [s.status for s in e2.evaluate(fix(16, 111.35, 30.65))] == ["firing"]


def test_each_zone_is_its_own_alert() -> None:
    e = _engine()
    a = e.evaluate(fix(0, 111.35, 30.65))
    b = e.evaluate(fix(1, 111.55, 30.65))
    assert [s.status for s in a] == ["firing"]
    assert sorted(s.status for s in b) == ["firing", "resolved"]
    assert "water source B" in next(s for s in b if s.status == "firing").summary
    assert len({s.fingerprint for s in a + b}) == 2


def test_a_point_without_both_coordinates_or_out_of_range_is_ignored() -> None:
    e = _engine()
    assert e.evaluate([reading("lat", 30.65, 0, site=SITE, device=DEV)]) == []
    assert e.evaluate(fix(1, 999.0, 30.65)) == []


@pytest.mark.parametrize(
    ("zones", "needle"),
    [
        ([{"name": "a", "polygon": [[111.3, 30.6], [111.4, 30.6]]}], "polygon"),
        ([{"name": "a", "polygon": [[30.6, 111.3], [30.6, 111.4], [30.7, 111.4]]}], "lon, lat"),
        ([{"name": "a", "polygon": [[1, 1], [1, 1], [2, 2], [2, 2]]}], "3 distinct"),
        ([{"name": "a", "polygon": ZONE_A}, {"name": "a", "polygon": ZONE_B}], "unique"),
        ([], "zones"),
    ],
)
def test_invalid_zones_are_refused(zones: list, needle: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [{"id": "z", "kind": "geofence", "zones": zones}]})
    assert needle in str(info.value)
