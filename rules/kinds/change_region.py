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

from typing import Literal

from pydantic import Field

from rules.conditions import Condition
from rules.model import RuleModel, Severity
from rules.registry import RuleKind, register_kind

CHANGE_KINDS = ("vegetation_loss", "new_construction", "water_gain", "water_loss", "bare_soil")
ZONE_KINDS = (
    "protected_area",
    "ecological_red_line",
    "basic_farmland",
    "river_buffer",
    "highway_row",
    "other",
)


class ChangeRegionModel(RuleModel):
    """Which change regions raise an alert, and how serious a first and a repeated sighting are."""

    kind: Literal["change_region"] = Field(
        "change_region", title="Kind", description="change_region"
    )
    change_kinds: tuple[Literal[CHANGE_KINDS], ...] = Field(
        (), title="Change kinds", description="Kinds of change judged; empty: every kind."
    )  # type: ignore[valid-type]
    zone_kinds: tuple[Literal[ZONE_KINDS], ...] = Field(
        (),
        title="Zone kinds",
        description="The change must touch a zone of one of these kinds; empty: any zone, or none.",
    )  # type: ignore[valid-type]
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
        description="Shorthand for annotations.summary; also {aoi} {change} {area_ha} {zones} {state} {sightings} {confidence} {lon} {lat}.",
        max_length=500,
    )


class ChangeRegionCondition(Condition):
    """Does nothing: change regions are judged by :meth:`rules.engine.Engine.judge_changes`."""

    __slots__ = ()


register_kind(
    RuleKind(
        name="change_region",
        model=ChangeRegionModel,
        condition=ChangeRegionCondition,
        scope="site",
        description="Satellite change regions (remote_sensing) of given kinds, size and zones: one alert per tracked region, more severe once confirmed.",
        metrics=lambda spec: frozenset(),
    )
)
