"""Site registry: the supervised sites, their owners and devices, loaded from YAML and validated."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from farsight.credit import credit_code_problem
from farsight.errors import ConfigProblem, RegistryError
from farsight.metrics import canonical_metric
from farsight.settings import read_yaml, validation_problems
from farsight.types import ID_RE, Device, Gateway, Location, Site, Stoppage

DEVICE_KINDS = {
    "air_quality": "ambient air-quality analyser (GB 3095-2012 pollutants)",
    "cems": "continuous emission monitoring system on a stack (HJ 75-2017)",
    "water_quality": "water-quality analyser at an outfall",
    "dust_noise": "construction-site dust (TSP/PM10) and noise monitor",
    "wim": "weigh-in-motion scale with plate camera",
    "camera": "video camera",
    "gateway": "edge gateway",
    "gps": "vehicle GPS tracker",
}
"""Known device kinds; a registry naming any other kind is refused."""

_ID = ID_RE.pattern
MAX_STOPPAGE = timedelta(days=366)
"""Longest declared stoppage: a year, declared again when renewed."""

GATEWAY_NAMESPACE = "gw"
"""Topics ``fs/v1/gw/...`` belong to gateways, so no department may take this code: a device of
department ``gw`` would publish under a gateway's topics (its config among them)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceModel(_Model):
    """A device as written in the registry file."""

    id: str = Field(
        title="Device id",
        description="Unique within the site; the MQTT topic's device segment.",
        pattern=_ID,
    )
    kind: str = Field(title="Kind", description=f"One of {', '.join(DEVICE_KINDS)}.")
    protocol: Literal["json", "hj212"] = Field(
        "json", title="Protocol", description="Payload codec the device speaks."
    )
    metrics: tuple[str, ...] = Field(
        (),
        title="Metrics",
        description="Metric names the device reports: catalogue names (so2, pm25) or HJ 212"
        " codes in any letter case (a34004, A34004), read as the catalogue name (pm25); other"
        " names are lower-cased, as the hj212 codec writes a code it does not know.",
        max_length=1024,
    )
    mn: str | None = Field(
        None, title="HJ 212 MN", description="Device id in HJ 212 frames (MN=).", max_length=24
    )
    cadence_s: float = Field(
        60.0, title="Cadence", description="Expected seconds between readings.", gt=0, le=86_400
    )

    @field_validator("metrics")
    @classmethod
    def _canonical_metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # One spelling wherever a metric is compared: registry, codecs, admission, rules.
        return tuple(dict.fromkeys(canonical_metric(m) for m in v))

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in DEVICE_KINDS:
            raise ValueError(
                f"unknown device kind {v!r}; known kinds: {', '.join(sorted(DEVICE_KINDS))}"
            )
        return v


class LocationModel(_Model):
    lon: float = Field(
        title="Longitude", description="WGS 84 longitude in degrees.", ge=-180, le=180
    )
    lat: float = Field(title="Latitude", description="WGS 84 latitude in degrees.", ge=-90, le=90)


