"""Rule language: the validated, frozen rule objects and the pydantic base every kind extends.

A rule file holds ``rules:`` (a list of rules) and optionally ``maintenance:`` (windows in which
a device's alerts are suppressed). Each rule names a ``kind``; the kind's pydantic model (a
:class:`RuleModel`) validates the rest. Kinds register by name in :mod:`rules.registry`; files
are read by :mod:`rules.loader`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from farsight.errors import RuleError
from farsight.types import SEVERITIES, Site

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

Severity = Literal["info", "warning", "major", "critical"]


def parse_duration(value: str | float) -> timedelta:
    """``"5m"``, ``"90s"``, ``"1h30m"`` or a number of seconds to a timedelta (Prometheus style)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).replace(" ", "")
        if not _DURATION.match(text):
            raise ValueError(
                f"duration {value!r} must be a number of seconds or like 30s, 5m, 1h30m, 1d"
            )
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))
    if seconds < 0:
        raise ValueError("duration must not be negative")
    return timedelta(seconds=seconds)


Duration = str | float


class Selector(BaseModel):
    """Which sites and devices a rule watches; every given field must match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str | None = Field(
        None,
        title="Metric",
        description="Metric the rule evaluates (kinds that read several name them in their own"
        " fields).",
        min_length=1,
    )
    department: str | None = Field(
        None, title="Department", description="Only sites of this department."
    )
    site: str | None = Field(None, title="Site", description="Only this site id.")
    site_kind: str | None = Field(
        None,
        title="Site kind",
        description="Only sites of this kind (air_quality, stack, outfall, construction, wim).",
    )
    site_tags: tuple[str, ...] = Field(
        (), title="Site tags", description="Only sites carrying all of these tags."
    )
    device_kind: str | None = Field(
        None, title="Device kind", description="Only devices of this kind."
    )

    def matches_site(self, site: Site) -> bool:
        return (
            (self.department is None or site.department == self.department)
            and (self.site is None or site.id == self.site)
            and (self.site_kind is None or site.kind == self.site_kind)
            and all(t in site.tags for t in self.site_tags)
        )

    def matches_device(self, site: Site, device_id: str) -> bool:
        if self.device_kind is None:
            return True
        dev = site.device(device_id)
        return dev is not None and dev.kind == self.device_kind


class CreditAdjustment(BaseModel):
    """How a rule tightens (or relaxes) for sites whose operator has one credit grade."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit_factor: float = Field(
        1.0,
        title="Limit factor",
        description="Multiplies the rule's limit (below 1 is stricter for 'above' rules).",
        gt=0,
        le=10,
    )
    for_factor: float = Field(
        1.0,
        title="Duration factor",
        description="Multiplies `for` (below 1 fires sooner).",
        ge=0,
        le=10,
    )
    severity: Severity | None = Field(
        None, title="Severity", description="Severity used instead of the rule's."
    )


class RuleModel(BaseModel):
    """Fields every rule kind shares."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(
        title="Rule id",
        description="Unique id, used in fingerprints and audit.",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
    )
    kind: str = Field(
        "threshold", title="Kind", description="Rule kind; see `farsight rules kinds`."
    )
    description: str = Field(
        "", title="Description", description="What the rule enforces and why.", max_length=2000
    )
    select: Selector = Field(
        default_factory=Selector,
        title="Selector",
        description="Sites and devices the rule watches.",
    )
    for_: Duration = Field(
        "0s",
        alias="for",
        title="For",
        description="How long (event time) the condition must hold before the alert fires.",
    )
    keep_firing_for: Duration = Field(
        "0s",
        title="Keep firing for",
        description="How long the alert stays firing after the condition clears (stops flapping).",
    )
    lateness: Duration = Field(
        "0s",
        title="Allowed lateness",
        description="Out-of-order readings up to this much older than the newest are put in order"
        " before evaluation; older ones are counted as late.",
    )
    severity: Severity = Field("warning", title="Severity", description="Alert severity.")
    item_code: str = Field(
        "",
        title="Supervision item",
        description="Supervision-item code the rule enforces.",
        max_length=64,
    )
    summary: str | None = Field(
        None, title="Summary", description="Shorthand for annotations.summary.", max_length=500
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        title="Annotations",
        description="Texts templated with the values that fired: {site} {site_name} {device}"
        " {metric} {value} {unit} {threshold} and the kind's own.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, title="Labels", description="Extra labels on the alert."
    )
    credit: dict[Literal["A", "B", "C", "D"], CreditAdjustment] = Field(
        default_factory=dict,
        title="Credit grades",
        description="Per credit grade: limit factor, duration factor, severity (differentiated"
        " supervision).",
    )

    @field_validator("for_", "keep_firing_for", "lateness")
    @classmethod
    def _duration(cls, v: Duration) -> Duration:
        parse_duration(v)
        return v


M = TypeVar("M", bound=RuleModel)
"""A kind's model (a subclass of :class:`RuleModel`)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated rule of any kind: the shared fields, plus the kind's model in ``spec``."""

    id: str
    kind: str
    description: str
    select: Selector
    for_: timedelta
    keep_firing_for: timedelta
    lateness: timedelta
    severity: str
    item_code: str
    annotations: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    credit: tuple[tuple[str, CreditAdjustment], ...]
    spec: RuleModel
    digest: str = field(compare=False)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}")

    def spec_as(self, model: type[M]) -> M:
        """The kind's model, checked to be ``model`` (what the kind's condition reads)."""
        if not isinstance(self.spec, model):
            raise RuleError(
                f"rule {self.id!r} of kind {self.kind!r} has a {type(self.spec).__name__},"
                f" not the {model.__name__} its condition reads"
            )
        return self.spec

    @property
    def summary(self) -> str:
        return dict(self.annotations).get("summary", "")

    def adjustment(self, site: Site) -> CreditAdjustment | None:
        """The credit-grade adjustment for ``site``'s operator, if the rule has one."""
        for grade, adj in self.credit:
            if grade == site.credit_grade:
                return adj
        return None


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A period in which alerts of a site (or one of its devices) are suppressed."""

    site: str
    device: str | None
    start: datetime
    end: datetime
    reason: str

    def covers(self, site: str, device: str, ts: datetime) -> bool:
        return (
            self.site == site
            and (self.device is None or self.device == device)
            and self.start <= ts < self.end
        )


class MaintenanceModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str = Field(title="Site", description="Site id.")
    device: str | None = Field(
        None, title="Device", description="Device id; none for the whole site."
    )
    start: datetime = Field(title="Start", description="ISO 8601 with offset.")
    end: datetime = Field(title="End", description="ISO 8601 with offset, after start.")
    reason: str = Field(
        title="Reason", description="Why (calibration, repair...).", min_length=1, max_length=500
    )

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-25T08:00:00+08:00")
        return v


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules and maintenance windows loaded together."""

    rules: tuple[Rule, ...]
    maintenance: tuple[MaintenanceWindow, ...] = ()

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)
