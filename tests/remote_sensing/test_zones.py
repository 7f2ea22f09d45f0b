"""Zones of interest: parsing with clear errors, overlap areas in m2."""

from __future__ import annotations

import pytest

from farsight.errors import ConfigError
from remote_sensing.postprocess import equal_area_m2
from remote_sensing.zones import overlaps, parse_zones


def _square(x0, y0, d):
    return {
        "type": "Polygon",
        "coordinates": [[(x0, y0), (x0 + d, y0), (x0 + d, y0 + d), (x0, y0 + d), (x0, y0)]],
    }


ZONES = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": "farm-1",
            "properties": {"name": "Basic farmland", "kind": "basic_farmland"},
            "geometry": _square(111.0, 30.0, 0.01),
        },
        {
            "type": "Feature",
            "properties": {"id": "river-1", "kind": "river_buffer"},
            "geometry": _square(111.02, 30.0, 0.01),
        },
    ],
}


def test_overlap_area_of_a_change_half_inside_a_zone():
    zones = parse_zones(ZONES)
    change = _square(111.009, 30.004, 0.002)  # half inside farm-1
    (hit,) = overlaps(change, zones)
    assert hit.zone == "farm-1" and hit.kind == "basic_farmland"
    assert hit.overlap_m2 == pytest.approx(equal_area_m2(change) / 2, rel=0.01)
    assert overlaps(_square(111.05, 30.05, 0.001), zones) == ()
    both = overlaps(
        {
            "type": "Polygon",
            "coordinates": [
                [
                    (111.005, 30.001),
                    (111.025, 30.001),
                    (111.025, 30.002),
                    (111.005, 30.002),
                    (111.005, 30.001),
                ]
            ],
        },
        zones,
    )
    assert {h.zone for h in both} == {"farm-1", "river-1"}


def test_bad_zones_report_every_problem_with_its_path():
    bad = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"kind": "golf_course"},
                "geometry": _square(111, 30, 0.01),
            },
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "LineString", "coordinates": [(111, 30), (111.1, 30)]},
            },
            {"type": "Feature", "properties": {}, "geometry": _square(520000, 3400000, 100)},
        ],
    }
    with pytest.raises(ConfigError) as err:
        parse_zones(bad, "zones.geojson")
    text = str(err.value)
    assert "zones.geojson: 3 configuration error(s)" in text
    assert (
        "features[0].properties.kind" in text
        and "features[1].geometry.type" in text
        and "reproject the zones to EPSG:4326" in text
    )
