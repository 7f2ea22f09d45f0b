"""Domain nouns: frozen, slotted value types validated on construction.

Times are UTC-aware datetimes; units are SI or stated in the ``unit`` field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from farsight.credit import credit_code_problem

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Site, device and department ids are safe in MQTT topics, file names and URLs."""

HJ212_FLAGS = frozenset("NFMSDCTBPHE")
"""HJ 212-2017 data flags: N normal, F stopped, M maintenance, S manual, D fault, C calibration,
T over range, B link fault; P, H and E are used by some loggers (power, hand entry, error)."""

CREDIT_GRADES = ("A", "B", "C", "D")


@lru_cache(maxsize=65536)
def _is_id(value: str) -> bool:
    # Ingest builds a Reading per value; the same few thousand ids recur all day.
    return ID_RE.match(value) is not None


def _check_id(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _is_id(value):
        raise ValueError(f"{kind} {value!r} must match {ID_RE.pattern}")


def _check_aware(name: str, ts: datetime) -> None:
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {ts!r}")


@dataclass(frozen=True, slots=True)
class Reading:
    """One number measured at one time by one device."""

    site: str
    device: str
    metric: str
    value: float
    unit: str
    ts: datetime
    flag: str = "N"
    seq: int | None = None

    def __post_init__(self) -> None:
        _check_id("site", self.site)
        _check_id("device", self.device)
        if not self.metric or len(self.metric) > 64:
            raise ValueError(f"metric {self.metric!r} must be 1 to 64 characters")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise ValueError(f"value for {self.metric} must be a number, got {self.value!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"value for {self.metric} must be finite, got {self.value!r}")
        _check_aware("ts", self.ts)
        if self.flag not in HJ212_FLAGS:
            raise ValueError(f"flag {self.flag!r} is not an HJ 212 data flag {sorted(HJ212_FLAGS)}")

    @property
    def is_normal(self) -> bool:
        """True when the data logger marked the value as a normal measurement."""
        return self.flag == "N"


@dataclass(frozen=True, slots=True)
class Location:
    """A WGS 84 point."""

    lon: float
    lat: float

    def __post_init__(self) -> None:
        if not -180.0 <= self.lon <= 180.0:
            raise ValueError(f"longitude {self.lon} is outside -180..180")
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError(f"latitude {self.lat} is outside -90..90")


@dataclass(frozen=True, slots=True)
class Device:
    """A device at a site: a sensor, data logger, camera or weigh station."""

    id: str
    kind: str
    metrics: tuple[str, ...] = ()
    protocol: str = "json"
    mn: str | None = None
    cadence_s: float = 60.0

    def __post_init__(self) -> None:
        _check_id("device", self.id)


@dataclass(frozen=True, slots=True)
class Stoppage:
    """A stoppage (停运) the operator declared to the department: from ``start`` to ``end``
    (timezone-aware, end excluded) the named devices, or every device of the site when none is
    named, owe no data. Regulators leave declared stoppages out of the values a site owes
    (有效数据传输率); data flagged F outside a declared stoppage is still owed and not valid."""

    start: datetime
    end: datetime
    reason: str
    devices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a stoppage's start and end need a timezone")
        if not self.end > self.start:
            raise ValueError(f"stoppage end {self.end} is not after its start {self.start}")

    def covers(self, device: str) -> bool:
        """Whether the stoppage applies to ``device``."""
        return not self.devices or device in self.devices


@dataclass(frozen=True, slots=True)
class Site:
    """A supervised site, owned by one entity and watched by one department."""

    id: str
    name: str
    department: str
    entity_id: str
    location: Location
    devices: tuple[Device, ...] = ()
    item_code: str = ""
    credit_grade: str = "B"
    city: str = ""
    kind: str = ""
    entity_name: str = ""
    limits: tuple[tuple[str, float], ...] = ()
    tags: tuple[str, ...] = ()
    stoppages: tuple[Stoppage, ...] = ()

    def __post_init__(self) -> None:
        _check_id("site", self.id)
        problem = credit_code_problem(self.entity_id)
        if problem:
            raise ValueError(f"entity_id {self.entity_id!r}: {problem}")
        if self.credit_grade not in CREDIT_GRADES:
            raise ValueError(f"credit_grade {self.credit_grade!r} must be one of {CREDIT_GRADES}")

    def device(self, device_id: str) -> Device | None:
        """The device with this id, or ``None``."""
        for d in self.devices:
            if d.id == device_id:
                return d
        return None

    def limit(self, metric: str) -> float | None:
        """The site-specific limit for ``metric`` (e.g. a plant's permit), if any."""
        for name, value in self.limits:
            if name == metric:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Gateway:
    """An edge gateway: the site whose department owns its health alerts (``site_id``) and the
    sites whose messages it may forward in its store-and-forward batches (``sites``)."""

    id: str
    site_id: str
    sites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_id("gateway", self.id)
        _check_id("site", self.site_id)
        for site in self.sites:
            _check_id("site", site)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A content-addressed file under the data directory, referred to by its sha256."""

    sha256: str
    kind: str
    media_type: str
    size: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256 {self.sha256!r} must be 64 lowercase hex digits")


@dataclass(frozen=True, slots=True)
class Detection:
    """One video finding."""

    site: str
    camera: str
    kind: str
    confidence: float
    ts: datetime
    bbox: tuple[int, int, int, int] | None = None
    zone: str | None = None
    evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_id("site", self.site)
        _check_id("camera", self.camera)
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} must be within 0..1")
        _check_aware("ts", self.ts)


@dataclass(frozen=True, slots=True)
class ChangeRegion:
    """One changed area between two satellite scenes."""

    aoi: str
    kind: str
    geometry: dict[str, Any]
    area_m2: float
    centroid: Location
    confidence: float
    before: datetime
    after: datetime
    evidence: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.area_m2 < 0:
            raise ValueError(f"area_m2 {self.area_m2} must not be negative")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} must be within 0..1")
        _check_aware("before", self.before)
        _check_aware("after", self.after)


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A change region's revisit state changed: seen for the first time (``possible``), seen
    again in later scenes (``confirmed``) or not seen again while its area was in view
    (``expired``: what its first sighting raised is resolved). What the rule engine's
    ``change_region`` rules judge.

    ``track`` is the region's id over revisits; ``zones`` the zones of interest it touches as
    ``(zone id, zone kind)``; ``department`` the one that watches the area of interest.
    """

    region: ChangeRegion
    track: str
    state: str
    sightings: int
    zones: tuple[tuple[str, str], ...] = ()
    department: str = ""

    def __post_init__(self) -> None:
        if self.state not in ("possible", "confirmed", "expired"):
            raise ValueError(f"state {self.state!r} must be 'possible', 'confirmed' or 'expired'")
        if self.sightings < 1:
            raise ValueError(f"sightings {self.sightings} must be >= 1")


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """What the rule engine tells the alert pipeline: a rule is firing, or has resolved.

    ``fingerprint`` identifies the alerting series (rule, site, device, metric): while an alert
    with that fingerprint is open, further signals update it rather than open another.
    """

    rule_id: str
    fingerprint: str
    status: str
    site: str
    device: str
    metric: str
    severity: str
    summary: str
    ts: datetime
    value: float | None = None
    threshold: float | None = None
    department: str = ""
    entity_id: str = ""
    item_code: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    evidence: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    credit_grade: str = "B"

    def __post_init__(self) -> None:
        if self.status not in ("firing", "resolved"):
            raise ValueError(f"status {self.status!r} must be 'firing' or 'resolved'")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} must be one of {SEVERITIES}")
        _check_aware("ts", self.ts)


Severity = Literal["info", "warning", "major", "critical"]

SEVERITIES: tuple[Severity, ...] = ("info", "warning", "major", "critical")
"""Alert severities, least to most urgent (``x in SEVERITIES`` narrows ``x`` to a Severity)."""