class StoppageModel(_Model):
    """A stoppage (停运) the operator declared, as written in the registry file."""

    start: AwareDatetime = Field(
        title="Start", description="When the stoppage began (ISO 8601 with its UTC offset)."
    )
    end: AwareDatetime = Field(
        title="End",
        description="When it ended, or is declared to end (ISO 8601 with offset; excluded).",
    )
    reason: str = Field(
        title="Reason",
        description="Why, as declared (overhaul, production stopped, 停产检修...).",
        min_length=1,
        max_length=500,
    )
    devices: tuple[str, ...] = Field(
        (),
        title="Devices",
        description="Device ids of the site that are stopped; empty: every device of the site.",
        max_length=256,
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> StoppageModel:
        if not self.end > self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start")
        if self.end - self.start > MAX_STOPPAGE:
            raise ValueError(
                f"a declared stoppage spans at most {MAX_STOPPAGE.days} days; declare a longer"
                " one again when it is renewed"
            )
        return self


class SiteModel(_Model):
    """A site as written in the registry file."""

    id: str = Field(
        title="Site id", description="Unique site id; the MQTT topic's site segment.", pattern=_ID
    )
    name: str = Field(title="Name", description="Display name.", min_length=1, max_length=200)
    department: str = Field(
        title="Department", description="Code of the department that supervises the site."
    )
    entity_id: str = Field(
        title="Entity",
        description="18-character unified social credit code of the operator (GB 32100-2015).",
    )
    entity_name: str = Field(
        "", title="Entity name", description="Registered name of the operator.", max_length=200
    )
    location: LocationModel = Field(title="Location", description="WGS 84 point.")
    city: str = Field("", title="City", description="City or prefecture.", max_length=64)
    kind: str = Field(
        "",
        title="Site kind",
        description="What is supervised here (air_quality, stack, outfall, construction, wim).",
        max_length=64,
    )
    item_code: str = Field(
        "",
        title="Supervision item",
        description="Supervision-item code from the catalogue.",
        max_length=64,
    )
    credit_grade: Literal["A", "B", "C", "D"] = Field(
        "B",
        title="Credit grade",
        description="Entity credit grade; lower grades are checked more closely.",
    )
    limits: dict[str, float] = Field(
        default_factory=dict,
        title="Limits",
        description="Site-specific limits per metric (a plant's permit); metric names as in a"
        " device's metrics (HJ 212 codes in any case read as the catalogue name).",
    )
    tags: tuple[str, ...] = Field((), title="Tags", description="Free labels for rule selectors.")
    devices: tuple[DeviceModel, ...] = Field(
        (), title="Devices", description="Devices at the site."
    )
    stoppages: tuple[StoppageModel, ...] = Field(
        (),
        title="Declared stoppages",
        description="Stoppages (停运) the operator declared to the department: the devices owe"
        " no data then, and the quality figures leave those periods out.",
        max_length=1000,
    )

    @model_validator(mode="after")
    def _stopped_devices_exist(self) -> SiteModel:
        ids = {d.id for d in self.devices}
        for j, st in enumerate(self.stoppages):
            unknown = [d for d in st.devices if d not in ids]
            if unknown:
                raise ValueError(
                    f"stoppages.{j}.devices: {', '.join(map(repr, unknown))} not devices of the"
                    f" site ({', '.join(sorted(ids)) or 'none'})"
                )
        return self

    @field_validator("limits")
    @classmethod
    def _canonical_limits(cls, v: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        named: dict[str, str] = {}
        for name, value in v.items():
            key = canonical_metric(name)
            if key in out and out[key] != value:
                raise ValueError(
                    f"{name!r} and {named[key]!r} are both the metric {key!r}, with different"
                    f" limits ({value} and {out[key]})"
                )
            out[key], named[key] = value, name
        return out

    @field_validator("entity_id")
    @classmethod
    def _credit_code(cls, v: str) -> str:
        problem = credit_code_problem(v)
        if problem:
            raise ValueError(f"not a valid unified social credit code: {problem}")
        return v


class GatewayModel(_Model):
    """An edge gateway as written in the registry file."""

    id: str = Field(
        title="Gateway id",
        description="Unique gateway id; the topic segment of fs/v1/gw/{id}/... and its broker "
        "identity.",
        pattern=_ID,
    )
    site: str = Field(
        title="Home site",
        description="Site id whose department and owner receive the gateway's health alerts.",
        pattern=_ID,
    )
    sites: tuple[str, ...] = Field(
        (),
        title="Forwarded sites",
        description="Site ids whose messages the gateway may carry in its batches.",
        max_length=10_000,
    )


class RegistryModel(_Model):
    departments: tuple[str, ...] | None = Field(
        None, title="Departments", description="Department codes; defaults to the settings' list."
    )
    sites: tuple[SiteModel, ...] = Field(title="Sites", description="The supervised sites.")
    gateways: tuple[GatewayModel, ...] = Field(
        (),
        title="Gateways",
        description="Edge gateways: their home site and the sites they forward for.",
    )


@dataclass(frozen=True, slots=True)
class Registry:
    """Validated sites and gateways, looked up by id or by HJ 212 MN."""

    sites: tuple[Site, ...]
    departments: tuple[str, ...]
    gateways: tuple[Gateway, ...] = ()
    _by_id: dict[str, Site] = field(init=False, repr=False, compare=False)
    _by_mn: dict[str, tuple[Site, Device]] = field(init=False, repr=False, compare=False)
    _by_gw: dict[str, Gateway] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.sites})
        object.__setattr__(self, "_by_gw", {g.id: g for g in self.gateways})
        by_mn: dict[str, tuple[Site, Device]] = {}
        for s in self.sites:
            for d in s.devices:
                if d.mn:
                    by_mn[d.mn] = (s, d)
        object.__setattr__(self, "_by_mn", by_mn)

    def get(self, site_id: str) -> Site | None:
        """The site with this id, or ``None``."""
        return self._by_id.get(site_id)

    def gateway(self, gw_id: str) -> Gateway | None:
        """The gateway with this id, or ``None`` (a gateway the registry does not name)."""
        return self._by_gw.get(gw_id)

    def by_mn(self, mn: str) -> tuple[Site, Device] | None:
        """The site and device whose HJ 212 ``MN`` this is, or ``None``."""
        return self._by_mn.get(mn)

    def for_department(self, dept: str | None) -> tuple[Site, ...]:
        """Sites of one department; all sites when ``dept`` is ``None``."""
        if dept is None:
            return self.sites
        return tuple(s for s in self.sites if s.department == dept)

    def __len__(self) -> int:
        return len(self.sites)

    def __iter__(self) -> Iterator[Site]:
        return iter(self.sites)


