"""The event-time rule engine: readings in, alert signals out.

Rules are bound lazily to what they watch: the first reading of a (site, device, metric) finds
the rules whose selector matches and caches that list, so each later reading costs one dict
lookup and the matching conditions, never a scan of all rules. State moves on the readings' own
timestamps (event time); the engine's clock (:meth:`Engine.tick`) only serves conditions that
must notice silence. State can be saved and restored, and rules reloaded, without losing the
state of rules that did not change.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import rules.kinds  # noqa: F401  # built-in kinds register on import
from farsight.logs import kv
from farsight.registry import Registry
from farsight.types import AlertSignal, ChangeEvent, Reading, Site
from farsight.validity import VALID_FLAGS
from rules.conditions import Binding, Condition, Lifecycle, Sample, Verdict, as_list, ms_ts, ts_ms
from rules.correlate import Correlator
from rules.fingerprint import fingerprint
from rules.kinds.change_region import ChangeRegionModel
from rules.model import MaintenanceWindow, Rule, RuleSet
from rules.registry import RULE_KINDS

log = logging.getLogger("farsight.rules")


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.0f}"
    return str(v)


@dataclass(slots=True)
class EngineStats:
    """Counters since start; ``late`` readings were outside every rule's allowed lateness,
    ``future`` ones were measured after the bound the caller gave (not evaluated)."""

    readings: int = 0
    evaluated: int = 0
    flagged: int = 0
    late: int = 0
    future: int = 0
    suppressed: int = 0
    signals: int = 0
    flagged_by_flag: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    late_by_rule: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Instance:
    """One rule bound to one scope: its condition, reorder buffer and alert lifecycles."""

    __slots__ = (
        "binding",
        "cond",
        "dirty",
        "heap",
        "last_ts",
        "lcs",
        "max_ts",
        "metrics",
        "rule",
        "scope",
        "strict",
    )

    def __init__(
        self,
        rule: Rule,
        binding: Binding,
        cond: Condition,
        scope: tuple[str, ...],
        metrics: frozenset[str] | None,
    ) -> None:
        self.rule = rule
        self.binding = binding
        self.cond = cond
        self.scope = scope
        self.lcs: dict[str, Lifecycle] = {}
        self.last_ts: datetime | None = None
        self.max_ts: datetime | None = None
        self.heap: list[tuple[datetime, int, Sample]] = []
        self.metrics = metrics
        # A series sees one value per timestamp; a device or site may send several messages
        # with the same timestamp (an HJ 212 frame and a JSON status), which are not late.
        self.strict = len(scope) == 3
        self.dirty = False

    def is_late(self, ts: datetime) -> bool:
        """True when a sample at ``ts`` comes after the state has moved past it."""
        last = self.last_ts
        return last is not None and (ts <= last if self.strict else ts < last)


_seq = itertools.count()

CORRELATOR_ENTRY = "__correlator__"
"""Snapshot entry holding the correlator's state (its rules' digests are inside it)."""


class Engine:
    """Evaluates rules against readings; not thread-safe (one engine per ingest worker)."""

    def __init__(self, rules: RuleSet | Iterable[Rule], registry: Registry) -> None:
        self.registry = registry
        self.stats = EngineStats()
        # Newest event time seen across all streams: conditions that judge silence in replayed
        # history (a gateway's backlog, the demo's last hour) read it instead of the wall clock.
        self.watermark: datetime | None = None
        self._instances: dict[tuple[str, tuple[str, ...]], Instance] = {}
        self._load(rules)
        self.correlator = Correlator(self.rules, registry)

    # -- rules ------------------------------------------------------------------------------

    def _load(self, rules: RuleSet | Iterable[Rule]) -> None:
        if isinstance(rules, RuleSet):
            self.rules = list(rules.rules)
            self.maintenance: tuple[MaintenanceWindow, ...] = rules.maintenance
        else:
            self.rules = list(rules)
            self.maintenance = ()
        self._by_id = {r.id: r for r in self.rules}
        self._series: dict[str, list[Rule]] = defaultdict(list)
        self._device: list[Rule] = []
        self._site: list[Rule] = []
        for r in self.rules:
            kind = RULE_KINDS[r.kind]
            if kind.scope == "series":
                self._series[r.select.metric or ""].append(r)
                continue
            metrics = kind.metrics(r.spec)
            # A kind that needs no metric (correlation works on signals) is never bound.
            if metrics is None or metrics:
                (self._device if kind.scope == "device" else self._site).append(r)
        self._bound_series: dict[tuple[str, str, str], tuple[Instance, ...]] = {}
        self._bound_device: dict[tuple[str, str], tuple[Instance, ...]] = {}
        self._bound_site: dict[str, tuple[Instance, ...]] = {}
        self._maint_sites = {w.site for w in self.maintenance}
        for r in self.rules:
            if RULE_KINDS[r.kind].eager:
                for site in self.registry.sites:
                    if r.select.matches_site(site):
                        self._instance(r, site, None, None)

    def reset(self) -> None:
        """Forget all state (then :meth:`restore` the last saved one): used when a batch whose
        evaluation already moved the state in memory was rolled back in the database."""
        self._instances = {}
        self.watermark = None
        self._load(RuleSet(tuple(self.rules), self.maintenance))
        self.correlator = Correlator(self.rules, self.registry)

    def reload(self, rules: RuleSet | Iterable[Rule]) -> dict[str, int]:
        """Swap in new rules; a rule whose definition did not change keeps its state."""
        old = self._instances
        old_digest = {r.id: r.digest for r in self.rules}
        self._instances = {}
        self._load(rules)
        self.correlator.reload(self.rules)
        kept = 0
        for key, inst in old.items():
            rule = self._by_id.get(inst.rule.id)
            if rule is not None and rule.digest == old_digest.get(inst.rule.id):
                inst.rule = rule
                self._instances[key] = inst
                kept += 1
        self._bound_series.clear()
        self._bound_device.clear()
        self._bound_site.clear()
        log.info(
            "rules reloaded",
            extra=kv(rules=len(self.rules), kept_instances=kept, dropped_instances=len(old) - kept),
        )
        return {"rules": len(self.rules), "kept": kept, "dropped": len(old) - kept}

    # -- binding ------------------------------------------------------------------------------

    def _instance(self, rule: Rule, site: Site, device: str | None, metric: str | None) -> Instance:
        scope = tuple(x for x in (site.id, device, metric) if x is not None)
        key = (rule.id, scope)
        inst = self._instances.get(key)
        if inst is None:
            kind = RULE_KINDS[rule.kind]
            binding = Binding.make(rule, site, device, metric)
            inst = Instance(rule, binding, kind.condition(binding), scope, kind.metrics(rule.spec))
            if hasattr(inst.cond, "watermark"):
                inst.cond.watermark = lambda: self.watermark
            self._instances[key] = inst
        return inst

    def _bind_series(self, site: Site, device: str, metric: str) -> tuple[Instance, ...]:
        out = tuple(
            self._instance(r, site, device, metric)
            for r in self._series.get(metric, ())
            if r.select.matches_site(site) and r.select.matches_device(site, device)
        )
        self._bound_series[(site.id, device, metric)] = out
        return out

    def _bind_device(self, site: Site, device: str) -> tuple[Instance, ...]:
        out = tuple(
            self._instance(r, site, device, None)
            for r in self._device
            if r.select.matches_site(site) and r.select.matches_device(site, device)
        )
        self._bound_device[(site.id, device)] = out
        return out

    def _bind_site(self, site: Site) -> tuple[Instance, ...]:
        out = tuple(
            self._instance(r, site, None, None) for r in self._site if r.select.matches_site(site)
        )
        self._bound_site[site.id] = out
        return out

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(
        self, readings: Iterable[Reading], not_after: datetime | None = None
    ) -> list[AlertSignal]:
        """Feed readings (in arrival order) and return the signals they cause.

        Readings measured after ``not_after`` (ingest gives the wall clock plus the largest
        allowed skew) are counted and dropped before they touch any state: no single reading
        moves the watermark or a series' clock past it.
        """
        out: list[AlertSignal] = []
        for sample in _samples(readings):
            self.stats.readings += len(sample.readings)
            site = self.registry.get(sample.site)
            if site is None:
                continue
            if not_after is not None and sample.ts > not_after:
                self._future(sample, not_after)
                continue
            if self.watermark is None or sample.ts > self.watermark:
                self.watermark = sample.ts
            for metric, r in sample.readings.items():
                insts = self._bound_series.get((sample.site, sample.device, metric))
                if insts is None:
                    insts = self._bind_series(site, sample.device, metric)
                if not insts:
                    continue
                if r.flag not in VALID_FLAGS:
                    # Maintenance, calibration, fault, stopped... data is not valid (HJ 75-2017):
                    # never evidence of an exceedance.
                    self.stats.flagged += 1
                    self.stats.flagged_by_flag[r.flag] += 1
                    continue
                single = Sample(sample.site, sample.device, sample.ts, {metric: r})
                for inst in insts:
                    self._feed(inst, single, out)
            if self._device:
                insts = self._bound_device.get((sample.site, sample.device))
                if insts is None:
                    insts = self._bind_device(site, sample.device)
                for inst in insts:
                    if inst.metrics is None or not inst.metrics.isdisjoint(sample.readings):
                        self._feed(inst, sample, out)
            if self._site:
                insts = self._bound_site.get(sample.site)
                if insts is None:
                    insts = self._bind_site(site)
                for inst in insts:
                    if inst.metrics is None or not inst.metrics.isdisjoint(sample.readings):
                        self._feed(inst, sample, out)
        out.extend(self.correlator.process(out))
        self.stats.signals += len(out)
        return out

    def _feed(self, inst: Instance, sample: Sample, out: list[AlertSignal]) -> None:
        cond = inst.cond
        if cond.devices is not None and sample.device not in cond.devices:
            return
        # VALID_FLAGS is farsight.validity.is_valid's set, looked up inline on this hot path.
        if not cond.accepts_flagged and any(
            r.flag not in VALID_FLAGS for r in sample.readings.values()
        ):
            kept = {m: r for m, r in sample.readings.items() if r.flag in VALID_FLAGS}
            if not kept:
                return
            sample = Sample(sample.site, sample.device, sample.ts, kept)
        lateness = inst.rule.lateness
        if inst.is_late(sample.ts):
            self._late(inst, sample)
            return
        if not lateness:
            inst.last_ts = sample.ts
            self._judge(inst, cond.observe(sample), out)
            return
        # Within the allowed lateness, readings wait in a heap and are released in order once
        # the watermark (newest event time minus lateness) has passed them.
        heapq.heappush(inst.heap, (sample.ts, next(_seq), sample))
        if inst.max_ts is None or sample.ts > inst.max_ts:
            inst.max_ts = sample.ts
        watermark = inst.max_ts - lateness
        while inst.heap and inst.heap[0][0] <= watermark:
            ts, _, s = heapq.heappop(inst.heap)
            if inst.is_late(ts):
                self._late(inst, s)
                continue
            inst.last_ts = ts
            self._judge(inst, cond.observe(s), out)

    def _future(self, sample: Sample, not_after: datetime) -> None:
        self.stats.future += 1
        log.warning(
            "future reading not evaluated",
            extra=kv(
                site=sample.site,
                device=sample.device,
                ts=sample.ts.isoformat(),
                not_after=not_after.isoformat(),
            ),
        )

    def _late(self, inst: Instance, sample: Sample) -> None:
        self.stats.late += 1
        self.stats.late_by_rule[inst.rule.id] += 1
        log.warning(
            "late reading not evaluated",
            extra=kv(
                rule=inst.rule.id,
                site=sample.site,
                device=sample.device,
                ts=sample.ts.isoformat(),
                newest=inst.last_ts.isoformat() if inst.last_ts else "",
            ),
        )

    def tick(self, now: datetime) -> list[AlertSignal]:
        """Advance the engine's clock: conditions that watch for silence judge ``now``."""
        out: list[AlertSignal] = []
        for inst in list(self._instances.values()):
            verdicts = inst.cond.tick(now)
            if verdicts is not None:
                self._judge(inst, verdicts, out)
        out.extend(self.correlator.process(out))
        self.stats.signals += len(out)
        return out

    def _judge(
        self, inst: Instance, verdicts: Verdict | list[Verdict] | None, out: list[AlertSignal]
    ) -> None:
        if verdicts is None:
            return
        inst.dirty = True
        b = inst.binding
        for v in as_list(verdicts):
            self.stats.evaluated += 1
            lc = inst.lcs.get(v.key)
            if lc is None:
                lc = inst.lcs[v.key] = Lifecycle()
            change = lc.step(v, b.for_, inst.rule.keep_firing_for)
            if change is None:
                continue
            if change == "resolved":
                if lc.notified:
                    lc.notified = False
                    out.append(self._signal(inst, v, "resolved"))
                if v.key:
                    # Per-event keys (one per truck) would otherwise grow state without bound.
                    del inst.lcs[v.key]
                continue
            if change == "firing" and self._in_maintenance(
                b.site.id, v.device or (b.device or ""), v.ts
            ):
                self.stats.suppressed += 1
                continue
            if change == "refresh" and not lc.notified:
                continue
            lc.notified = True
            out.append(self._signal(inst, v, "firing"))

    def _in_maintenance(self, site: str, device: str, ts: datetime) -> bool:
        if site not in self._maint_sites:
            return False
        return any(w.covers(site, device, ts) for w in self.maintenance)

    def _signal(self, inst: Instance, v: Verdict, status: str) -> AlertSignal:
        rule, b, site = inst.rule, inst.binding, inst.binding.site
        device = v.device or b.device or ""
        metric = v.metric or b.metric or ""
        values = _SafeDict(
            rule=rule.id,
            site=site.id,
            site_name=site.name,
            city=site.city,
            entity_id=site.entity_id,
            entity_name=site.entity_name,
            device=device,
            metric=metric,
            unit=v.unit,
            severity=b.severity,
            value=_fmt(v.value) if v.value is not None else "",
            threshold=_fmt(v.threshold) if v.threshold is not None else "",
        )
        values.update({k: _fmt(x) for k, x in v.context.items()})
        annotations = tuple((k, t.format_map(values)) for k, t in rule.annotations)
        if status == "firing":
            log.info(
                "rule firing",
                extra=kv(rule=rule.id, site=site.id, device=device, metric=metric, value=v.value),
            )
        else:
            log.info(
                "rule resolved", extra=kv(rule=rule.id, site=site.id, device=device, metric=metric)
            )
        return AlertSignal(
            rule_id=rule.id,
            fingerprint=fingerprint(
                rule.id,
                site.id,
                device,
                metric + (f"#{v.key}" if v.key and v.key not in (device, metric) else ""),
            ),
            status=status,
            site=site.id,
            device=device,
            metric=metric,
            severity=b.severity,
            summary=dict(annotations).get("summary", rule.id),
            ts=v.ts,
            value=v.value,
            threshold=v.threshold,
            department=site.department,
            entity_id=site.entity_id,
            item_code=rule.item_code or site.item_code,
            credit_grade=site.credit_grade,
            labels=rule.labels,
            evidence=v.evidence,
            annotations=annotations,
        )

    # -- satellite change regions -------------------------------------------------------------

    def judge_changes(self, events: Iterable[ChangeEvent]) -> list[AlertSignal]:
        """Firing signals of the ``change_region`` rules for revisit state changes.

        Each rule a change event satisfies (change kind, area, zone kinds, area of interest)
        gives one signal; its fingerprint is the rule, the area of interest and the track, so
        a later ``confirmed`` updates the alert a ``possible`` opened, and an ``expired`` (the
        change was not seen again) resolves it.
        """
        rules = [r for r in self.rules if r.kind == "change_region"]
        out: list[AlertSignal] = []
        for ev in events:
            for rule in rules:
                if rule.spec_as(ChangeRegionModel).judges(ev):
                    out.append(self._change_signal(rule, ev))
        self.stats.signals += len(out)
        return out

    def _change_signal(self, rule: Rule, ev: ChangeEvent) -> AlertSignal:
        region = ev.region
        spec = rule.spec_as(ChangeRegionModel)
        # The rule's own severity may be a credit grade's: a first sighting keeps it.
        severity = spec.confirmed_severity if ev.state == "confirmed" else rule.severity
        zones = ",".join(z for z, _ in ev.zones)
        values = _SafeDict(
            rule=rule.id,
            aoi=region.aoi,
            site=region.aoi,
            site_name=region.aoi,
            change=region.kind.replace("_", " "),
            area_ha=_fmt(round(region.area_m2 / 10_000, 2)),
            zones=zones or "no zone",
            state=ev.state,
            sightings=str(ev.sightings),
            confidence=_fmt(round(region.confidence, 2)),
            severity=severity,
            lon=f"{region.centroid.lon:.6f}",
            lat=f"{region.centroid.lat:.6f}",
        )
        annotations = tuple((k, t.format_map(values)) for k, t in rule.annotations) + (
            ("centroid", f"{region.centroid.lon:.6f},{region.centroid.lat:.6f}"),
            ("before", region.before.isoformat()),
            ("after", region.after.isoformat()),
        )
        log.info(
            "rule firing",
            extra=kv(
                rule=rule.id, aoi=region.aoi, track=ev.track, state=ev.state, kind=region.kind
            ),
        )
        return AlertSignal(
            rule_id=rule.id,
            fingerprint=fingerprint(rule.id, region.aoi, "satellite", ev.track),
            status="resolved" if ev.state == "expired" else "firing",
            site=region.aoi,
            device="satellite",
            metric=region.kind,
            severity=severity,
            summary=dict(annotations).get("summary", rule.id),
            ts=region.after,
            value=region.area_m2,
            threshold=None,
            department=ev.department,
            item_code=rule.item_code,
            labels=rule.labels
            + (("change", region.kind), ("state", ev.state), ("track", ev.track), ("zones", zones)),
            evidence=region.evidence,
            annotations=annotations,
        )

    # -- introspection and persistence ------------------------------------------------------

    def series_state(self, rule_id: str, site: str, device: str, metric: str) -> str:
        """``inactive``, ``pending`` or ``firing`` of one series (for tests and the API)."""
        for scope in ((site, device, metric), (site, device), (site,)):
            inst = self._instances.get((rule_id, scope))
            if inst is not None:
                for key in (metric, device, ""):
                    if key in inst.lcs:
                        return inst.lcs[key].state
        return "inactive"

    def firing(self) -> list[tuple[str, tuple[str, ...], str]]:
        """(rule id, scope, key) of every firing lifecycle."""
        return [
            (inst.rule.id, inst.scope, k)
            for inst in self._instances.values()
            for k, lc in inst.lcs.items()
            if lc.state == "firing"
        ]

    def snapshot(self, only_dirty: bool = False) -> list[dict[str, Any]]:
        """JSON-ready state of every bound instance (or those changed since the last call)."""
        out = []
        for (rid, scope), inst in self._instances.items():
            if only_dirty and not inst.dirty:
                continue
            inst.dirty = False
            out.append(
                {
                    "rule": rid,
                    "digest": inst.rule.digest,
                    "scope": list(scope),
                    "last_ts": ts_ms(inst.last_ts),
                    "max_ts": ts_ms(inst.max_ts),
                    "heap": [
                        [
                            ts_ms(ts),
                            [[r.metric, r.value, r.unit, r.flag] for r in s.readings.values()],
                            s.site,
                            s.device,
                        ]
                        for ts, _, s in inst.heap
                    ],
                    "cond": inst.cond.state(),
                    "lcs": {k: lc.to_state() for k, lc in inst.lcs.items()},
                }
            )
        if self.correlator.has_rules:
            out.append(
                {
                    "rule": CORRELATOR_ENTRY,
                    "digest": "",
                    "scope": [],
                    "correlator": self.correlator.state(),
                }
            )
        return out

    def restore(self, entries: Sequence[dict[str, Any]]) -> int:
        """Restore :meth:`snapshot` entries of rules that are loaded unchanged; returns how many."""
        restored = 0
        for e in entries:
            if e["rule"] == CORRELATOR_ENTRY:
                restored += self.correlator.restore(e.get("correlator", {}))
                continue
            rule = self._by_id.get(e["rule"])
            if rule is None or rule.digest != e["digest"]:
                continue
            scope = tuple(e["scope"])
            site = self.registry.get(scope[0])
            if site is None:
                continue
            device = scope[1] if len(scope) > 1 else None
            metric = scope[2] if len(scope) > 2 else None
            inst = self._instance(rule, site, device, metric)
            inst.last_ts, inst.max_ts = ms_ts(e["last_ts"]), ms_ts(e["max_ts"])
            inst.heap = []
            for ts, rows, s_site, s_dev in e.get("heap", []):
                t = ms_ts(ts)
                readings = {m: Reading(s_site, s_dev, m, v, u, t, f) for m, v, u, f in rows}
                heapq.heappush(inst.heap, (t, next(_seq), Sample(s_site, s_dev, t, readings)))
            if "cond" in e:  # a repaired entry has none: the condition starts afresh
                inst.cond.restore(e["cond"])
            inst.lcs = {k: Lifecycle.from_state(d) for k, d in e["lcs"].items()}
            restored += 1
        self._bound_series.clear()
        self._bound_device.clear()
        self._bound_site.clear()
        return restored


def _samples(readings: Iterable[Reading]) -> Iterable[Sample]:
    """Group consecutive readings of one device and timestamp (one message) into samples."""
    current: Sample | None = None
    for r in readings:
        if (
            current is not None
            and r.ts == current.ts
            and r.device == current.device
            and r.site == current.site
        ):
            current.readings[r.metric] = r
            continue
        if current is not None:
            yield current
        current = Sample(r.site, r.device, r.ts, {r.metric: r})
    if current is not None:
        yield current
