"""Zones of interest (protected areas, ecological red lines, basic farmland, river buffers, highway
right-of-way) and the overlap of a change with them.

Zones are GeoJSON features in lon/lat (RFC 7946) with ``id``, ``name`` and ``kind`` properties;
overlap areas are ground areas in square metres (equal-area, see
:func:`remote_sensing.postprocess.equal_area_m2`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shapely.errors import GEOSException
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import make_valid

from farsight.errors import ConfigError, ConfigProblem
from remote_sensing.postprocess import equal_area_m2

ZONE_KINDS: tuple[str, ...] = (
    "protected_area",
    "ecological_red_line",
    "basic_farmland",
    "river_buffer",
    "highway_row",
    "other",
)
"""Zone kinds; a feature without a kind is ``other``."""


@dataclass(frozen=True, slots=True)
class Zone:
    """One zone of interest: id, name, kind and lon/lat polygon (a shapely geometry)."""

    id: str
    name: str
    kind: str
    shape: BaseGeometry


@dataclass(frozen=True, slots=True)
class ZoneOverlap:
    """The part of a change inside one zone."""

    zone: str
    kind: str
    overlap_m2: float


def parse_zones(fc: dict[str, Any], source: str = "zones") -> tuple[Zone, ...]:
    """Zones from a GeoJSON FeatureCollection (or a single Feature).

    Raises
    ------
    ConfigError
        Listing every bad feature: no polygon geometry, an unknown kind, coordinates that are not
        lon/lat, a duplicate id.
    """
    if fc.get("type") == "Feature":
        fc = {"type": "FeatureCollection", "features": [fc]}
    if fc.get("type") != "FeatureCollection" or not isinstance(fc.get("features"), list):
        raise ConfigError(
            [
                ConfigProblem(
                    "type", fc.get("type"), "zones must be a GeoJSON FeatureCollection of polygons"
                )
            ],
            source,
        )
    problems: list[ConfigProblem] = []
    zones: list[Zone] = []
    seen: set[str] = set()
    for i, f in enumerate(fc["features"]):
        props = f.get("properties") or {}
        zid = str(f.get("id") or props.get("id") or f"zone-{i}")
        kind = str(props.get("kind") or "other")
        where = f"features[{i}]"
        if kind not in ZONE_KINDS:
            problems.append(
                ConfigProblem(
                    f"{where}.properties.kind",
                    kind,
                    f"unknown zone kind; known: {', '.join(ZONE_KINDS)}",
                )
            )
            continue
        geom = f.get("geometry") or {}
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            problems.append(
                ConfigProblem(
                    f"{where}.geometry.type",
                    geom.get("type"),
                    "a zone must be a Polygon or MultiPolygon (buffer lines before use)",
                )
            )
            continue
        try:
            s = shape(geom)
        except (GEOSException, ValueError, TypeError, IndexError) as exc:
            problems.append(
                ConfigProblem(f"{where}.geometry", None, f"invalid coordinates ({exc})")
            )
            continue
        minx, miny, maxx, maxy = s.bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            problems.append(
                ConfigProblem(
                    f"{where}.geometry",
                    s.bounds,
                    "coordinates must be lon/lat (RFC 7946); reproject the zones to EPSG:4326",
                )
            )
            continue
        if zid in seen:
            problems.append(ConfigProblem(f"{where}.id", zid, "duplicate zone id"))
            continue
        seen.add(zid)
        zones.append(
            Zone(zid, str(props.get("name") or zid), kind, s if s.is_valid else make_valid(s))
        )
    if problems:
        raise ConfigError(problems, source)
    return tuple(zones)


def overlaps(geom_ll: dict[str, Any], zones: tuple[Zone, ...]) -> tuple[ZoneOverlap, ...]:
    """The zones a lon/lat polygon touches and the area (m2) of each overlap, largest first."""
    s = shape(geom_ll)
    if not s.is_valid:
        s = make_valid(s)
    out = []
    for z in zones:
        if not s.intersects(z.shape):
            continue
        inter = s.intersection(z.shape)
        area = equal_area_m2(mapping(inter)) if not inter.is_empty and inter.area > 0 else 0.0
        out.append(ZoneOverlap(z.id, z.kind, round(area, 1)))
    return tuple(sorted(out, key=lambda o: -o.overlap_m2))
