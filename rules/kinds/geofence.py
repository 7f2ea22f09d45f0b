"""``geofence``: a tracked vehicle inside a zone (a muck truck in a protected area, a hazardous
goods truck in a water-source zone), on entry or after dwelling.

A GPS tracker reports ``lat`` and ``lon`` (WGS 84 degrees) in one sample. ``zones`` are inline
polygons of ``[lon, lat]`` vertices (GeoJSON order). ``mode: enter`` fires on the first point
inside a zone and resolves on the first point outside; ``mode: dwell`` fires once the vehicle
has been inside longer than ``dwell`` (measured between its own points, event time) and
resolves when it leaves. Each zone is its own alert series (verdict key = zone name).

Points are tested in the plane of longitude and latitude, which is exact enough for zones of a
few kilometres away from the poles; polygons must not cross the antimeridian. A point on the
boundary (an edge or a vertex) counts as inside: a vehicle on the fence line is at the zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from farsight.clock import BEIJING
from rules.conditions import Binding, Condition, Sample, Verdict, ms_ts, ts_ms
from rules.model import Duration, RuleModel, parse_duration
from rules.registry import RuleKind, register_kind

Point = tuple[float, float]

_EPS = 1e-12
"""Tolerance (degrees squared, cross-product units) for "on the boundary": about 0.1 mm."""


def _on_segment(x: float, y: float, a: Point, b: Point) -> bool:
    (x1, y1), (x2, y2) = a, b
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    if abs(cross) > _EPS:
        return False
    return (
        min(x1, x2) - _EPS <= x <= max(x1, x2) + _EPS
        and min(y1, y2) - _EPS <= y <= max(y1, y2) + _EPS
    )


def point_in_polygon(lon: float, lat: float, polygon: Sequence[Point]) -> bool:
    """Whether (``lon``, ``lat``) lies inside ``polygon`` or on its boundary.

    Parameters
    ----------
    lon, lat
        The point, in degrees.
    polygon
        Vertices ``(lon, lat)`` in order, either orientation, closed or not (a repeated first
        vertex at the end is ignored); simple polygons, convex or concave.

    Returns
    -------
    bool
        True inside or on an edge or vertex.

    Notes
    -----
    Ray casting (crossing number) with a half-open rule per edge: an edge counts when one end
    is strictly above the point's latitude and the other is not, so a ray through a vertex is
    counted once, and horizontal edges never. The boundary is tested first, explicitly.
    """
    pts = list(polygon)
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    n = len(pts)
    if n < 3:
        return False
    inside = False
    j = n - 1
    for i in range(n):
        xi, yi = pts[i]
        xj, yj = pts[j]
        if _on_segment(lon, lat, pts[j], pts[i]):
            return True
        if (yi > lat) != (yj > lat):
            x_cross = xi + (lat - yi) * (xj - xi) / (yj - yi)
            if lon < x_cross:
                inside = not inside
        j = i
    return inside


class Zone(BaseModel):
    """A named polygon."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        title="Name",
        description="Zone name, shown in the alert; unique within the rule.",
        min_length=1,
        max_length=100,
    )
    polygon: tuple[tuple[float, float], ...] = Field(
        title="Polygon",
        description="Vertices [lon, lat] in degrees (WGS 84, GeoJSON order); closed or not.",
        min_length=3,
        max_length=10_000,
    )

    @field_validator("polygon")
    @classmethod
    def _valid(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        for lon, lat in v:
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValueError(
                    f"vertex [{lon}, {lat}] is not [lon, lat] in degrees (lon -180..180, lat"
                    " -90..90)"
                )
        if len(set(v)) < 3:
            raise ValueError("a polygon needs at least 3 distinct vertices")
        lons = [p[0] for p in v]
        if max(lons) - min(lons) > 180:
            raise ValueError("polygons crossing the antimeridian are not supported")
        return v


class GeofenceModel(RuleModel):
    """A GPS-tracked device inside a zone (on entry, or after dwelling)."""

    kind: Literal["geofence"] = Field("geofence", title="Kind", description="geofence")
    zones: tuple[Zone, ...] = Field(
        title="Zones",
        description="Named polygons; each is its own alert.",
        min_length=1,
        max_length=1000,
    )
    mode: Literal["enter", "dwell"] = Field(
        "enter",
        title="Mode",
        description="enter: fire on the first point inside; dwell: fire once inside longer than"
        " `dwell`.",
    )
    dwell: Duration = Field(
        "10m",
        title="Dwell",
        description="dwell mode: time inside (between the device's own points) before the alert"
        " fires. A number of seconds or 30s, 5m, 1h.",
    )
    lat_metric: str = Field(
        "lat",
        title="Latitude metric",
        description="Latitude in degrees.",
        min_length=1,
        max_length=64,
    )
    lon_metric: str = Field(
        "lon",
        title="Longitude metric",
        description="Longitude in degrees.",
        min_length=1,
        max_length=64,
    )
    summary: str | None = Field(
        "{device} at {site_name} inside {zone} since {entered_at} ({dwell_min} min)",
        title="Summary",
        description="Shorthand for annotations.summary.",
        max_length=500,
    )

    @model_validator(mode="after")
    def _check(self) -> GeofenceModel:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique within a rule")
        parse_duration(self.dwell)
        return self


class _Box:
    __slots__ = ("hi_x", "hi_y", "lo_x", "lo_y", "pts", "zone")

    def __init__(self, zone: Zone) -> None:
        self.zone = zone.name
        self.pts = list(zone.polygon)
        xs, ys = [p[0] for p in self.pts], [p[1] for p in self.pts]
        self.lo_x, self.hi_x, self.lo_y, self.hi_y = min(xs), max(xs), min(ys), max(ys)

    def contains(self, lon: float, lat: float) -> bool:
        # Bounding box first: most points of a track are far from most zones.
        if not (self.lo_x <= lon <= self.hi_x and self.lo_y <= lat <= self.hi_y):
            return False
        return point_in_polygon(lon, lat, self.pts)


class GeofenceCondition(Condition):
    """Per device: when it entered each zone it is in."""

    __slots__ = ("boxes", "dwell_ms", "entered", "spec")

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding)
        self.spec = binding.rule.spec_as(GeofenceModel)
        self.boxes = [_Box(z) for z in self.spec.zones]
        self.dwell_ms = int(parse_duration(self.spec.dwell).total_seconds() * 1000)
        self.entered: dict[str, int] = {}
        """zone -> entry time (epoch ms) while the device is inside."""

    def observe(self, sample: Sample) -> list[Verdict] | None:
        s = self.spec
        lat_r, lon_r = sample.readings.get(s.lat_metric), sample.readings.get(s.lon_metric)
        if lat_r is None or lon_r is None:
            return None
        lat, lon = lat_r.value, lon_r.value
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return None  # not a fix (some trackers send 0/999 when they have none)
        t = ts_ms(sample.ts)
        assert t is not None
        out: list[Verdict] = []
        for box in self.boxes:
            inside = box.contains(lon, lat)
            if inside:
                since = self.entered.setdefault(box.zone, t)
                stay = t - since
                active = s.mode == "enter" or stay >= self.dwell_ms
                out.append(self._verdict(sample, box.zone, active, since, stay))
            elif box.zone in self.entered:
                # Just left: the zone's alert (or its pending dwell) ends here.
                since = self.entered.pop(box.zone)
                out.append(self._verdict(sample, box.zone, False, since, t - since))
        return out or None

    def _verdict(
        self, sample: Sample, zone: str, active: bool, since: int, stay_ms: int
    ) -> Verdict:
        entered = ms_ts(since)
        assert entered is not None
        dwell_min = round(stay_ms / 60_000, 1)
        return Verdict(
            sample.ts,
            active,
            value=dwell_min,
            threshold=round(self.dwell_ms / 60_000, 2) if self.spec.mode == "dwell" else None,
            device=sample.device,
            metric="",
            key=zone,
            unit="min",
            context={
                "zone": zone,
                "entered_at": entered.astimezone(BEIJING).isoformat(timespec="seconds"),
                "dwell_min": dwell_min,
            },
        )

    def state(self) -> dict[str, Any]:
        return {"entered": dict(self.entered)}

    def restore(self, state: dict[str, Any]) -> None:
        names = {b.zone for b in self.boxes}
        self.entered = {z: int(t) for z, t in state.get("entered", {}).items() if z in names}


register_kind(
    RuleKind(
        name="geofence",
        model=GeofenceModel,
        condition=GeofenceCondition,
        scope="device",
        description="A GPS-tracked device inside a zone polygon: on entry, or after dwelling"
        " longer than `dwell`.",
        metrics=lambda spec: frozenset({spec.lat_metric, spec.lon_metric}),
    )
)
