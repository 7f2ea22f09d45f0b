"""The rule kinds by name: each kind's YAML model and the condition it evaluates.

Built-in kinds (``rules/kinds/``) register on import of :mod:`rules.kinds`; a plugin kind calls
:func:`register_kind` the same way. An unknown name is an error that lists the known ones
(:mod:`rules.loader`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rules.conditions import Condition
from rules.model import RuleModel


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
