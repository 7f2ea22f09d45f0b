"""The mute stage of the risk queue: silences and inhibition applied to alerts.

``MuteStage.apply`` takes the place of ``AlertStore.apply`` in the pipeline: in one
transaction it applies the rule signals (open, dedup, resolve) and then mutes or unmutes the
alerts they touched. ``MuteStage.tick`` runs on the engine's clock and catches what no signal
announces: a silence that starts, ends by itself or is created or expired through the API, and an
inhibiting alert that a person closes.

A muted alert is not dropped (全程留痕): it stays in the queue with ``suppressed`` set to
``{"silence": id}`` or ``{"inhibited_by": alert id}`` (a silence wins when both apply: it is a
person's explicit decision), the default queue view hides it, and escalation skips it. Every
change is an alert event (``silenced``, ``unsilenced``, ``inhibited``, ``uninhibited``) with its
audit entry, in the transaction of the change. Closed alerts are left as they were closed.

The decisions are pure (:func:`alerts.matchers.matches`, :func:`alerts.inhibit.inhibitor`);
this module gathers candidates through the store, narrowed by the matchers' equality labels
(:class:`~alerts.store.OpenAlerts`), and records the outcome through the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.inhibit import Inhibition, compile_rules, inhibitor, is_active_source
from alerts.matchers import ALERT_FIELDS, Matcher, alert_labels, matches
from alerts.model import Alert
from alerts.silences import Silence, SilenceStore
from alerts.store import AlertStore, OpenAlerts
from farsight.db import Connection
from farsight.errors import NotFoundError
from farsight.logs import kv
from farsight.types import AlertSignal

log = logging.getLogger(__name__)

ACTOR = "mute"
"""Actor of the events this stage records (the silence's creator is in the event's data)."""

NOT_MUTED = "{}"


def encode(reason: Mapping[str, Any]) -> str:
    """The ``suppressed`` column's text for ``reason``; one spelling, so SQL can compare it."""
    return json.dumps(dict(reason), sort_keys=True) if reason else NOT_MUTED


def _pins(matchers: Iterable[Matcher]) -> dict[str, str] | None:
    """Equality matchers on alert columns, as SQL filters; ``None`` when two contradict."""
    out: dict[str, str] = {}
    for m in matchers:
        if m.pattern is None and m.label in ALERT_FIELDS:
            if out.get(m.label, m.value) != m.value:
                return None
            out[m.label] = m.value
    return out


def _pins_with_equal(
    matchers: Iterable[Matcher], equal: Iterable[str], labels: dict[str, str]
) -> dict[str, str] | None:
    """The column values the other side of an inhibition must have: ``matchers``' equality
    pins plus this alert's values of the ``equal`` labels that are columns. ``None`` when the
    matchers cannot be narrowed by columns or contradict the equal labels (no alert can match)."""
    pins = _pins(matchers)
    if pins is None:
        return None
    for label in equal:
        if label in ALERT_FIELDS:
            if pins.get(label, labels[label]) != labels[label]:
                return None
            pins[label] = labels[label]
    return pins


def _row_labels(r: Any) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in json.loads(r["labels"] or "{}").items()}
    for f in ALERT_FIELDS:
        labels[f] = "" if r[f] is None else str(r[f])
    return labels


