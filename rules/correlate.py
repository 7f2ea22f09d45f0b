"""Multi-evidence correlation: one combined alert when independent rules agree.

A post-processing stage over the engine's :class:`AlertSignal` s, driven by the rules of kind
``correlation`` (:mod:`rules.kinds.correlation`). When firing signals of at least
``min_distinct`` distinct member rules at the same site (or at sites within ``within_m`` metres
of each other) fall inside ``window`` of event time, ONE combined firing signal is raised:
rule id = the correlation rule's, site = the site of the earliest member signal, device and
metric empty, evidence = the union of the members' evidence, label ``members`` = the member rule
ids, value = the count of independent members. Members joining the group later re-send the
combined signal when the count grows (its summary and value update). The combined alert resolves
when every member signal in it has resolved.

Independence: by default (``independent_series``) rules count only when they judge distinct
series (site, device, metric): the SO2 instant limit and the SO2 hourly-mean limit of one
analyser see one excess, not two anomalies. The count is then the largest set of member signals
pairing distinct rules with distinct series (a maximum bipartite matching).

A member counts while its last firing signal (onset, or the engine's periodic refresh of a
firing alert) is within ``window`` of the newest one, so two anomalies that are both still
firing correlate even if their onsets were far apart. A member whose alert already resolved
still counts inside the window (an overloaded truck's alert resolves with the next truck); if
every member of a new group has already resolved, the combined alert fires and resolves at once.

Pure computation: values in, values out; state is JSON-ready (:meth:`Correlator.state`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from farsight.registry import Registry
from farsight.types import AlertSignal, Site
from rules.conditions import ts_ms
from rules.fingerprint import fingerprint
from rules.kinds.correlation import CorrelationModel
from rules.matching import max_matching
from rules.model import Rule, parse_duration

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), for haversine distances between registry locations."""


def haversine_m(a: Site, b: Site) -> float:
    """Great-circle distance in metres between two sites' registry locations."""
    lon1, lat1, lon2, lat2 = map(
        math.radians, (a.location.lon, a.location.lat, b.location.lon, b.location.lat)
    )
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(slots=True)
class _Event:
    """The newest firing signal of one member alert series (by fingerprint)."""

    rule: str
    site: str
    ts: int
    evidence: tuple[str, ...]
    on: bool = True
    series: str = ""
    """The alert's series, site/device/metric."""


@dataclass(slots=True)
class _Group:
    """A combined alert that fired: its member series (fingerprint -> still firing)."""

    since: int
    members: dict[str, bool] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    """(rule, series) of the members, for the independent count."""
    count: int = 0


@dataclass(slots=True)
class _RuleState:
    events: dict[str, _Event] = field(default_factory=dict)
    groups: dict[str, _Group] = field(default_factory=dict)


class RulesAndRegistry(Protocol):
    """What a correlator is built from (an :class:`rules.engine.Engine`, which imports this
    module, so it is named structurally)."""

    @property
    def rules(self) -> Sequence[Rule]: ...

    @property
    def registry(self) -> Registry: ...


