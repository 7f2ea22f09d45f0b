"""Rule language: YAML documents to validated, frozen rule objects.

A rule file holds ``rules:`` (a list of rules) and optionally ``maintenance:`` (windows in which
a device's alerts are suppressed). Each rule names a ``kind``; the kind's pydantic model
validates the rest. Kinds register by name in :data:`RULE_KINDS` (``rules/kinds/``); an unknown
kind is an error listing the known ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from farsight.errors import ConfigProblem, RuleError
from farsight.settings import read_yaml, validation_problems
from farsight.types import SEVERITIES, Site

if TYPE_CHECKING:
    from rules.conditions import Condition

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
        description="Metric the rule evaluates (kinds that read several name them in their own fields).",
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
        description="Out-of-order readings up to this much older than the newest are put in order before evaluation; older ones are counted as late.",
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
        description="Texts templated with the values that fired: {site} {site_name} {device} {metric} {value} {unit} {threshold} and the kind's own.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, title="Labels", description="Extra labels on the alert."
    )
    credit: dict[Literal["A", "B", "C", "D"], CreditAdjustment] = Field(
        default_factory=dict,
        title="Credit grades",
        description="Per credit grade: limit factor, duration factor, severity (differentiated supervision).",
    )

    @field_validator("for_", "keep_firing_for", "lateness")
    @classmethod
    def _duration(cls, v: Duration) -> Duration:
        parse_duration(v)
        return v


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
class RuleKind:
    """A registered rule kind: its YAML model, and the condition it evaluates per bound scope."""

    name: str
    model: type[RuleModel]
    condition: Callable[..., Condition]
    scope: Literal["series", "device", "site"]
    description: str
    metrics: Callable[[Any], frozenset[str] | None] = lambda spec: (
        frozenset({spec.select.metric}) if spec.select.metric else None
    )
    """Metrics whose readings the kind needs (``None``: every metric)."""
    eager: bool = False
    """Bind at start for every matching site, not on first reading (missing-data rules)."""


RULE_KINDS: dict[str, RuleKind] = {}
"""Rule kinds by name; ``rules/kinds/*.py`` register theirs with :func:`register_kind`."""


def register_kind(kind: RuleKind) -> RuleKind:
    if kind.name in RULE_KINDS:
        raise ValueError(f"rule kind {kind.name!r} registered twice")
    RULE_KINDS[kind.name] = kind
    return kind


def _ensure_kinds() -> None:
    import rules.kinds  # noqa: F401 - registers the built-in kinds


def _build(m: RuleModel, source: str) -> Rule:
    annotations = dict(m.annotations)
    if m.summary is not None:
        annotations.setdefault("summary", m.summary)
    annotations.setdefault("summary", "{rule}: {metric} at {site_name} is {value} {unit}")
    digest = hashlib.sha256(
        json.dumps(m.model_dump(mode="json", by_alias=True), sort_keys=True).encode()
    ).hexdigest()[:16]
    return Rule(
        id=m.id,
        kind=m.kind,
        description=m.description,
        select=m.select,
        for_=parse_duration(m.for_),
        keep_firing_for=parse_duration(m.keep_firing_for),
        lateness=parse_duration(m.lateness),
        severity=m.severity,
        item_code=m.item_code,
        annotations=tuple(sorted(annotations.items())),
        labels=tuple(sorted(m.labels.items())),
        credit=tuple(sorted(m.credit.items())),
        spec=m,
        digest=digest,
        source=source,
    )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules and maintenance windows loaded together."""

    rules: tuple[Rule, ...]
    maintenance: tuple[MaintenanceWindow, ...] = ()

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)


def parse_ruleset(raw: Any, source: str = "rules") -> RuleSet:
    """Validate a rule document; raise :class:`RuleError` naming file, rule id and key path."""
    _ensure_kinds()
    if not isinstance(raw, dict) or not isinstance(raw.get("rules", []), list):
        raise RuleError(
            [
                ConfigProblem(
                    "rules",
                    raw if not isinstance(raw, dict) else raw.get("rules"),
                    "a rule file is a mapping with a 'rules' list",
                )
            ],
            source=source,
        )
    unknown = sorted(set(raw) - {"rules", "maintenance"})
    problems: list[ConfigProblem] = [
        ConfigProblem(k, raw[k], "unknown top-level key; a rule file has 'rules' and 'maintenance'")
        for k in unknown
    ]
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("rules") or []):
        kind_name = item.get("kind", "threshold") if isinstance(item, dict) else None
        rid = item.get("id") if isinstance(item, dict) else None
        where = f"rules.{i}" + (f"[{rid}]" if isinstance(rid, str) else "")
        kind = RULE_KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            problems.append(
                ConfigProblem(
                    f"{where}.kind",
                    kind_name,
                    f"unknown rule kind; known kinds: {', '.join(sorted(RULE_KINDS))}",
                )
            )
            continue
        try:
            m = kind.model.model_validate(item)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, item, prefix=where))
            continue
        if m.id in seen:
            problems.append(
                ConfigProblem(f"{where}.id", m.id, "duplicate rule id; ids must be unique")
            )
            continue
        seen.add(m.id)
        rules.append(_build(m, source))
    windows: list[MaintenanceWindow] = []
    for i, item in enumerate(raw.get("maintenance") or []):
        try:
            w = MaintenanceModel.model_validate(item)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, item, prefix=f"maintenance.{i}"))
            continue
        if w.end <= w.start:
            problems.append(
                ConfigProblem(f"maintenance.{i}.end", w.end.isoformat(), "must be after start")
            )
            continue
        windows.append(MaintenanceWindow(w.site, w.device, w.start, w.end, w.reason))
    if problems:
        raise RuleError(problems, source=source)
    return RuleSet(tuple(rules), tuple(windows))


def parse_rules(raw: Any, source: str = "rules") -> list[Rule]:
    """The rules of a document (see :func:`parse_ruleset`)."""
    return list(parse_ruleset(raw, source).rules)


def default_pack_files() -> list[tuple[str, str]]:
    """(name, YAML text) of every file of the built-in default rule pack (``rules/packs/*.yaml``)."""
    root = resources.files("rules.packs")
    return sorted(
        (f.name, f.read_text(encoding="utf-8")) for f in root.iterdir() if f.name.endswith(".yaml")
    )


def load_ruleset(files: tuple[Path, ...] | list[Path] = (), default_pack: bool = True) -> RuleSet:
    """Load the default rule pack (if asked) and the given files; ids must be unique across all."""
    docs: list[tuple[Any, str]] = []
    if default_pack:
        docs += [
            (yaml.safe_load(text), f"default pack {name}") for name, text in default_pack_files()
        ]
    for f in files:
        docs.append((read_yaml(Path(f)), str(f)))
    rules: list[Rule] = []
    windows: list[MaintenanceWindow] = []
    ids: dict[str, str] = {}
    for raw, source in docs:
        rs = parse_ruleset(raw, source)
        for r in rs.rules:
            if r.id in ids:
                raise RuleError(
                    [
                        ConfigProblem(
                            f"rules[{r.id}].id", r.id, f"rule id already defined in {ids[r.id]}"
                        )
                    ],
                    source=source,
                )
            ids[r.id] = source
            rules.append(r)
        windows.extend(rs.maintenance)
    return RuleSet(tuple(rules), tuple(windows))


def load_rules(files: tuple[Path, ...] | list[Path] = (), default_pack: bool = True) -> list[Rule]:
    """The rules of :func:`load_ruleset`."""
    return list(load_ruleset(files, default_pack).rules)
