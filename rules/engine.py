"""The event-time rule engine: readings in, alert signals out.

State is kept per (rule, site, device, metric) series and moves on the readings' own
timestamps (event time), never on the wall clock, so a replay or a back-filled batch gives the
same alerts as live data. A condition must hold for the rule's ``for`` duration (pending, then
firing, as in Prometheus alerting rules); the first reading that clears it resolves the alert.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from farsight.logs import kv
from farsight.registry import Registry
from farsight.types import AlertSignal, Reading, Site
from rules.model import Rule

log = logging.getLogger("farsight.rules")

RESEND_EVERY = timedelta(minutes=10)
"""A firing series repeats its signal this often (event time) so the alert's last-seen moves."""


def fingerprint(rule_id: str, site: str, device: str, metric: str) -> str:
    """Stable id of an alerting series: the same inputs give the same fingerprint everywhere."""
    return hashlib.sha256(f"{rule_id}\x1f{site}\x1f{device}\x1f{metric}".encode()).hexdigest()[:16]


@dataclass(slots=True)
class SeriesState:
    """Where one series stands: inactive, pending (since when) or firing."""

    state: str = "inactive"
    since: datetime | None = None
    last_ts: datetime | None = None
    last_sent: datetime | None = None


@dataclass(slots=True)
class EngineStats:
    evaluated: int = 0
    flagged: int = 0
    late: int = 0
    no_limit: int = 0
    signals: int = 0
    flagged_by_flag: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Engine:
    """Evaluates rules against readings; not thread-safe (one engine per ingest worker)."""

    def __init__(self, rules: Iterable[Rule], registry: Registry) -> None:
        self.rules = list(rules)
        self.registry = registry
        self._by_metric: dict[str, list[Rule]] = defaultdict(list)
        for r in self.rules:
            self._by_metric[r.select.metric].append(r)
        self._state: dict[tuple[str, str, str, str], SeriesState] = {}
        self.stats = EngineStats()

    def evaluate(self, readings: Iterable[Reading]) -> list[AlertSignal]:
        """Feed readings (in arrival order) and return the signals they cause."""
        out: list[AlertSignal] = []
        for reading in readings:
            rules = self._by_metric.get(reading.metric)
            if not rules:
                continue
            site = self.registry.get(reading.site)
            if site is None:
                continue
            for rule in rules:
                if not self._selects(rule, site, reading):
                    continue
                sig = self._step(rule, site, reading)
                if sig is not None:
                    out.append(sig)
        self.stats.signals += len(out)
        return out

    def _selects(self, rule: Rule, site: Site, reading: Reading) -> bool:
        if not rule.select.matches_site(site):
            return False
        if rule.select.device_kind is not None:
            dev = site.device(reading.device)
            if dev is None or dev.kind != rule.select.device_kind:
                return False
        return True

    def _step(self, rule: Rule, site: Site, reading: Reading) -> AlertSignal | None:
        self.stats.evaluated += 1
        # Calibration, maintenance and fault data (HJ 212 flags) are not evidence of a violation.
        if not reading.is_normal:
            self.stats.flagged += 1
            self.stats.flagged_by_flag[reading.flag] += 1
            return None
        limit = rule.limit_for(site)
        if limit is None:
            self.stats.no_limit += 1
            return None
        key = (rule.id, reading.site, reading.device, reading.metric)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = SeriesState()
        if st.last_ts is not None and reading.ts <= st.last_ts:
            # Out-of-order data cannot move a state that later data already moved.
            self.stats.late += 1
            return None
        st.last_ts = reading.ts
        if rule.violated(reading.value, limit):
            if st.state == "inactive":
                st.state, st.since = "pending", reading.ts
            if st.state == "pending" and reading.ts - st.since >= rule.for_:  # type: ignore[operator]
                st.state, st.last_sent = "firing", reading.ts
                log.info("rule firing", extra=kv(rule=rule.id, site=reading.site, device=reading.device, metric=reading.metric, value=reading.value))
                return self._signal(rule, site, reading, limit, "firing")
            if st.state == "firing" and reading.ts - st.last_sent >= RESEND_EVERY:  # type: ignore[operator]
                st.last_sent = reading.ts
                return self._signal(rule, site, reading, limit, "firing")
            return None
        was_firing = st.state == "firing"
        st.state, st.since = "inactive", None
        if was_firing:
            log.info("rule resolved", extra=kv(rule=rule.id, site=reading.site, device=reading.device, metric=reading.metric))
            return self._signal(rule, site, reading, limit, "resolved")
        return None

    def _signal(self, rule: Rule, site: Site, reading: Reading, limit: float, status: str) -> AlertSignal:
        values = {
            "site": site.id, "site_name": site.name, "device": reading.device, "metric": reading.metric,
            "value": f"{reading.value:g}", "unit": reading.unit, "threshold": f"{limit:g}",
        }
        try:
            summary = rule.summary.format(**values)
        except (KeyError, IndexError, ValueError):
            summary = f"{rule.id}: {reading.metric} at {site.id} = {reading.value:g}"
        return AlertSignal(
            rule_id=rule.id,
            fingerprint=fingerprint(rule.id, reading.site, reading.device, reading.metric),
            status=status,
            site=site.id,
            device=reading.device,
            metric=reading.metric,
            severity=rule.severity,
            summary=summary,
            ts=reading.ts,
            value=reading.value,
            threshold=limit,
            department=site.department,
            entity_id=site.entity_id,
            item_code=rule.item_code or site.item_code,
            labels=rule.labels,
        )

    def series_state(self, rule_id: str, site: str, device: str, metric: str) -> str:
        """``inactive``, ``pending`` or ``firing`` for one series (for tests and the API)."""
        st = self._state.get((rule_id, site, device, metric))
        return st.state if st else "inactive"