class Correlator:
    """Combines the engine's signals by the ``correlation`` rules; not thread-safe.

    Parameters
    ----------
    rules
        All loaded rules; only those of kind ``correlation`` are used.
    registry
        The sites (departments, credit grades and locations for ``within_m``).
    """

    def __init__(self, rules: Iterable[Rule], registry: Registry) -> None:
        self.registry = registry
        self._rules: list[Rule] = []
        self._state: dict[str, _RuleState] = {}
        self.reload(rules)

    @classmethod
    def from_engine(cls, engine: RulesAndRegistry) -> Correlator:
        """The correlator of an :class:`rules.engine.Engine`'s rules and registry."""
        return cls(engine.rules, engine.registry)

    @property
    def has_rules(self) -> bool:
        """True when at least one correlation rule is loaded."""
        return bool(self._rules)

    def reload(self, rules: Iterable[Rule]) -> None:
        """Swap in new rules; a correlation rule whose definition did not change keeps its state."""
        old = {r.id: r.digest for r in self._rules}
        self._rules = [r for r in rules if r.kind == "correlation"]
        self._ids = {r.id for r in self._rules}
        self._window_ms = {
            r.id: int(parse_duration(r.spec_as(CorrelationModel).window).total_seconds() * 1000)
            for r in self._rules
        }
        self._state = {
            r.id: (
                self._state[r.id]
                if old.get(r.id) == r.digest and r.id in self._state
                else _RuleState()
            )
            for r in self._rules
        }

    # -- the stage ----------------------------------------------------------------------------

    def process(self, signals: Iterable[AlertSignal]) -> list[AlertSignal]:
        """The combined signals that ``signals`` (in order) cause; empty when none."""
        out: list[AlertSignal] = []
        if not self._rules:
            return out
        for s in signals:
            if s.rule_id in self._ids:
                continue  # never correlate combined alerts with themselves
            site = self.registry.get(s.site)
            if site is None:
                continue
            for rule in self._rules:
                spec = rule.spec_as(CorrelationModel)
                if not spec.matches(s.rule_id) or not rule.select.matches_site(site):
                    continue
                if s.status == "firing":
                    self._firing(rule, s, out)
                else:
                    self._resolved(rule, s, out)
        return out

    def _near(self, rule: Rule, a: str, b: str) -> bool:
        if a == b:
            return True
        within = rule.spec_as(CorrelationModel).within_m
        if within <= 0:
            return False
        sa, sb = self.registry.get(a), self.registry.get(b)
        return sa is not None and sb is not None and haversine_m(sa, sb) <= within

    def _firing(self, rule: Rule, s: AlertSignal, out: list[AlertSignal]) -> None:
        st = self._state[rule.id]
        t = ts_ms(s.ts)
        assert t is not None
        st.events[s.fingerprint] = _Event(
            s.rule_id, s.site, t, tuple(s.evidence), True, f"{s.site}/{s.device}/{s.metric}"
        )
        cutoff = t - self._window_ms[rule.id]
        for fp in [fp for fp, e in st.events.items() if e.ts < cutoff]:
            del st.events[fp]
        for anchor, g in st.groups.items():
            if self._near(rule, anchor, s.site):
                # A combined alert is already firing here: the member joins it, and the alert is
                # re-sent when the evidence grows.
                g.members[s.fingerprint] = True
                _extend(g.evidence, s.evidence)
                if s.rule_id not in g.rules:
                    g.rules.append(s.rule_id)
                pair = (s.rule_id, f"{s.site}/{s.device}/{s.metric}")
                if pair not in g.pairs:
                    g.pairs.append(pair)
                count = self._count(rule, g.pairs)
                if count > g.count:
                    g.count = count
                    out.append(self._signal(rule, anchor, g, "firing", s))
                return
        near = sorted(
            ((fp, e) for fp, e in st.events.items() if self._near(rule, e.site, s.site)),
            key=lambda p: p[1].ts,
        )
        distinct = list(dict.fromkeys(e.rule for _, e in near))
        pairs = list(dict.fromkeys((e.rule, e.series) for _, e in near))
        spec = rule.spec_as(CorrelationModel)
        count = self._count(rule, pairs)
        if count < spec.min_distinct:
            return
        anchor = near[0][1].site
        g = _Group(
            since=t, members={fp: e.on for fp, e in near}, rules=distinct, pairs=pairs, count=count
        )
        for _, e in near:
            _extend(g.evidence, e.evidence)
        st.groups[anchor] = g
        out.append(self._signal(rule, anchor, g, "firing", s))
        if not any(g.members.values()):
            del st.groups[anchor]
            out.append(self._signal(rule, anchor, g, "resolved", s))

    @staticmethod
    def _count(rule: Rule, pairs: list[tuple[str, str]]) -> int:
        if rule.spec_as(CorrelationModel).independent_series:
            return independent_count(pairs)
        return len({r for r, _ in pairs})

    def _resolved(self, rule: Rule, s: AlertSignal, out: list[AlertSignal]) -> None:
        st = self._state[rule.id]
        e = st.events.get(s.fingerprint)
        if e is not None:
            e.on = False
        for anchor in list(st.groups):
            g = st.groups[anchor]
            if s.fingerprint in g.members:
                g.members[s.fingerprint] = False
                if not any(g.members.values()):
                    del st.groups[anchor]
                    out.append(self._signal(rule, anchor, g, "resolved", s))

    def _signal(
        self, rule: Rule, anchor: str, g: _Group, status: str, cause: AlertSignal
    ) -> AlertSignal:

        site = self.registry.get(anchor)
        assert site is not None
        spec = rule.spec_as(CorrelationModel)
        adj = rule.adjustment(site)
        severity = adj.severity if adj is not None and adj.severity else rule.severity
        members = ", ".join(g.rules)
        values = _SafeDict(
            rule=rule.id,
            site=site.id,
            site_name=site.name,
            city=site.city,
            entity_id=site.entity_id,
            entity_name=site.entity_name,
            device="",
            metric="",
            unit="",
            severity=severity,
            members=members,
            count=str(g.count),
            window=str(spec.window),
            value=str(g.count),
            threshold=str(spec.min_distinct),
        )
        annotations = tuple((k, t.format_map(values)) for k, t in rule.annotations)
        return AlertSignal(
            rule_id=rule.id,
            fingerprint=fingerprint(rule.id, site.id, "", ""),
            status=status,
            site=site.id,
            device="",
            metric="",
            severity=severity,
            summary=dict(annotations).get("summary", rule.id),
            ts=cause.ts,
            value=float(g.count),
            threshold=float(spec.min_distinct),
            department=site.department,
            entity_id=site.entity_id,
            item_code=rule.item_code or site.item_code,
            credit_grade=site.credit_grade,
            labels=tuple(sorted({**dict(rule.labels), "members": ",".join(g.rules)}.items())),
            evidence=tuple(g.evidence),
            annotations=annotations,
        )

    # -- persistence ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-ready state of every correlation rule (with its digest)."""
        return {
            r.id: {
                "digest": r.digest,
                "events": {
                    fp: [e.rule, e.site, e.ts, list(e.evidence), e.on, e.series]
                    for fp, e in self._state[r.id].events.items()
                },
                "groups": {
                    a: {
                        "since": g.since,
                        "members": dict(g.members),
                        "rules": list(g.rules),
                        "evidence": list(g.evidence),
                        "pairs": [list(p) for p in g.pairs],
                        "count": g.count,
                    }
                    for a, g in self._state[r.id].groups.items()
                },
            }
            for r in self._rules
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Restore :meth:`state` of rules loaded unchanged; returns how many."""
        restored = 0
        for r in self._rules:
            d = state.get(r.id)
            if not d or d.get("digest") != r.digest:
                continue
            st = _RuleState()
            st.events = {
                fp: _Event(
                    str(v[0]),
                    str(v[1]),
                    int(v[2]),
                    tuple(v[3]),
                    bool(v[4]),
                    str(v[5]) if len(v) > 5 else "",
                )
                for fp, v in d.get("events", {}).items()
            }
            st.groups = {
                a: _Group(
                    int(g["since"]),
                    {k: bool(v) for k, v in g["members"].items()},
                    list(g["rules"]),
                    list(g["evidence"]),
                    [(str(x), str(y)) for x, y in g.get("pairs", [])],
                    int(g.get("count", len(g["rules"]))),
                )
                for a, g in d.get("groups", {}).items()
            }
            self._state[r.id] = st
            restored += 1
        return restored

    def firing(self) -> list[tuple[str, str]]:
        """(correlation rule id, site) of every combined alert firing."""
        return [(rid, a) for rid, st in self._state.items() for a in st.groups]


def independent_count(pairs: Iterable[tuple[str, str]]) -> int:
    """The most (rule, series) pairs with all rules distinct and all series distinct.

    The size of a maximum bipartite matching; the sets are a handful of alerts.
    """
    pairset = set(pairs)
    rules = sorted({r for r, _ in pairset})
    series = sorted({x for _, x in pairset})
    return len(max_matching(len(rules), len(series), lambda i, j: (rules[i], series[j]) in pairset))


def _extend(acc: list[str], more: Iterable[str]) -> None:
    for x in more:
        if x not in acc:
            acc.append(x)