@dataclass(slots=True)
class _SourceCache:
    """What one settle has read of the inhibiting sources: per rule, the active sources' ids and
    labels; the sources' alerts by id."""

    by_rule: dict[int, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    alerts: dict[int, Alert] = field(default_factory=dict)


class MuteStage:
    """Silences and inhibition over an :class:`~alerts.store.AlertStore`.

    Parameters
    ----------
    store : AlertStore
        The risk queue; its clock dates the events.
    silences : SilenceStore
        On the same database as ``store`` (one transaction covers both).
    inhibit_rules : iterable
        ``settings.alerts.inhibit`` (or mappings with source, target, equal).

    Raises
    ------
    MatcherError
        An inhibit rule is invalid.
    """

    def __init__(
        self, store: AlertStore, silences: SilenceStore, inhibit_rules: Iterable[Any] = ()
    ) -> None:
        self.store = store
        self.silences = silences
        self.rules: tuple[Inhibition, ...] = compile_rules(inhibit_rules)

    # -- entry points -----------------------------------------------------------------------

    def apply(self, signals: Sequence[AlertSignal]) -> list[Alert]:
        """Apply rule signals (as :meth:`AlertStore.apply`), then mute or unmute the alerts
        they changed and the alerts a changed source inhibits or inhibited; one transaction.

        Returns the changed alerts, then the others whose mute changed, as they are now.
        """
        with self.store.db.transaction() as c:
            changed = self.store.apply(signals)
            if not changed:
                return []
            now = self.store.clock.now()
            candidates = {a.id for a in changed if a.state != "closed"}
            for a in changed:
                inhibited = OpenAlerts(suppressed=encode({"inhibited_by": a.id}))
                candidates.update(self.store.open_ids_in(c, inhibited))
                if is_active_source(a):
                    candidates.update(self._targets_of(c, a, unmuted_only=False))
            # The alerts just applied are current in this transaction: no second read of them,
            # unless their mute changed below.
            known = {a.id: a for a in changed}
            moved = self._settle(c, candidates, now, known)
            again = set(moved)
            ids = [a.id for a in changed] + [i for i in moved if i not in known]
            return [known[i] if i in known and i not in again else self.store.get(i) for i in ids]

    def tick(self, now: datetime | None = None) -> list[Alert]:
        """Re-evaluate what time changes: silences that started, ended or were created or expired
        since, and sources that resolved or were closed. Returns the alerts whose mute changed."""
        now = now or self.store.clock.now()
        with self.store.db.transaction() as c:
            candidates = set(self.store.open_ids_in(c, OpenAlerts(muted=True)))
            for s in self.silences.active(now):
                pins = _pins(s.matchers)
                if pins is None:
                    continue
                sel = OpenAlerts(pins=tuple(pins.items()), suppressed=NOT_MUTED)
                candidates.update(
                    aid for aid, labels in self._labelled(c, sel) if matches(s.matchers, labels)
                )
            for rule in self.rules:
                pins = _pins(rule.source)
                if pins is None:
                    continue
                sel = OpenAlerts(pins=tuple(pins.items()), firing=True)
                for sid, _labels in self._labelled(c, sel):
                    candidates.update(self._targets_of(c, self.store.get(sid), unmuted_only=True))
            moved = self._settle(c, candidates, now)
            return [self.store.get(i) for i in moved]

    def evaluate(self, alert_ids: Iterable[int], now: datetime | None = None) -> list[Alert]:
        """Re-evaluate these alerts now; returns those whose mute changed."""
        now = now or self.store.clock.now()
        with self.store.db.transaction() as c:
            moved = self._settle(c, set(alert_ids), now)
            return [self.store.get(i) for i in moved]

    # -- candidates -------------------------------------------------------------------------

    def _labelled(self, c: Connection, sel: OpenAlerts) -> list[tuple[int, dict[str, str]]]:
        rows = self.store.open_rows_in(c, sel, ("labels", *ALERT_FIELDS))
        return [(int(r["id"]), _row_labels(r)) for r in rows]

    def _targets_of(self, c: Connection, source: Alert, *, unmuted_only: bool) -> set[int]:
        """Not-closed alerts that ``source`` may inhibit under some rule."""
        labels = alert_labels(source)
        out: set[int] = set()
        for rule in self.rules:
            if not rule.is_source(labels):
                continue
            pins = _pins_with_equal(rule.target, rule.equal, labels)
            if pins is None:
                continue
            sel = OpenAlerts(
                pins=tuple(pins.items()),
                exclude=source.id,
                suppressed=NOT_MUTED if unmuted_only else None,
            )
            key = rule.key(labels)
            out.update(
                aid for aid, t in self._labelled(c, sel) if rule.is_target(t) and rule.key(t) == key
            )
        return out

    def _sources_for(self, c: Connection, target: Alert, cache: _SourceCache) -> list[Alert]:
        """Active alerts that may inhibit ``target`` under some rule (checked by the caller).

        A rule whose source matchers pin columns (the usual ``rule_id: site-offline``) reads
        its active sources once per settle and filters them here by the ``equal`` labels; a
        rule that pins nothing asks per target, narrowed by the target's ``equal`` values.
        """
        labels = alert_labels(target)
        found: dict[int, Alert] = {}
        for i, rule in enumerate(self.rules):
            if not rule.is_target(labels):
                continue
            source_pins = _pins(rule.source)
            if source_pins is None:
                continue
            if source_pins:
                if i not in cache.by_rule:
                    sel = OpenAlerts(pins=tuple(source_pins.items()), firing=True)
                    cache.by_rule[i] = self._labelled(c, sel)
                equal = [k for k in rule.equal if k in ALERT_FIELDS]
                ids = [sid for sid, s in cache.by_rule[i] if all(s[k] == labels[k] for k in equal)]
            else:
                pins = _pins_with_equal(rule.source, rule.equal, labels)
                if pins is None:
                    continue
                sel = OpenAlerts(pins=tuple(pins.items()), firing=True)
                ids = [sid for sid, _ in self._labelled(c, sel)]
            for sid in ids:
                if sid not in cache.alerts:
                    cache.alerts[sid] = self.store.get(sid)
                found[sid] = cache.alerts[sid]
        return list(found.values())

    # -- decision and record ----------------------------------------------------------------

    def _settle(
        self,
        c: Connection,
        ids: set[int],
        now: datetime,
        known: Mapping[int, Alert] | None = None,
    ) -> list[int]:
        """Bring each alert's ``suppressed`` to what the silences and rules say; returns the ids
        changed. ``known``: alerts already read in this transaction (not read again)."""
        if not ids:
            return []
        silences = self.silences.active(now)
        cache = _SourceCache()
        moved: list[int] = []
        for aid in sorted(ids):
            # Row lock: the hub's tick and an ingest worker never decide one alert at once.
            if not self.store.lock_in(c, aid):
                continue
            alert = known[aid] if known is not None and aid in known else self.store.get(aid)
            if alert.state == "closed":
                continue
            have = dict(alert.suppressed or {})
            want = self._decide(c, alert, have, silences, cache)
            if want == have:
                continue
            self._record(alert, have, want, now, silences)
            moved.append(aid)
        if moved:
            log.info("mute changed", extra=kv(alerts=len(moved)))
        return moved

    def _decide(
        self,
        c: Connection,
        alert: Alert,
        have: Mapping[str, Any],
        silences: list[Silence],
        cache: _SourceCache,
    ) -> dict[str, Any]:
        labels = alert_labels(alert)
        hits = [s for s in silences if matches(s.matchers, labels)]
        if hits:
            current = [s for s in hits if s.id == have.get("silence")]
            # Keep the silence it has (no churn); else the one that lasts longest.
            chosen = current[0] if current else max(hits, key=lambda s: (s.ends_at, -s.id))
            return {"silence": chosen.id}
        if self.rules:
            src = inhibitor(self.rules, alert, self._sources_for(c, alert, cache))
            if src is not None:
                return {"inhibited_by": src}
        return {}

    def _record(
        self,
        alert: Alert,
        have: Mapping[str, Any],
        want: Mapping[str, Any],
        now: datetime,
        silences: list[Silence],
    ) -> None:
        """One event per change of reason; the last one writes the column (one transaction)."""
        events: list[tuple[str, str, dict[str, Any]]] = []
        old_sil, new_sil = have.get("silence"), want.get("silence")
        old_src, new_src = have.get("inhibited_by"), want.get("inhibited_by")
        if old_sil is not None and old_sil != new_sil:
            why = self._silence_gone(int(old_sil), now)
            events.append(
                ("unsilenced", f"silence {old_sil} {why}", {"silence": old_sil, "why": why})
            )
        if old_src is not None and old_src != new_src:
            why = self._source_gone(int(old_src))
            events.append(
                ("uninhibited", f"alert {old_src} {why}", {"inhibited_by": old_src, "why": why})
            )
        if new_sil is not None and new_sil != old_sil:
            s = next(x for x in silences if x.id == new_sil)
            events.append(
                (
                    "silenced",
                    s.reason,
                    {
                        "silence": s.id,
                        "creator": s.creator,
                        "ends_at": s.ends_at.isoformat(),
                        "matchers": {m.label: m.value for m in s.matchers},
                    },
                )
            )
        if new_src is not None and new_src != old_src:
            src = self.store.get(int(new_src))
            events.append(
                (
                    "inhibited",
                    f"inhibited by alert {src.id} ({src.rule_id} at {src.site})",
                    {"inhibited_by": src.id, "rule_id": src.rule_id, "site": src.site},
                )
            )
        for i, (action, note, data) in enumerate(events):
            last = i == len(events) - 1
            self.store.record(
                alert.id,
                ACTOR,
                action,
                note,
                data,
                changes={"suppressed": encode(want)} if last else None,
            )
        log.info(
            "alert mute",
            extra=kv(
                alert=alert.id,
                site=alert.site,
                rule=alert.rule_id,
                actions=",".join(e[0] for e in events),
            ),
        )

    def _silence_gone(self, silence_id: int, now: datetime) -> str:
        try:
            s = self.silences.get(silence_id)
        except NotFoundError:
            return "is gone"
        if s.expired_at is not None:
            return f"expired early by {s.expired_by}"
        if s.ends_at <= now:
            return "ended"
        if s.starts_at > now:
            return "has not started"
        return "no longer applies"

    def _source_gone(self, source_id: int) -> str:
        try:
            s = self.store.get(source_id)
        except NotFoundError:
            return "is gone"
        if s.state == "closed":
            return "closed"
        if s.activity == "resolved":
            return "resolved"
        return "no longer inhibits"


__all__ = ["ACTOR", "MuteStage", "encode"]