def _to_site(m: SiteModel) -> Site:
    return Site(
        id=m.id,
        name=m.name,
        department=m.department,
        entity_id=m.entity_id,
        entity_name=m.entity_name,
        location=Location(m.location.lon, m.location.lat),
        city=m.city,
        kind=m.kind,
        item_code=m.item_code,
        credit_grade=m.credit_grade,
        limits=tuple(sorted(m.limits.items())),
        tags=m.tags,
        stoppages=tuple(Stoppage(st.start, st.end, st.reason, st.devices) for st in m.stoppages),
        devices=tuple(
            Device(
                id=d.id,
                kind=d.kind,
                metrics=d.metrics,
                protocol=d.protocol,
                mn=d.mn,
                cadence_s=d.cadence_s,
            )
            for d in m.devices
        ),
    )


def parse_registry(
    raw: Any, departments: Iterable[str] = ("env", "transport"), source: str = "registry"
) -> Registry:
    """Validate a registry document (already parsed from YAML).

    Raises
    ------
    RegistryError
        Listing every problem with its key path: schema errors, bad credit codes, coordinates
        out of range, duplicate site ids or HJ 212 MNs, unknown departments or device kinds.
    """
    try:
        model = RegistryModel.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(validation_problems(exc, raw), source=source) from None
    depts = tuple(model.departments or departments)
    problems: list[ConfigProblem] = _department_problems(
        depts, "departments" if model.departments else "registry.departments"
    )
    seen: dict[str, int] = {}
    seen_mn: dict[str, str] = {}
    for i, s in enumerate(model.sites):
        if s.id in seen:
            problems.append(
                ConfigProblem(
                    f"sites.{i}.id",
                    s.id,
                    f"duplicate site id (first at sites.{seen[s.id]}); ids must be unique",
                )
            )
        seen.setdefault(s.id, i)
        if s.department not in depts:
            problems.append(
                ConfigProblem(
                    f"sites.{i}.department",
                    s.department,
                    f"unknown department; known: {', '.join(depts)}",
                )
            )
        dev_seen: set[str] = set()
        for j, d in enumerate(s.devices):
            if d.id in dev_seen:
                problems.append(
                    ConfigProblem(
                        f"sites.{i}.devices.{j}.id", d.id, "duplicate device id within the site"
                    )
                )
            dev_seen.add(d.id)
            if d.mn:
                if d.mn in seen_mn:
                    problems.append(
                        ConfigProblem(
                            f"sites.{i}.devices.{j}.mn",
                            d.mn,
                            f"HJ 212 MN already used by {seen_mn[d.mn]}",
                        )
                    )
                seen_mn.setdefault(d.mn, f"{s.id}/{d.id}")
            if d.protocol == "hj212" and not d.mn:
                problems.append(
                    ConfigProblem(
                        f"sites.{i}.devices.{j}.mn",
                        None,
                        "an hj212 device needs its MN so frames can be matched to it",
                    )
                )
    problems += _gateway_problems(model.gateways, set(seen))
    if problems:
        raise RegistryError(problems, source=source)
    return Registry(
        sites=tuple(_to_site(s) for s in model.sites),
        departments=depts,
        gateways=tuple(Gateway(g.id, g.site, g.sites) for g in model.gateways),
    )


def _department_problems(depts: tuple[str, ...], path: str) -> list[ConfigProblem]:
    """Department codes become a topic level and part of broker user names: they must be ids,
    and not the gateways' namespace."""
    problems = []
    for i, d in enumerate(depts):
        if not ID_RE.match(d):
            problems.append(ConfigProblem(f"{path}.{i}", d, f"a department code must match {_ID}"))
        elif d == GATEWAY_NAMESPACE:
            problems.append(
                ConfigProblem(
                    f"{path}.{i}",
                    d,
                    f"{GATEWAY_NAMESPACE!r} is reserved: topics fs/v1/{GATEWAY_NAMESPACE}/... "
                    "belong to edge gateways",
                )
            )
    return problems


def _gateway_problems(gateways: tuple[GatewayModel, ...], sites: set[str]) -> list[ConfigProblem]:
    problems = []
    seen: dict[str, int] = {}
    for i, g in enumerate(gateways):
        if g.id in seen:
            problems.append(
                ConfigProblem(
                    f"gateways.{i}.id",
                    g.id,
                    f"duplicate gateway id (first at gateways.{seen[g.id]}); ids must be unique",
                )
            )
        seen.setdefault(g.id, i)
        if g.site not in sites:
            problems.append(
                ConfigProblem(f"gateways.{i}.site", g.site, "unknown site id; add the site first")
            )
        for j, s in enumerate(g.sites):
            if s not in sites:
                problems.append(
                    ConfigProblem(
                        f"gateways.{i}.sites.{j}", s, "unknown site id; add the site first"
                    )
                )
    return problems


def load_registry(
    path: Path | None = None, departments: Iterable[str] = ("env", "transport")
) -> Registry:
    """Load the registry from ``path``, or the built-in demo registry when ``path`` is ``None``."""
    if path is None:
        text = resources.files("farsight.data").joinpath("sites.yaml").read_text(encoding="utf-8")
        import yaml

        return parse_registry(yaml.safe_load(text), departments, source="built-in demo registry")
    return parse_registry(read_yaml(path), departments, source=str(path))
