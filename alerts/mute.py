"""The mute stage of the risk queue: silences and inhibition applied to alerts.

``MuteStage.apply`` takes the place of ``AlertStore.apply`` in the pipeline: it applies the rule
signals (open, dedup, resolve) in the caller's transaction and, once that commits, mutes or
unmutes the alerts they touched. ``MuteStage.tick`` runs on the wall clock and catches what no
signal announces: a silence that starts, ends by itself or is created or expired through the
API, an inhibiting alert that a person closes, and a decision a failure or a race left undone.

A muted alert is not dropped (全程留痕): it stays in the queue with ``suppressed`` set to
``{"silence": id}`` or ``{"inhibited_by": alert id}`` (a silence wins when both apply: it is a
person's explicit decision), the default queue view hides it, and escalation skips it. Every
change is an alert event (``silenced``, ``unsilenced``, ``inhibited``, ``uninhibited``) with its
audit entry, in the transaction of the change. Closed alerts are left as they were closed.

The decision is pure (:func:`mute_reason`: labels and rows in, a decision out) and runs on
reads of their own, never inside a write transaction: people's patterns (RE2, linear in the
value, see :mod:`alerts.matchers`) never run while the queue's write lock is held. This module
gathers candidates through the store, narrowed by the matchers' equality labels
(:class:`~alerts.store.OpenAlerts`), decides, then records the outcome through the store in one
transaction that checks each alert is still as it was read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.inhibit import Inhibition, compile_rules, inhibitor_of, is_active_source
from alerts.matchers import ALERT_FIELDS, Matcher, alert_labels, matches
from alerts.model import Alert
from alerts.silences import Silence, SilenceStore
from alerts.store import AlertStore, OpenAlerts
from farsight.errors import FarsightError, NotFoundError
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
    labels."""

    by_rule: dict[int, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """A mute to record: the alert as read, its ``suppressed`` then, and what it should be."""

    alert: Alert
    have: dict[str, Any]
    want: dict[str, Any]


def mute_reason(
    labels: Mapping[str, str],
    have: Mapping[str, Any],
    silences: Sequence[Silence],
    rules: Sequence[Inhibition],
    alert_id: int,
    sources: Iterable[tuple[int, Mapping[str, str]]],
) -> dict[str, Any]:
    """What an alert's ``suppressed`` should be. Pure: labels and rows in, a decision out.

    Parameters
    ----------
    labels : Mapping
        The alert's labels (:func:`~alerts.matchers.alert_labels`).
    have : Mapping
        Its ``suppressed`` now: a silence it has and still matches is kept (no churn).
    silences : sequence of Silence
        The silences active now; a silence wins over an inhibition (a person's decision).
    rules : sequence of Inhibition
        Compiled inhibit rules.
    alert_id : int
        The alert's id (an alert never inhibits itself).
    sources : iterable of (int, Mapping)
        Active alerts that may inhibit it, as ``(id, labels)``.

    Returns
    -------
    dict
        ``{"silence": id}``, ``{"inhibited_by": alert id}`` or ``{}``.
    """
    hits = [s for s in silences if matches(s.matchers, labels)]
    if hits:
        current = [s for s in hits if s.id == have.get("silence")]
        # Keep the silence it has (no churn); else the one that lasts longest.
        chosen = current[0] if current else max(hits, key=lambda s: (s.ends_at, -s.id))
        return {"silence": chosen.id}
    if rules:
        src = inhibitor_of(rules, alert_id, labels, sources)
        if src is not None:
            return {"inhibited_by": src}
    return {}


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
        """Apply rule signals (as :meth:`AlertStore.apply`), then, once they are committed, mute
        or unmute the alerts they changed and the alerts a changed source inhibits or inhibited.

        Returns the changed alerts, then the others whose mute changed, as they are now. Called
        inside a caller's transaction (ingest's batch), the mutes are decided when that
        transaction commits, and it returns the changed alerts as applied.
        """
        db = self.store.db
        done: list[list[Alert]] = []
        with db.transaction():
            changed = self.store.apply(signals)
            if not changed:
                return []
            db.after_commit(lambda: done.append(self._after_apply(changed)))
        return done[0] if done else changed

    def tick(self, now: datetime | None = None) -> list[Alert]:
        """Re-evaluate what time changes: silences that started, ended or were created or expired
        since, and sources that resolved or were closed. Returns the alerts whose mute changed."""
        now = now or self.store.clock.now()
        silences = self.silences.active(now)
        candidates = set(self.store.open_ids(OpenAlerts(muted=True)))
        for s in silences:
            pins = _pins(s.matchers)
            if pins is None:
                continue
            sel = OpenAlerts(pins=tuple(pins.items()), suppressed=NOT_MUTED)
            candidates.update(
                aid for aid, labels in self._labelled(sel) if matches(s.matchers, labels)
            )
        for rule in self.rules:
            pins = _pins(rule.source)
            if pins is None:
                continue
            sel = OpenAlerts(pins=tuple(pins.items()), firing=True)
            for sid, labels in self._labelled(sel):
                candidates.update(self._targets_of(sid, labels, unmuted_only=True))
        moved = self._settle(candidates, now, silences=silences)
        return self.store.get_many(moved)

    def evaluate(self, alert_ids: Iterable[int], now: datetime | None = None) -> list[Alert]:
        """Re-evaluate these alerts now; returns those whose mute changed."""
        now = now or self.store.clock.now()
        return self.store.get_many(self._settle(set(alert_ids), now))

    def _after_apply(self, changed: list[Alert]) -> list[Alert]:
        """The mute half of :meth:`apply`, after the signals' transaction committed."""
        try:
            now = self.store.clock.now()
            candidates = {a.id for a in changed if a.state != "closed"}
            for a in changed:
                inhibited = OpenAlerts(suppressed=encode({"inhibited_by": a.id}))
                candidates.update(self.store.open_ids(inhibited))
                if is_active_source(a):
                    candidates.update(self._targets_of(a.id, alert_labels(a), unmuted_only=False))
            # The alerts just applied were read in their transaction: not read again, unless
            # their mute changed below.
            known = {a.id: a for a in changed}
            moved = self._settle(candidates, now, known)
        except FarsightError:
            # Committed alerts stay unmuted until the next tick decides them again.
            log.exception("mute not decided; the next tick retries", extra=kv(alerts=len(changed)))
            return changed
        fresh = {a.id: a for a in self.store.get_many(moved)} if moved else {}
        ids = [a.id for a in changed] + [i for i in moved if i not in known]
        return [fresh[i] if i in fresh else known[i] for i in ids if i in fresh or i in known]

    # -- candidates (reads of their own; never inside a write transaction) ----------------------

    def _labelled(self, sel: OpenAlerts) -> list[tuple[int, dict[str, str]]]:
        rows = self.store.open_rows(sel, ("labels", *ALERT_FIELDS))
        return [(int(r["id"]), _row_labels(r)) for r in rows]

    def _targets_of(
        self, source_id: int, labels: Mapping[str, str], *, unmuted_only: bool
    ) -> set[int]:
        """Not-closed alerts that the source with ``labels`` may inhibit under some rule."""
        out: set[int] = set()
        for rule in self.rules:
            if not rule.is_source(labels):
                continue
            pins = _pins_with_equal(rule.target, rule.equal, dict(labels))
            if pins is None:
                continue
            sel = OpenAlerts(
                pins=tuple(pins.items()),
                exclude=source_id,
                suppressed=NOT_MUTED if unmuted_only else None,
            )
            key = rule.key(labels)
            out.update(
                aid for aid, t in self._labelled(sel) if rule.is_target(t) and rule.key(t) == key
            )
        return out

    def _sources_for(
        self, labels: Mapping[str, str], cache: _SourceCache
    ) -> list[tuple[int, dict[str, str]]]:
        """Active alerts (id, labels) that may inhibit an alert with ``labels`` under some rule
        (checked by the caller).

        A rule whose source matchers pin columns (the usual ``rule_id: site-offline``) reads
        its active sources once per settle and filters them here by the ``equal`` labels; a
        rule that pins nothing asks per target, narrowed by the target's ``equal`` values.
        """
        found: dict[int, dict[str, str]] = {}
        for i, rule in enumerate(self.rules):
            if not rule.is_target(labels):
                continue
            source_pins = _pins(rule.source)
            if source_pins is None:
                continue
            if source_pins:
                if i not in cache.by_rule:
                    sel = OpenAlerts(pins=tuple(source_pins.items()), firing=True)
                    cache.by_rule[i] = self._labelled(sel)
                equal = [k for k in rule.equal if k in ALERT_FIELDS]
                rows = [
                    (sid, s) for sid, s in cache.by_rule[i] if all(s[k] == labels[k] for k in equal)
                ]
            else:
                pins = _pins_with_equal(rule.source, rule.equal, dict(labels))
                if pins is None:
                    continue
                rows = self._labelled(OpenAlerts(pins=tuple(pins.items()), firing=True))
            found.update(rows)
        return list(found.items())

    # -- decision and record ----------------------------------------------------------------

    def _settle(
        self,
        ids: set[int],
        now: datetime,
        known: Mapping[int, Alert] | None = None,
        *,
        silences: list[Silence] | None = None,
    ) -> list[int]:
        """Bring each alert's ``suppressed`` to what the silences and rules say; returns the ids
        changed. ``known``: alerts already read (not read again).

        Decided first, on reads of their own (the patterns run on no lock), then recorded in one
        transaction that takes each alert's row lock and records only where the alert is as it
        was read: changed meanwhile (muted by another worker, closed, its severity raised), it
        is left to the next evaluation, so two workers never record one change twice.
        """
        if not ids:
            return []
        if silences is None:
            silences = self.silences.active(now)
        known = known or {}
        alerts = {i: known[i] for i in ids if i in known}
        alerts.update((a.id, a) for a in self.store.get_many(sorted(ids - alerts.keys()), now))
        cache = _SourceCache()
        decisions: list[Decision] = []
        for aid in sorted(alerts):
            alert = alerts[aid]
            if alert.state == "closed":
                continue
            labels = alert_labels(alert)
            have = dict(alert.suppressed or {})
            sources = self._sources_for(labels, cache) if self.rules else []
            want = mute_reason(labels, have, silences, self.rules, aid, sources)
            if want != have:
                decisions.append(Decision(alert, have, want))
        if not decisions:
            return []
        moved: list[int] = []
        with self.store.db.transaction() as c:
            for d in decisions:
                row = self.store.mute_row_in(c, d.alert.id)
                if (
                    row is None
                    or row["state"] == "closed"
                    or row["severity"] != d.alert.severity
                    or json.loads(row["suppressed"]) != d.have
                ):
                    continue
                self._record(d.alert, d.have, d.want, now, silences)
                moved.append(d.alert.id)
        if moved:
            log.info("mute changed", extra=kv(alerts=len(moved)))
        return moved

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


__all__ = ["ACTOR", "Decision", "MuteStage", "encode", "mute_reason"]
