"""The risk queue: alerts, their history, and the pipeline step that applies rule signals.

One store for both backends (SQLite embedded, PostgreSQL in production): the SQL is the
portable subset of :mod:`farsight.db`; only text search is dialect code. The tables come with
the hub schema (``farsight/migrations``; files of older versions are migrated there).
Every change and its history entry, its audit entry and whatever the listeners add (the
upstream outbox) commit in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from alerts.audit import AuditLog
from alerts.audit_replay import AFTER, EVENT_ID, RESERVED, after_snapshot
from alerts.audit_store import open_audit_log
from alerts.model import STATES, Alert, AlertEvent, check_action
from alerts.risk import explain, sql_order
from alerts.stages import EventListener
from farsight.clock import Clock, SystemClock, from_epoch_ms, to_epoch_ms
from farsight.db import Connection, Database
from farsight.errors import CursorError, NotFoundError, TransitionError
from farsight.migrate import ensure_schema
from farsight.settings import RiskSettings
from farsight.types import SEVERITIES, AlertSignal

TEXT_COLUMNS = ("summary", "site", "rule_id", "device", "entity_id")
"""What text search (``AlertFilter.text``) looks in: the summary as the alert was raised (on
SQLite; the current one on PostgreSQL), site, rule, device and operator credit code."""

_TEXT_CONCAT = " || ' ' || ".join(TEXT_COLUMNS)

_FTS_COLUMNS = tuple(f"x_{c}" for c in TEXT_COLUMNS) + ("x_department",)
"""The SQLite index's own column names (distinct from the table's, so a join needs no
qualifiers), and the department, which a search pre-filters on inside the index."""

TEXT_COUNT_MAX = 1_000
"""A text search counts its matches up to this many ("1,000+"): counting every alert that
mentions a city over years of history would cost many times the page itself."""

COLUMNS = (
    "id",
    "fingerprint",
    "rule_id",
    "site",
    "device",
    "metric",
    "department",
    "entity_id",
    "item_code",
    "severity",
    "summary",
    "activity",
    "state",
    "value",
    "threshold",
    "starts_at",
    "last_seen",
    "resolved_at",
    "count",
    "created",
    "updated",
    "labels",
    "previous_id",
    "handling",
    "credit_grade",
    "entity_repeats",
    "evidence",
    "evidence_count",
    "suppressed",
    "escalation",
    "due_at",
)


def _rank_of(expr: str) -> str:
    """SQL ranking a severity expression: critical 0, major 1, warning 2, anything else 3."""
    return (
        f"CASE {expr} WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END"
    )


_SEVERITY_RANK = _rank_of("severity")

SORTS: dict[str, tuple[tuple[str, str], ...]] = {
    "risk": (("", "DESC"), ("id", "DESC")),  # "" is the score: see alerts.risk.sql_order
    "severity": ((_SEVERITY_RANK, "ASC"), ("last_seen", "DESC"), ("id", "DESC")),
    # Raise order: ids are given as alerts are raised (created, on one clock, follows them).
    "newest": (("id", "DESC"),),
    "oldest": (("id", "ASC"),),
}
"""Orders of the queue: (SQL expression, direction) keys, the id last so every order is total
(which keyset pagination needs)."""

log = logging.getLogger("farsight.alerts")

"""Called inside the transaction of every alert event with (connection, alert after the
change, event); what it writes commits or rolls back with the change (the outbox does this)."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filters for listing alerts; ``None`` means any."""

    state: tuple[str, ...] | None = None
    activity: str | None = None
    department: str | None = None
    site: str | None = None
    severity: str | None = None
    rule_id: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    """Raised at or after (``created``)."""
    until: datetime | None = None
    """Raised before."""
    text: str | None = None
    """Case-insensitive substring of the summary, site, rule, device or entity code."""
    suppressed: bool | None = None
    """True: only silenced or inhibited alerts; False: only those not muted; None: both."""


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of the queue; ``next_cursor`` is ``None`` on the last page."""

    items: list[Alert]
    total: int
    next_cursor: str | None
    total_exact: bool = True
    """False when ``total`` is a lower bound: a text search counts up to :data:`TEXT_COUNT_MAX`."""


def _row(r: Any, risk: dict[str, Any] | None = None) -> Alert:
    return Alert(
        id=r["id"],
        fingerprint=r["fingerprint"],
        rule_id=r["rule_id"],
        site=r["site"],
        device=r["device"],
        metric=r["metric"],
        department=r["department"],
        entity_id=r["entity_id"],
        item_code=r["item_code"],
        severity=r["severity"],
        summary=r["summary"],
        activity=r["activity"],
        state=r["state"],
        value=r["value"],
        threshold=r["threshold"],
        starts_at=from_epoch_ms(r["starts_at"]),
        last_seen=from_epoch_ms(r["last_seen"]),
        resolved_at=from_epoch_ms(r["resolved_at"]) if r["resolved_at"] is not None else None,
        count=r["count"],
        created=from_epoch_ms(r["created"]),
        updated=from_epoch_ms(r["updated"]),
        labels=json.loads(r["labels"]),
        previous_id=r["previous_id"],
        handling=json.loads(r["handling"]),
        credit_grade=r["credit_grade"],
        entity_repeats=r["entity_repeats"],
        evidence=tuple(json.loads(r["evidence"])),
        suppressed=json.loads(r["suppressed"]),
        escalation=r["escalation"],
        due_at=from_epoch_ms(r["due_at"]) if r["due_at"] is not None else None,
        risk=risk,
    )


def _encode_cursor(doc: dict[str, Any]) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def _decode_cursor(cursor: str, sort: str) -> dict[str, Any]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError(
            "malformed cursor; use the next_cursor of the previous page as given"
        ) from None
    if (
        not isinstance(doc, dict)
        or doc.get("s") != sort
        or not isinstance(doc.get("k"), list)
        or not isinstance(doc.get("n"), int)
    ):
        raise CursorError(
            f"the cursor belongs to another listing; it cannot continue sort={sort!r}"
        )
    if len(doc["k"]) != len(SORTS[sort]) or not all(
        isinstance(v, (int, float, str)) for v in doc["k"]
    ):
        raise CursorError("malformed cursor; use the next_cursor of the previous page as given")
    return doc


@dataclass(frozen=True, slots=True)
class OpenAlerts:
    """Which not-closed alerts a pipeline stage asks for.

    ``pins`` are alert columns equal to values (the equality labels of matchers), ``firing``
    keeps firing alerts only, ``suppressed`` the exact ``suppressed`` text (``"{}"``: not
    muted), ``muted`` any muted alert, ``exclude`` leaves one alert out.
    """

    pins: tuple[tuple[str, str], ...] = ()
    firing: bool = False
    suppressed: str | None = None
    muted: bool = False
    exclude: int | None = None

    def sql(self) -> tuple[str, list[Any]]:
        clauses: list[str] = ["state != 'closed'"]
        params: list[Any] = []
        for col, value in self.pins:
            if col not in COLUMNS:
                raise ValueError(f"unknown alert column {col!r}")
            clauses.append(f"{col} = ?")
            params.append(value)
        if self.firing:
            clauses.append("activity = 'firing'")
        if self.muted:
            # The literal lets the partial index on muted alerts serve (a parameter would not).
            clauses.append("suppressed != '{}'")
        if self.suppressed is not None:
            if self.suppressed != "{}":
                clauses.append("suppressed != '{}'")
            clauses.append("suppressed = ?")
            params.append(self.suppressed)
        if self.exclude is not None:
            clauses.append("id != ?")
            params.append(self.exclude)
        return " AND ".join(clauses), params


class AlertStore:
    """Alerts and their history on one :class:`~farsight.db.Database` (SQLite or PostgreSQL).

    Give a path or URL to own a connection, or a ``Database`` shared with other stores to
    commit with them in one transaction.
    """

    def __init__(
        self,
        target: Path | str | Database,
        clock: Clock | None = None,
        risk: RiskSettings | None = None,
    ) -> None:
        self.db = ensure_schema(Database.open(target))
        self.risk_params = risk or RiskSettings()
        self.text_index = self._has_text_index()
        # Every alert event is also appended to the hash-chained audit log, in the same
        # transaction, so a change and its trace commit (or roll back) together.
        self.audit: AuditLog = open_audit_log(self.db)
        self.clock = clock or SystemClock()
        self.listeners: list[EventListener] = []

    def _has_text_index(self) -> bool:
        """Whether the database has the text-search index; the migration leaves it out, with a
        warning, where it cannot be made (then text search scans, correct but slow)."""
        if self.db.dialect == "postgres":
            sql = "SELECT 1 FROM pg_indexes WHERE indexname = 'alerts_text_trgm'"
        else:
            sql = "SELECT 1 FROM sqlite_master WHERE name = 'alerts_text'"
        return bool(self.db.query(sql))

    def index_text(self, limit: int = 50_000) -> int:
        """Add alerts raised since the last call to the SQLite text index, up to ``limit``;
        returns how many. Cheap when there is nothing new; PostgreSQL keeps its index itself."""
        if self.db.dialect != "sqlite" or not self.text_index:
            return 0
        cols = ", ".join(TEXT_COLUMNS + ("department",))
        with self.db.transaction() as c:
            mark = int(
                c.execute("SELECT indexed_to FROM alerts_text_mark WHERE one = 1").fetchone()[0]
            )
            top = c.execute(
                "SELECT max(id) FROM (SELECT id FROM alerts WHERE id > ? ORDER BY id LIMIT ?)",
                (mark, limit),
            ).fetchone()[0]
            if top is None:
                return 0
            n = c.execute(
                f"INSERT INTO alerts_text (rowid, {', '.join(_FTS_COLUMNS)}) SELECT id, {cols}"
                " FROM alerts WHERE id > ? AND id <= ?",
                (mark, top),
            ).rowcount
            c.execute("UPDATE alerts_text_mark SET indexed_to = ? WHERE one = 1", (top,))
        return int(n)

    # -- the pipeline step: signals from the rule engine -----------------------------------

    def apply(self, signals: Iterable[AlertSignal]) -> builtins.list[Alert]:
        """Apply rule signals: open, update (dedup) or resolve alerts. Returns the changed
        alerts."""
        changed: list[int] = []
        for s in signals:
            aid = self._apply_one(s)
            if aid is not None and aid not in changed:
                changed.append(aid)
        return self.get_many(changed)

    def _apply_one(self, s: AlertSignal) -> int | None:
        now = to_epoch_ms(self.clock.now())
        ts = to_epoch_ms(s.ts)
        with self.db.transaction() as c:
            if s.status == "firing":
                # Most signals repeat an alert that is firing: one statement (one round trip to
                # PostgreSQL) does the whole dedup.
                # A repeat may come with a higher severity (a satellite change confirmed on a
                # revisit): the alert takes it, never a lower one.
                hit = c.execute(
                    f"UPDATE alerts SET last_seen = {self.db.greatest}(last_seen, ?), value = ?,"
                    " summary = ?, updated = ?,"
                    f" severity = CASE WHEN {_rank_of('CAST(? AS TEXT)')} < {_SEVERITY_RANK} THEN ?"
                    " ELSE severity END"
                    " WHERE fingerprint = ? AND state != 'closed' AND activity = 'firing'"
                    " RETURNING id",
                    (ts, s.value, s.summary, now, s.severity, s.severity, s.fingerprint),
                ).fetchone()
                if hit is not None:
                    return int(hit[0])
            row = c.execute(
                "SELECT id, activity FROM alerts WHERE fingerprint = ? AND state != 'closed'",
                (s.fingerprint,),
            ).fetchone()
            if s.status == "resolved":
                if row is None or row["activity"] == "resolved":
                    return None
                c.execute(
                    "UPDATE alerts SET activity = 'resolved', resolved_at = ?, last_seen ="
                    f" {self.db.greatest}(last_seen, ?), updated = ? WHERE id = ?",
                    (ts, ts, now, row["id"]),
                )
                self._event(
                    c,
                    row["id"],
                    now,
                    "rules",
                    "resolved",
                    "",
                    {"ts": s.ts.isoformat(), "value": s.value},
                )
                return int(row["id"])
            if row is not None:  # resolved, and firing again
                c.execute(
                    "UPDATE alerts SET activity = 'firing', resolved_at = NULL, count = count + 1,"
                    f" last_seen = {self.db.greatest}(last_seen, ?),"
                    " value = ?, summary = ?, updated = ? WHERE id = ?",
                    (ts, s.value, s.summary, now, row["id"]),
                )
                self._event(
                    c,
                    row["id"],
                    now,
                    "rules",
                    "refired",
                    "",
                    {"ts": s.ts.isoformat(), "value": s.value},
                )
                return int(row["id"])
            prev, repeats = c.execute(
                "SELECT (SELECT max(id) FROM alerts WHERE fingerprint = ?), (SELECT count(*) FROM"
                " alerts WHERE entity_id = ?)",
                (s.fingerprint, s.entity_id),
            ).fetchone()
            inserted = c.execute(
                "INSERT INTO alerts (fingerprint, rule_id, site, device, metric, department,"
                " entity_id, item_code, severity,"
                " summary, activity, state, value, threshold, starts_at, last_seen, count, created,"
                " updated, labels, previous_id,"
                " credit_grade, entity_repeats, evidence, evidence_count)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'firing', 'new', ?, ?, ?, ?, 1, ?, ?, ?,"
                " ?, ?, ?, ?, ?) RETURNING *",
                (
                    s.fingerprint,
                    s.rule_id,
                    s.site,
                    s.device,
                    s.metric,
                    s.department,
                    s.entity_id,
                    s.item_code,
                    s.severity,
                    s.summary,
                    s.value,
                    s.threshold,
                    ts,
                    ts,
                    now,
                    now,
                    json.dumps(dict(s.labels)),
                    prev,
                    s.credit_grade,
                    int(repeats) if s.entity_id else 0,
                    json.dumps(list(s.evidence)),
                    len(s.evidence),
                ),
            ).fetchone()
            aid = int(inserted["id"])
            self._event(
                c,
                aid,
                now,
                "rules",
                "opened",
                s.summary,
                {"ts": s.ts.isoformat(), "value": s.value, "threshold": s.threshold},
                row=inserted,
            )
            return aid

    def _event(
        self,
        c: Connection,
        alert_id: int,
        at: int,
        actor: str,
        action: str,
        note: str,
        data: dict,
        row: Any = None,
    ) -> AlertEvent:
        """Record one history entry, its audit entry and the listeners' writes, in ``c``'s
        transaction. ``row`` is the alert's row when the caller has it as it now is.

        The audit entry carries the event's id and the row's checked columns after the change
        (:func:`alerts.audit_replay.after_snapshot`), so ``farsight audit verify`` can tell a
        direct edit of ``alerts`` or ``alert_events`` from what happened.
        """
        clash = [k for k in RESERVED if k in data]
        if clash:
            raise ValueError(f"alert event data may not use the audit's key {clash[0]!r}")
        text = json.dumps(data, ensure_ascii=False)
        eid = int(
            c.execute(
                "INSERT INTO alert_events (alert_id, at, actor, action, note, data) VALUES (?, ?,"
                " ?, ?, ?, ?) RETURNING id",
                (alert_id, at, actor, action, note, text),
            ).fetchone()[0]
        )
        if row is None:
            # Under the row lock: a concurrent change of this alert commits before this read or
            # after this entry, so the last entry of an alert always holds its latest row.
            row = c.execute(
                f"SELECT * FROM alerts WHERE id = ?{self._lock_clause()}", (alert_id,)
            ).fetchone()
        audited = {
            "note": note,
            **data,
            EVENT_ID: eid,
            AFTER: after_snapshot(row, opened=action == "opened"),
        }
        self.audit.append_in(c, actor, action, f"alert:{alert_id}", audited, at=from_epoch_ms(at))
        event = AlertEvent(
            id=eid,
            alert_id=alert_id,
            at=from_epoch_ms(at),
            actor=actor,
            action=action,
            note=note,
            data=data,
        )
        if self.listeners:
            alert = self._alert(row)
            for listener in self.listeners:
                listener(c, alert, event)
        return event

    def record(
        self,
        alert_id: int,
        actor: str,
        action: str,
        note: str = "",
        data: Mapping[str, Any] | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> Alert:
        """Record an event on an alert that is not a handling step (escalated, silenced, ...),
        optionally updating columns in the same transaction. For the alert pipeline's stages."""
        now = to_epoch_ms(self.clock.now())
        with self.db.transaction() as c:
            if c.execute("SELECT id FROM alerts WHERE id = ?", (alert_id,)).fetchone() is None:
                raise NotFoundError(f"no alert {alert_id}")
            if changes:
                bad = [k for k in changes if k not in COLUMNS or k == "id"]
                if bad:
                    raise ValueError(f"unknown alert column {bad[0]!r}")
                sets = ", ".join(f"{k} = ?" for k in changes)
                c.execute(
                    f"UPDATE alerts SET {sets}, updated = ? WHERE id = ?",
                    (*changes.values(), now, alert_id),
                )
            self._event(c, alert_id, now, actor, action, note, dict(data or {}))
        return self.get(alert_id)

    # -- row access for the pipeline's stages (inside the caller's transaction ``c``) -----------

    def _lock_clause(self) -> str:
        # FOR UPDATE serialises two workers deciding one alert on PostgreSQL; SQLite's BEGIN
        # IMMEDIATE already does, and does not know the clause.
        return " FOR UPDATE" if self.db.dialect == "postgres" else ""

    def lock_in(self, c: Connection, alert_id: int) -> bool:
        """Take the alert's row lock until ``c`` commits; False when there is no such alert."""
        row = c.execute(f"SELECT id FROM alerts WHERE id = ?{self._lock_clause()}", (alert_id,))
        return row.fetchone() is not None

    def open_ids_in(self, c: Connection, sel: OpenAlerts) -> builtins.list[int]:
        """Ids of the not-closed alerts ``sel`` picks."""
        where, params = sel.sql()
        rows = c.execute(f"SELECT id FROM alerts WHERE {where}", tuple(params)).fetchall()
        return [int(r[0]) for r in rows]

    def open_rows_in(
        self, c: Connection, sel: OpenAlerts, columns: Sequence[str]
    ) -> builtins.list[Any]:
        """``id`` and ``columns`` of the not-closed alerts ``sel`` picks."""
        bad = [k for k in columns if k not in COLUMNS]
        if bad:
            raise ValueError(f"unknown alert column {bad[0]!r}")
        where, params = sel.sql()
        cols = ", ".join(dict.fromkeys(("id", *columns)))
        return list(c.execute(f"SELECT {cols} FROM alerts WHERE {where}", tuple(params)).fetchall())

    def open_ids(self, sel: OpenAlerts) -> builtins.list[int]:
        """:meth:`open_ids_in` as a read of its own (the mute stage decides outside any write
        transaction)."""
        where, params = sel.sql()
        return [int(r[0]) for r in self.db.query(f"SELECT id FROM alerts WHERE {where}", params)]

    def open_rows(self, sel: OpenAlerts, columns: Sequence[str]) -> builtins.list[Any]:
        """:meth:`open_rows_in` as a read of its own."""
        bad = [k for k in columns if k not in COLUMNS]
        if bad:
            raise ValueError(f"unknown alert column {bad[0]!r}")
        where, params = sel.sql()
        cols = ", ".join(dict.fromkeys(("id", *columns)))
        return self.db.query(f"SELECT {cols} FROM alerts WHERE {where}", params)

    def mute_row_in(self, c: Connection, alert_id: int) -> Any | None:
        """``state, severity, suppressed`` of the alert, locked until ``c`` commits (what a mute
        decision made outside the transaction must find unchanged); None when there is none."""
        return c.execute(
            "SELECT state, severity, suppressed FROM alerts WHERE id = ?" + self._lock_clause(),
            (alert_id,),
        ).fetchone()

    def heads_in(self, c: Connection, ids: Sequence[int]) -> dict[int, Any]:
        """``id, entity_id, department, state`` of these alerts, by id (missing ids absent)."""
        marks = ",".join("?" * len(ids))
        rows = c.execute(
            f"SELECT id, entity_id, department, state FROM alerts WHERE id IN ({marks})",
            tuple(ids),
        ).fetchall()
        return {int(r["id"]): r for r in rows}

    def handling_in(self, c: Connection, alert_id: int) -> dict[str, Any]:
        """The alert's ``handling`` record as it is in ``c``'s transaction."""
        row = c.execute("SELECT handling FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}")
        return dict(json.loads(row["handling"]))

    def set_due_in(self, c: Connection, alert_id: int, due_ms: int | None) -> None:
        """Set (or clear) the deadline of the alert's current handling step."""
        c.execute("UPDATE alerts SET due_at = ? WHERE id = ?", (due_ms, alert_id))

    def due_ids(self, now_ms: int) -> builtins.list[int]:
        """Not-closed, not-muted alerts whose step is due at or before ``now_ms``, oldest first."""
        rows = self.db.query(
            "SELECT id FROM alerts WHERE due_at IS NOT NULL AND due_at <= ? AND state != 'closed'"
            " AND suppressed = '{}' ORDER BY due_at, id",
            (now_ms,),
        )
        return [int(r["id"]) for r in rows]

    def escalation_row_in(self, c: Connection, alert_id: int) -> Any | None:
        """``state, severity, escalation, due_at, suppressed`` of the alert, locked until commit."""
        return c.execute(
            "SELECT state, severity, escalation, due_at, suppressed FROM alerts WHERE id = ?"
            + self._lock_clause(),
            (alert_id,),
        ).fetchone()

    def last_event_at_in(self, c: Connection, alert_id: int, actions: Sequence[str]) -> int | None:
        """Epoch ms of the alert's last event among ``actions``; None when it has none."""
        marks = ",".join("?" * len(actions))
        row = c.execute(
            f"SELECT max(at) FROM alert_events WHERE alert_id = ? AND action IN ({marks})",
            (alert_id, *actions),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- people's actions ----------------------------------------------------------------

    def transition(
        self,
        alert_id: int,
        action: str,
        actor: str,
        note: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> Alert:
        """Apply a handling action (ack, dispatch, verify, close, reopen, comment) by ``actor``.

        Raises
        ------
        NotFoundError
            No alert has this id.
        TransitionError
            The action is not allowed from the alert's state, the comment or a required field
            is missing, or reopening would make a second open alert of one fingerprint;
            nothing is changed.
        """
        now = to_epoch_ms(self.clock.now())
        with self.db.transaction() as c:
            self.transition_in(c, alert_id, action, actor, note, data, now)
        return self.get(alert_id)

    def transition_in(
        self,
        c: Connection,
        alert_id: int,
        action: str,
        actor: str,
        note: str,
        data: Mapping[str, Any] | None,
        now: int,
    ) -> str:
        """:meth:`transition` inside the caller's transaction (a joint visit dispatches several
        alerts as one unit); returns the new state."""
        row = c.execute(
            "SELECT state, fingerprint, handling, evidence FROM alerts WHERE id = ?"
            + self._lock_clause(),
            (alert_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}")
        target, fields = check_action(action, row["state"], note, data)
        if action == "reopen":
            other = c.execute(
                "SELECT id FROM alerts WHERE fingerprint = ? AND state != 'closed'",
                (row["fingerprint"],),
            ).fetchone()
            if other is not None:
                raise TransitionError(
                    f"cannot reopen alert {alert_id}: alert {other['id']} of the same series is"
                    " open"
                )
        handling = json.loads(row["handling"])
        handling.update(fields)
        evidence = json.loads(row["evidence"])
        for h in (fields.get("verification") or {}).get("evidence", []):
            if h not in evidence:
                evidence.append(h)
        c.execute(
            "UPDATE alerts SET state = ?, handling = ?, evidence = ?, evidence_count = ?, updated"
            " = ? WHERE id = ?",
            (
                target,
                json.dumps(handling, ensure_ascii=False),
                json.dumps(evidence),
                len(evidence),
                now,
                alert_id,
            ),
        )
        self._event(
            c, alert_id, now, actor, action, note, {"from": row["state"], "to": target, **fields}
        )
        return target

    # -- reads ----------------------------------------------------------------------------

    def get(self, alert_id: int) -> Alert:
        rows = self.db.query("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        if not rows:
            raise NotFoundError(f"no alert {alert_id}")
        return self._alert(rows[0])

    def references_evidence(self, sha: str, department: str | None = None) -> bool:
        """Whether an alert (of ``department``, when given) lists evidence ``sha``.

        What a department may see of the evidence store: the files of its own alerts.
        """
        if not (len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            return False
        sql, args = (
            "SELECT 1 FROM alerts WHERE evidence_count > 0 AND evidence LIKE ?",
            [f'%"{sha}"%'],
        )
        if department is not None:
            sql, args = sql + " AND department = ?", args + [department]
        return bool(self.db.query(sql + " LIMIT 1", tuple(args)))

    def get_many(self, ids: list[int], now: datetime | None = None) -> builtins.list[Alert]:
        """The alerts with these ids, in this order (one query per 500, not one per alert),
        scored at ``now`` (default: the clock's)."""
        out: dict[int, Alert] = {}
        now = now or self.clock.now()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for r in self.db.query(
                f"SELECT * FROM alerts WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk)
            ):
                out[int(r["id"])] = self._alert(r, now)
        return [out[i] for i in ids if i in out]

    def _alert(self, r: Any, now: datetime | None = None) -> Alert:
        # The score from the row's columns, then one construction (dataclasses.replace costs
        # as much again, on the dedup path's every event).
        score = explain(
            severity=r["severity"],
            credit_grade=r["credit_grade"],
            repeats=r["entity_repeats"],
            evidence=r["evidence_count"],
            created=from_epoch_ms(r["created"]),
            now=now or self.clock.now(),
            params=self.risk_params,
        )
        return _row(r, score.to_dict())

    def _where(self, f: AlertFilter) -> tuple[str, list[Any]]:
        where: list[str] = ["1=1"]
        params: list[Any] = []
        if f.state:
            bad = [s for s in f.state if s not in STATES]
            if bad:
                raise ValueError(f"unknown state {bad[0]!r}; known: {', '.join(STATES)}")
            where.append(f"state IN ({','.join('?' * len(f.state))})")
            params += list(f.state)
        if f.severity is not None and f.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {f.severity!r}; known: {', '.join(SEVERITIES)}")
        for col in ("activity", "department", "site", "severity", "rule_id", "entity_id"):
            v = getattr(f, col)
            if v is not None:
                where.append(f"{col} = ?")
                params.append(v)
        if f.since is not None:
            where.append("created >= ?")
            params.append(to_epoch_ms(f.since))
        if f.until is not None:
            where.append("created < ?")
            params.append(to_epoch_ms(f.until))
        if f.text:
            # LIKE with an escape so "%" and "_" in the search mean themselves.
            needle = (
                "%"
                + f.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            if self.db.dialect == "postgres":
                # The expression the trigram index is built on, so the planner can use it.
                where.append(f"lower({_TEXT_CONCAT}) LIKE ? ESCAPE '\\'")
                params.append(needle)
            elif self.text_index and len(f.text) >= 3:
                # Trigrams need three characters; a quoted phrase matches as a substring. The
                # few alerts not indexed yet (above the mark) are matched with LIKE.
                mark = "(SELECT indexed_to FROM alerts_text_mark WHERE one = 1)"
                like = " OR ".join(f"lower({c}) LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS)
                # One IN list (index hits, then the short tail by rowid range) keeps the plan a
                # rowid lookup; an OR of the two made SQLite scan.
                where.append(
                    f"id IN (SELECT rowid FROM alerts_text WHERE alerts_text MATCH ?"
                    f" UNION ALL SELECT id FROM alerts WHERE id > {mark} AND ({like}))"
                )
                params.append('"' + f.text.replace('"', '""') + '"')
                params += [needle] * len(TEXT_COLUMNS)
            else:
                where.append(
                    "(" + " OR ".join(f"lower({c}) LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS) + ")"
                )
                params += [needle] * len(TEXT_COLUMNS)
        if f.suppressed is not None:
            where.append("suppressed != '{}'" if f.suppressed else "suppressed = '{}'")
        return " AND ".join(where), params

    def list(
        self,
        f: AlertFilter = AlertFilter(),
        limit: int = 100,
        offset: int = 0,
        sort: str = "severity",
    ) -> tuple[list[Alert], int]:
        """A page of alerts matching ``f`` (by offset) and the total number that match."""
        page = self.page(f, limit=limit, sort=sort, offset=offset)
        return page.items, page.total

    def page(
        self,
        f: AlertFilter = AlertFilter(),
        *,
        limit: int = 100,
        sort: str = "risk",
        cursor: str | None = None,
        offset: int = 0,
        with_total: bool = True,
    ) -> AlertPage:
        """A page of the queue in ``sort`` order, continuing after ``cursor`` (keyset pagination:
        stable while alerts arrive, and as fast on page 1,000 as on page 1).

        The risk order depends on the time (alerts age); a cursor carries the time of its first
        page, so every page of one listing is scored at the same instant.

        Raises
        ------
        ValueError
            Unknown state, severity or sort; :class:`CursorError` for a bad cursor.
        """
        keys = SORTS.get(sort)
        if keys is None:
            raise ValueError(f"unknown sort {sort!r}; known: {', '.join(SORTS)}")
        doc = _decode_cursor(cursor, sort) if cursor else None
        now_ms = doc["n"] if doc else to_epoch_ms(self.clock.now())
        now = from_epoch_ms(now_ms)
        where, params = self._where(f)
        exprs: list[str] = []
        expr_args: list[list[Any]] = []
        for expr, _ in keys:
            if expr == "":
                e, a = sql_order(self.risk_params, now, self.db.greatest, self.db.least)
                exprs.append(e)
                expr_args.append(a)
            else:
                exprs.append(expr)
                expr_args.append([])
        if (
            self.db.dialect == "sqlite"
            and self.text_index
            and f.text
            and len(f.text) >= 3
            and sort in ("newest", "oldest")
            and not offset
        ):
            return self._text_page(
                f, limit=limit, sort=sort, doc=doc, now_ms=now_ms, with_total=with_total
            )
        total, exact = -1, True
        if with_total and f.text:
            total = int(
                self.db.query(
                    f"SELECT count(*) FROM (SELECT 1 FROM alerts WHERE {where} LIMIT ?) AS m",
                    (*params, TEXT_COUNT_MAX + 1),
                )[0][0]
            )
            if total > TEXT_COUNT_MAX:
                total, exact = TEXT_COUNT_MAX, False
        elif with_total:
            total = int(
                self.db.query(f"SELECT count(*) FROM alerts WHERE {where}", tuple(params))[0][0]
            )
        page_where, page_params = where, list(params)
        if doc is not None:
            # (k1 after v1) OR (k1 = v1 AND k2 after v2) OR ...
            ors, args = [], []
            for i, (_, direction) in enumerate(keys):
                op = "<" if direction == "DESC" else ">"
                parts, part_args = [], []
                for j in range(i):
                    parts.append(f"({exprs[j]}) = ?")
                    part_args += expr_args[j] + [doc["k"][j]]
                parts.append(f"({exprs[i]}) {op} ?")
                part_args += expr_args[i] + [doc["k"][i]]
                ors.append("(" + " AND ".join(parts) + ")")
                args += part_args
            page_where += " AND (" + " OR ".join(ors) + ")"
            page_params += args
        select_keys = ", ".join(f"({e}) AS k{i}" for i, e in enumerate(exprs))
        order = ", ".join(f"k{i} {d}" for i, (_, d) in enumerate(keys))
        sel_args = [a for args_ in expr_args for a in args_]
        # Two steps: the order over ids and sort keys only (the department queue's index covers
        # every column of the risk score, so SQLite never reads the table for the thousands of
        # rows it ranks), then the page's rows by id.
        ranked = self.db.query(
            f"SELECT id, {select_keys} FROM alerts WHERE {page_where} ORDER BY {order} LIMIT ?"
            " OFFSET ?",
            tuple(sel_args + page_params + [limit + 1, offset]),
        )
        more = len(ranked) > limit
        ranked = ranked[:limit]
        next_cursor = None
        if more and ranked:
            last = ranked[-1]
            next_cursor = _encode_cursor(
                {"s": sort, "n": now_ms, "k": [last[f"k{i}"] for i in range(len(keys))]}
            )
        return AlertPage(
            self.get_many([int(r["id"]) for r in ranked], now), total, next_cursor, exact
        )

    def _text_page(
        self,
        f: AlertFilter,
        *,
        limit: int,
        sort: str,
        doc: dict[str, Any] | None,
        now_ms: int,
        with_total: bool,
    ) -> AlertPage:
        """A text search in raise order on SQLite, driven by the trigram index: it walks the
        matches newest (or oldest) first and stops at the page's end, so a word found in a
        tenth of a year's alerts costs a page, not a sort of all of them. Alerts above the
        index's mark are matched by LIKE and merged in order."""
        from dataclasses import replace as _replace

        assert f.text is not None
        where, params = self._where(_replace(f, text=None))
        direction, op = ("DESC", "<") if sort == "newest" else ("ASC", ">")
        mark = "(SELECT indexed_to FROM alerts_text_mark WHERE one = 1)"
        needle = (
            "%" + f.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        like = " OR ".join(f"lower({c}) LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS)
        match = '"' + f.text.replace('"', '""') + '"'
        if f.department is not None:
            match = f'x_department : "{f.department.replace(chr(34), chr(34) * 2)}" AND ' + match

        # Each arm yields ids in order (the index by its rowid, the tail by primary key); the
        # compound ORDER BY merges them without sorting either.
        def arms(after: int | None) -> tuple[str, list[Any]]:
            tail, idx, extra = "", "", []
            if after is not None:
                tail, idx, extra = f" AND id {op} ?", f" AND alerts_text.rowid {op} ?", [after]
            sql = (
                f"SELECT id FROM alerts WHERE id > {mark} AND ({like}) AND {where}{tail}"
                " UNION ALL SELECT alerts_text.rowid FROM alerts_text JOIN alerts ON alerts.id ="
                " alerts_text.rowid"
                f" WHERE alerts_text MATCH ? AND alerts_text.rowid <= {mark} AND {where}{idx}"
            )
            return sql, [*([needle] * len(TEXT_COLUMNS)), *params, *extra, match, *params, *extra]

        sql, args = arms(int(doc["k"][0]) if doc is not None else None)
        ids = [
            int(r[0])
            for r in self.db.query(f"{sql} ORDER BY 1 {direction} LIMIT ?", (*args, limit + 1))
        ]
        total, exact = -1, True
        if with_total:
            sql, args = arms(None)
            total = int(
                self.db.query(
                    f"SELECT count(*) FROM ({sql} LIMIT ?) AS m", (*args, TEXT_COUNT_MAX + 1)
                )[0][0]
            )
            if total > TEXT_COUNT_MAX:
                total, exact = TEXT_COUNT_MAX, False
        more = len(ids) > limit
        ids = ids[:limit]
        next_cursor = (
            _encode_cursor({"s": sort, "n": now_ms, "k": [ids[-1]]}) if more and ids else None
        )
        return AlertPage(self.get_many(ids, from_epoch_ms(now_ms)), total, next_cursor, exact)

    def events(self, alert_id: int) -> builtins.list[AlertEvent]:
        """The alert's history, oldest first."""
        return [
            self._ev(r)
            for r in self.db.query(
                "SELECT * FROM alert_events WHERE alert_id = ? ORDER BY id", (alert_id,)
            )
        ]

    def timeline(self, alert_id: int) -> builtins.list[dict[str, Any]]:
        """The alert's history joined with its audit entries: each step with the hash that
        seals it in the audit chain (verify the chain with ``farsight audit verify``)."""
        events = self.events(alert_id)
        audit = self.audit.entries(subject=f"alert:{alert_id}", limit=100_000)
        by_event = {e.data[EVENT_ID]: e for e in audit if type(e.data.get(EVENT_ID)) is int}
        older = [e for e in audit if type(e.data.get(EVENT_ID)) is not int]
        out = []
        # Entries name their event; older ones were written pairwise with the events, in order.
        for i, e in enumerate(events):
            d = e.to_dict()
            entry = by_event.get(e.id)
            if entry is None and i < len(older) and older[i].action == e.action:
                entry = older[i]
            if entry is not None:
                d["audit"] = {"seq": entry.seq, "hash": entry.hash, "prev_hash": entry.prev_hash}
            out.append(d)
        return out

    def events_since(self, after_id: int, limit: int = 500) -> builtins.list[AlertEvent]:
        """History entries after ``after_id`` across all alerts (for the live stream)."""
        return [
            self._ev(r)
            for r in self.db.query(
                "SELECT * FROM alert_events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            )
        ]

    def max_event_id(self) -> int:
        return int(self.db.query("SELECT coalesce(max(id), 0) FROM alert_events")[0][0])

    def counts(self, department: str | None = None) -> dict[str, dict[str, int]]:
        """Not-closed alerts counted by severity and by state."""
        where = "state != 'closed'"
        params: tuple[str, ...] = ()
        if department:
            where += " AND department = ?"
            params = (department,)
        by_sev = {
            r[0]: int(r[1])
            for r in self.db.query(
                f"SELECT severity, count(*) FROM alerts WHERE {where} GROUP BY severity", params
            )
        }
        by_state = {
            r[0]: int(r[1])
            for r in self.db.query(
                f"SELECT state, count(*) FROM alerts WHERE {where} GROUP BY state", params
            )
        }
        return {"severity": by_sev, "state": by_state}

    @staticmethod
    def _ev(r: Any) -> AlertEvent:
        return AlertEvent(
            id=r["id"],
            alert_id=r["alert_id"],
            at=from_epoch_ms(r["at"]),
            actor=r["actor"],
            action=r["action"],
            note=r["note"],
            data=json.loads(r["data"]),
        )

    def close(self) -> None:
        self.db.close()
