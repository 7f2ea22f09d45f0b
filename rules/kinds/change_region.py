"""``change_region``: satellite change regions in zones of interest, judged on each revisit.

Change detection (``remote_sensing``) finds the regions and tracks them over revisits; these rules
decide which become alerts and how serious they are: the change kinds, a minimum area, the zone
kinds a change must touch, and a severity for a first sighting (``severity``) and for a change
seen again (``confirmed_severity``). One alert per tracked region: its fingerprint is the rule,
the area of interest and the track, so a confirmation updates the alert the first sighting
opened (the queue takes the higher severity). The kind is not fed readings; the engine judges
:class:`~farsight.types.ChangeEvent` values with :meth:`rules.engine.Engine.judge_changes`.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from farsight.types import ChangeEvent
from rules.conditions import Condition
from rules.model import RuleModel, Severity
from rules.registry import RuleKind, register_kind

ChangeKind = Literal["vegetation_loss", "new_construction", "water_gain", "water_loss", "bare_soil"]
ZoneKind = Literal[
    "protected_area",
    "ecological_red_line",
    "basic_farmland",
    "river_buffer",
    "highway_row",
    "other",
]
CHANGE_KINDS: tuple[str, ...] = get_args(ChangeKind)
ZONE_KINDS: tuple[str, ...] = get_args(ZoneKind)


class ChangeRegionModel(RuleModel):
    """Which change regions raise an alert, and how serious a first and a repeated sighting are."""

    kind: Literal["change_region"] = Field(
        "change_region", title="Kind", description="change_region"
    )
    change_kinds: tuple[ChangeKind, ...] = Field(
        (), title="Change kinds", description="Kinds of change judged; empty: every kind."
    )
    zone_kinds: tuple[ZoneKind, ...] = Field(
        (),
        title="Zone kinds",
        description="The change must touch a zone of one of these kinds; empty: any zone, or none.",
    )
    aois: tuple[str, ...] = Field(
        (),
        title="Areas of interest",
        description="Only these areas of interest; empty: every one.",
        max_length=1000,
    )
    min_area_ha: float = Field(
        0.0,
        title="Minimum area",
        description="Smallest change, in hectares, that raises an alert.",
        ge=0,
        le=1_000_000,
    )
    severity: Severity = Field(
        "warning", title="Severity", description="Severity of a first sighting (possible)."
    )
    confirmed_severity: Severity = Field(
        "major",
        title="Confirmed severity",
        description="Severity once the change is seen again in a later scene.",
    )
    summary: str | None = Field(
        "{change} of {area_ha} ha in {zones} ({state}, seen {sightings}x)",
        title="Summary",
        description="Shorthand for annotations.summary; also {aoi} {change} {area_ha} {zones}"
        " {state} {sightings} {confidence} {lon} {lat}.",
        max_length=500,
    )

    def judges(self, event: ChangeEvent) -> bool:
        """Whether this rule raises an alert for ``event`` (kind, area of interest, size, zone)."""
        region = event.region
        zone_kinds = {k for _, k in event.zones}
        return not (
            (self.change_kinds and region.kind not in self.change_kinds)
            or (self.aois and region.aoi not in self.aois)
            or region.area_m2 < self.min_area_ha * 10_000
            or (self.zone_kinds and not zone_kinds & set(self.zone_kinds))
        )

    def severity_of(self, state: str) -> str:
        """The alert's severity for a track in ``state`` (``possible`` or ``confirmed``)."""
        return self.confirmed_severity if state == "confirmed" else self.severity


class ChangeRegionCondition(Condition):
    """Does nothing: change regions are judged by :meth:`rules.engine.Engine.judge_changes`."""

    __slots__ = ()


register_kind(
    RuleKind(
        name="change_region",
        model=ChangeRegionModel,
        condition=ChangeRegionCondition,
        scope="site",
        description="Satellite change regions (remote_sensing) of given kinds, size and zones: one"
        " alert per tracked region, more severe once confirmed.",
        metrics=lambda spec: frozenset(),
    )
)
