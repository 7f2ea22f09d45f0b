"""Inhibition: while a *source* alert is active, *target* alerts with the same values of the
``equal`` labels are muted (Alertmanager's inhibit rules).

The default rule (``settings.alerts.inhibit``) lets a whole site going offline mute that site's
device and sensor alerts: one alert for the duty officer, the cause, not one per symptom.

Pure decision over alert values; :mod:`alerts.mute` gathers the alerts and records the outcome.

Semantics, as Alertmanager's ``inhibit`` package:

* a source is *active* while it fires and is not closed (a silenced source still inhibits);
* an alert never inhibits itself;
* when an alert matches both the source and the target side of a rule, it is not inhibited by
  sources that also match both sides (two alerts of one kind never mute each other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alerts.matchers import (
    Matcher,
    MatcherError,
    Matchers,
    alert_labels,
    parse_matcher,
    parse_matchers,
)
from alerts.model import Alert


@dataclass(frozen=True, slots=True)
class Inhibition:
    """One compiled inhibit rule."""

    source: Matchers
    target: Matchers
    equal: tuple[str, ...]

    def is_source(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.source)

    def is_target(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.target)

    def key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Values of the ``equal`` labels (``""`` when absent)."""
        return tuple(labels.get(k, "") for k in self.equal)


def compile_rules(rules: Iterable[Any]) -> tuple[Inhibition, ...]:
    """Compile inhibit rules: settings ``InhibitRule`` objects, mappings with ``source``,
    ``target`` and ``equal``, or :class:`Inhibition` (passed through).

    Raises
    ------
    MatcherError
        A rule has an invalid or empty matcher set, or a bad ``equal`` label; the message says
        which rule (0-based) and side.
    """
    out: list[Inhibition] = []
    for i, r in enumerate(rules):
        if isinstance(r, Inhibition):
            out.append(r)
            continue
        get = r.get if isinstance(r, Mapping) else (lambda k, d=None, r=r: getattr(r, k, d))
        sides: dict[str, Matchers] = {}
        for side in ("source", "target"):
            try:
                sides[side] = parse_matchers(get(side) or {})
            except MatcherError as exc:
                raise MatcherError(f"inhibit rule {i} {side}: {exc}") from None
        equal = tuple(get("equal", ("site",)) or ())
        for label in equal:
            try:
                parse_matcher(label, "")
            except MatcherError:
                raise MatcherError(
                    f"inhibit rule {i} equal: {label!r} is not a label name"
                ) from None
        out.append(Inhibition(sides["source"], sides["target"], equal))
    return tuple(out)


def is_active_source(alert: Alert) -> bool:
    """True while ``alert`` can inhibit: it fires and is not closed."""
    return alert.activity == "firing" and alert.state != "closed"


def inhibitor(rules: Iterable[Inhibition], target: Alert, sources: Iterable[Alert]) -> int | None:
    """The id of the alert that inhibits ``target``, or ``None``.

    Parameters
    ----------
    rules : iterable of Inhibition
        Compiled rules (:func:`compile_rules`).
    target : Alert
        The alert that may be muted (any state; the caller decides which it evaluates).
    sources : iterable of Alert
        Candidate sources; inactive ones (:func:`is_active_source`) and ``target`` itself are
        skipped.

    Returns
    -------
    int or None
        The smallest id among the sources that inhibit ``target`` (the oldest, so the choice
        is stable across evaluations).
    """
    active = [(s.id, alert_labels(s)) for s in sources if is_active_source(s)]
    return inhibitor_of(rules, target.id, alert_labels(target), active)


def inhibitor_of(
    rules: Iterable[Inhibition],
    target_id: int,
    target_labels: Mapping[str, str],
    active_sources: Iterable[tuple[int, Mapping[str, str]]],
) -> int | None:
    """:func:`inhibitor` over labels: ``active_sources`` are ``(id, labels)`` of alerts known to
    be active (the caller read them so); ``target_id`` among them is skipped."""
    rules = tuple(rules)
    active = [(sid, labels) for sid, labels in active_sources if sid != target_id]
    best: int | None = None
    for rule in rules:
        if not rule.is_target(target_labels):
            continue
        two_sided = rule.is_source(target_labels)
        key = rule.key(target_labels)
        for sid, s_labels in active:
            if best is not None and sid >= best:
                continue
            if not rule.is_source(s_labels) or rule.key(s_labels) != key:
                continue
            if two_sided and rule.is_target(s_labels):
                continue
            best = sid
    return best


def inhibited(
    rules: Iterable[Inhibition], sources: Iterable[Any], targets: Iterable[Any]
) -> dict[int, int]:
    """Which ``targets`` are inhibited and by which source: ``{target id: source id}``."""
    rules, sources = tuple(rules), list(sources)
    out: dict[int, int] = {}
    for t in targets:
        src = inhibitor(rules, t, sources)
        if src is not None:
            out[t.id] = src
    return out


__all__ = [
    "Inhibition",
    "Matcher",
    "compile_rules",
    "inhibited",
    "inhibitor",
    "inhibitor_of",
    "is_active_source",
]
