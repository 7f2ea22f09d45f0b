"""``correlation``: several independent rules firing at one place within a time window.

One anomaly may be a sensor's fault; two independent ones at the same plant within half an hour
(a diluted sample and an SO2 excess, a stack anomaly and the nearby air station's PM2.5) are a
stronger lead. The kind only declares the rule: it is not fed readings (its condition does
nothing). :class:`rules.correlate.Correlator` reads these rules and combines the engine's
signals after the engine has produced them.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import Field, field_validator

from rules.conditions import Condition
from rules.model import Duration, RuleModel, Severity, parse_duration
from rules.registry import RuleKind, register_kind


class CorrelationModel(RuleModel):
    """Signals of at least ``min_distinct`` member rules at one site (or nearby) within
    ``window``."""

    kind: Literal["correlation"] = Field("correlation", title="Kind", description="correlation")
    members: tuple[str, ...] = Field(
        title="Members",
        description="Rule ids whose firing signals count; glob patterns allowed (cems-*, aq-*).",
        min_length=1,
        max_length=100,
    )
    min_distinct: int = Field(
        2,
        title="Distinct rules",
        description="How many distinct member rules must fire (on distinct series, unless"
        " independent_series is false).",
        ge=2,
        le=50,
    )
    window: Duration = Field(
        "30m",
        title="Window",
        description="The member signals must fall within this much event time. A number of seconds"
        " or 30s, 5m, 1h.",
    )
    independent_series: bool = Field(
        True,
        title="Independent series",
        description="Count only member rules about distinct series (site, device, metric): two"
        " rules judging the same series (an instant and an hourly-mean limit of one SO2"
        " analyser) are one piece of evidence, not two.",
    )
    within_m: float = Field(
        0,
        title="Distance",
        description="0: the same site; else sites within this many metres of the first one"
        " (haversine on registry locations).",
        ge=0,
        le=200_000,
    )
    severity: Severity = Field(
        "critical",
        title="Severity",
        description="Severity of the combined alert (usually above its members').",
    )
    summary: str | None = Field(
        "{count} independent signals at {site_name} within {window}: {members}",
        title="Summary",
        description="Shorthand for annotations.summary; also {members} and {count}.",
        max_length=500,
    )

    @field_validator("window")
    @classmethod
    def _window(cls, v: Duration) -> Duration:
        if parse_duration(v).total_seconds() <= 0:
            raise ValueError("window must be positive")
        return v

    def matches(self, rule_id: str) -> bool:
        """Whether ``rule_id`` is one of the members (exact id or glob)."""
        return any(fnmatch.fnmatchcase(rule_id, p) for p in self.members)


class CorrelationCondition(Condition):
    """Does nothing: correlation rules are evaluated by :class:`rules.correlate.Correlator`."""

    __slots__ = ()


register_kind(
    RuleKind(
        name="correlation",
        model=CorrelationModel,
        condition=CorrelationCondition,
        scope="site",
        description="Several member rules firing at one site (or within a distance) inside a"
        " window: one combined alert (rules.correlate).",
        metrics=lambda spec: frozenset(),
    )
)
