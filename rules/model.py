"""Rule language: YAML documents to validated, frozen rule objects.

A rule file holds ``rules:``, a list of rules. Each rule names a ``kind``; the kind's model
validates the rest. Kinds register by name in :data:`RULE_KINDS`; an unknown kind is an error
listing the known ones.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from farsight.errors import ConfigProblem, RuleError
from farsight.settings import read_yaml, validation_problems
from farsight.types import SEVERITIES, Site

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


def parse_duration(value: str | int | float) -> timedelta:
    """``"5m"``, ``"90s"``, ``"1h"`` or a number of seconds to a timedelta (Prometheus style)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"duration {value!r} must be a number of seconds or like 30s, 5m, 1h, 1d")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds < 0:
        raise ValueError("duration must not be negative")
    return timedelta(seconds=seconds)


class Selector(BaseModel):
    """Which series a rule watches; every given field must match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(title="Metric", description="Metric name the rule evaluates.", min_length=1)
    department: str | None = Field(None, title="Department", description="Only sites of this department.")
    site: str | None = Field(None, title="Site", description="Only this site id.")
    site_kind: str | None = Field(None, title="Site kind", description="Only sites of this kind (air_quality, stack, ...).")
    site_tags: tuple[str, ...] = Field((), title="Site tags", description="Only sites carrying all of these tags.")
    device_kind: str | None = Field(None, title="Device kind", description="Only devices of this kind.")

    def matches_site(self, site: Site) -> bool:
        return (
            (self.department is None or site.department == self.department)
            and (self.site is None or site.id == self.site)
            and (self.site_kind is None or site.kind == self.site_kind)
            and all(t in site.tags for t in self.site_tags)
        )


class ThresholdRuleModel(BaseModel):
    """A value compared with a fixed limit, or with the site's own limit, held for ``for``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(title="Rule id", description="Unique id, used in fingerprints and audit.", pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    kind: Literal["threshold"] = Field("threshold", title="Kind", description="Rule kind.")
    description: str = Field("", title="Description", description="What the rule enforces and why.", max_length=2000)
    select: Selector = Field(title="Selector", description="Series the rule watches.")
    op: Literal[">", ">=", "<", "<="] = Field(">", title="Operator", description="Comparison that means a violation.")
    threshold: float | Literal["site_limit"] = Field(title="Threshold", description="A number, or 'site_limit' for the site's permit limit of the metric.")
    for_: str | float = Field("0s", alias="for", title="For", description="How long (event time) the condition must hold before the alert fires.")
    severity: Literal["info", "warning", "major", "critical"] = Field("warning", title="Severity", description="Alert severity.")
    item_code: str = Field("", title="Supervision item", description="Supervision-item code the rule enforces.", max_length=64)
    summary: str = Field("{metric} at {site} is {value} {unit}, limit {threshold}", title="Summary", description="Alert text; placeholders {site} {site_name} {device} {metric} {value} {unit} {threshold}.", max_length=500)
    labels: dict[str, str] = Field(default_factory=dict, title="Labels", description="Extra labels on the alert.")

    @field_validator("for_")
    @classmethod
    def _duration(cls, v: str | float) -> str | float:
        parse_duration(v)
        return v


RULE_KINDS: dict[str, type[BaseModel]] = {"threshold": ThresholdRuleModel}
"""Rule kinds by name; later kinds (windows, flat line, missing data...) register here."""


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A validated threshold rule."""

    id: str
    description: str
    select: Selector
    op: str
    threshold: float | str
    for_: timedelta
    severity: str
    item_code: str
    summary: str
    labels: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}")

    def limit_for(self, site: Site) -> float | None:
        """The threshold at ``site``: the fixed number, or the site's limit (None if it has none)."""
        if self.threshold == "site_limit":
            return site.limit(self.select.metric)
        return float(self.threshold)

    def violated(self, value: float, limit: float) -> bool:
        return OPERATORS[self.op](value, limit)


Rule = ThresholdRule


def _build(m: ThresholdRuleModel) -> ThresholdRule:
    return ThresholdRule(
        id=m.id, description=m.description, select=m.select, op=m.op, threshold=m.threshold,
        for_=parse_duration(m.for_), severity=m.severity, item_code=m.item_code, summary=m.summary,
        labels=tuple(sorted(m.labels.items())),
    )


def parse_rules(raw: Any, source: str = "rules") -> list[Rule]:
    """Validate a rule document; raise :class:`RuleError` naming every problem's key path."""
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise RuleError([ConfigProblem("rules", raw if not isinstance(raw, dict) else raw.get("rules"), "a rule file is a mapping with a 'rules' list")], source=source)
    problems: list[ConfigProblem] = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(raw["rules"]):
        kind = item.get("kind", "threshold") if isinstance(item, dict) else None
        model = RULE_KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            problems.append(ConfigProblem(f"rules.{i}.kind", kind, f"unknown rule kind; known kinds: {', '.join(sorted(RULE_KINDS))}"))
            continue
        try:
            m = model.model_validate(item)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, item, prefix=f"rules.{i}"))
            continue
        if m.id in seen:
            problems.append(ConfigProblem(f"rules.{i}.id", m.id, "duplicate rule id; ids must be unique"))
            continue
        seen.add(m.id)
        rules.append(_build(m))
    if problems:
        raise RuleError(problems, source=source)
    return rules


def load_rules(files: tuple[Path, ...] = (), default_pack: bool = True) -> list[Rule]:
    """Load the default rule pack (if asked) and the given files; ids must be unique across all."""
    docs: list[tuple[Any, str]] = []
    if default_pack:
        text = resources.files("rules.packs").joinpath("default.yaml").read_text(encoding="utf-8")
        docs.append((yaml.safe_load(text), "built-in default rule pack"))
    for f in files:
        docs.append((read_yaml(f), str(f)))
    rules: list[Rule] = []
    ids: dict[str, str] = {}
    for raw, source in docs:
        for r in parse_rules(raw, source):
            if r.id in ids:
                raise RuleError([ConfigProblem("rules.id", r.id, f"rule id already defined in {ids[r.id]}")], source=source)
            ids[r.id] = source
            rules.append(r)
    return rules
