"""Rule files to a :class:`~rules.model.RuleSet`: the default pack, then the given files.

Every problem is a :class:`~farsight.errors.RuleError` naming the file, the rule id and the key
path; ids must be unique across all files. Loading registers the built-in kinds first.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

import rules.kinds  # noqa: F401  # the built-in kinds register on import
from farsight.errors import ConfigProblem, RuleError
from farsight.settings import read_yaml, validation_problems
from rules.model import (
    MaintenanceModel,
    MaintenanceWindow,
    Rule,
    RuleModel,
    RuleSet,
    parse_duration,
)
from rules.registry import RULE_KINDS


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


def parse_ruleset(raw: Any, source: str = "rules") -> RuleSet:
    """Validate a rule document; raise :class:`RuleError` naming file, rule id and key path."""
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
    """(name, YAML text) of every file of the built-in default pack (``rules/packs/*.yaml``)."""
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
