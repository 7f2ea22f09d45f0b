"""The risk queue in SQLite: alerts, their history, and the pipeline step that applies signals."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace

from pathlib import Path
from typing import Any, Iterable, Mapping

from farsight.clock import Clock, SystemClock, from_epoch_ms, to_epoch_ms
from farsight.db import Database
from farsight.errors import NotFoundError, TransitionError
from farsight.types import SEVERITIES, AlertSignal
from alerts.audit import SqliteAuditLog
from alerts.risk import explain, sql_order
from farsight.settings import RiskSettings
from alerts.model import STATES, Alert, AlertEvent, check_action

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT    NOT NULL,
    rule_id      TEXT    NOT NULL,
    site         TEXT    NOT NULL,
    device       TEXT    NOT NULL,
    metric       TEXT    NOT NULL,
    department   TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    item_code    TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    summary      TEXT    NOT NULL,
    activity     TEXT    NOT NULL CHECK (activity IN ('firing', 'resolved')),
    state        TEXT    NOT NULL CHECK (state IN ('open', 'acknowledged', 'dispatched', 'verified', 'closed')),
    value        REAL,
    threshold    REAL,
    starts_at    INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    resolved_at  INTEGER,
    count        INTEGER NOT NULL DEFAULT 1,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    labels       TEXT    NOT NULL DEFAULT '{}',
    previous_id  INTEGER REFERENCES alerts (id),
    handling     TEXT    NOT NULL DEFAULT '{}',
    credit_grade TEXT    NOT NULL DEFAULT 'B',
    entity_repeats INTEGER NOT NULL DEFAULT 0,   -- earlier alerts of the same operator when opened
    evidence     TEXT    NOT NULL DEFAULT '[]'   -- sha256 hashes of evidence files
);
-- One alert per fingerprint until it is closed; a firing after closure opens a new one.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts (fingerprint) WHERE state != 'closed';
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, severity);
CREATE INDEX IF NOT EXISTS alerts_site ON alerts (site);

CREATE TABLE IF NOT EXISTS alert_events (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    note     TEXT    NOT NULL DEFAULT '',
    data     TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id);
"""

SCHEMA_VERSION = 3
"""1: the spine (open, acknowledged, closed). 2: dispatch and verification states, handling.
3: credit grade, repeat count and evidence for the risk score."""

ADDED_COLUMNS = (
    ("credit_grade", "credit_grade TEXT NOT NULL DEFAULT 'B'"),
    ("entity_repeats", "entity_repeats INTEGER NOT NULL DEFAULT 0"),
    ("evidence", "evidence TEXT NOT NULL DEFAULT '[]'"),
)
"""Columns later versions added; an older table gains them with ALTER TABLE ... ADD COLUMN."""

SORTS = {
    "severity": "CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END, last_seen DESC",
    "newest": "created DESC, id DESC",
    "oldest": "created ASC, id ASC",
    "risk": "",  # computed: see alerts.risk.sql_order
}


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filters for listing alerts; ``None`` means any."""

    state: tuple[str, ...] | None = None
    activity: str | None = None
    department: str | None = None
    site: str | None = None
    severity: str | None = None
    rule_id: str | None = None


def _row(r: sqlite3.Row) -> Alert:
    return Alert(
        id=r["id"], fingerprint=r["fingerprint"], rule_id=r["rule_id"], site=r["site"], device=r["device"],
        metric=r["metric"], department=r["department"], entity_id=r["entity_id"], item_code=r["item_code"],
        severity=r["severity"], summary=r["summary"], activity=r["activity"], state=r["state"],
        value=r["value"], threshold=r["threshold"], starts_at=from_epoch_ms(r["starts_at"]),
        last_seen=from_epoch_ms(r["last_seen"]),
        resolved_at=from_epoch_ms(r["resolved_at"]) if r["resolved_at"] is not None else None,
        count=r["count"], created=from_epoch_ms(r["created"]), updated=from_epoch_ms(r["updated"]),
        labels=json.loads(r["labels"]), previous_id=r["previous_id"], handling=json.loads(r["handling"]),
        credit_grade=r["credit_grade"], entity_repeats=r["entity_repeats"], evidence=tuple(json.loads(r["evidence"])),
    )


class SqliteAlertStore:
    """Alerts and their history in SQLite; every change is one transaction with its event."""

    def __init__(self, path: "Path | str | Database", clock: Clock | None = None, risk: RiskSettings | None = None) -> None:
        self.db = Database.of(path)
        self.risk_params = risk or RiskSettings()
        self._migrate()
        if self.db.query("PRAGMA table_info(alerts)"):
            self._add_columns()
        self.db.executescript(SCHEMA)
        self.db.executescript(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Every alert event is also appended to the hash-chained audit log, in the same
        # transaction, so a change and its trace commit (or roll back) together.
        self.audit = SqliteAuditLog(self.db)
        self.clock = clock or SystemClock()

    def _migrate(self) -> None:
        """Bring a database written by an older version to this schema, keeping its alerts."""
        cols = [r["name"] for r in self.db.query("PRAGMA table_info(alerts)")]
        if not cols or "handling" in cols:
            return
        # Version 1 had a narrower CHECK on state: SQLite changes a CHECK only by rebuilding the
        # table (its documented procedure: new table, copy, drop, rename, with foreign keys off).
        create = SCHEMA.split("CREATE UNIQUE INDEX")[0].replace("CREATE TABLE IF NOT EXISTS alerts (", "CREATE TABLE alerts_new (", 1)
        self.db.executescript("PRAGMA foreign_keys = OFF")
        self.db.executescript(
            "BEGIN IMMEDIATE;" + create
            + f"INSERT INTO alerts_new ({', '.join(cols)}) SELECT {', '.join(cols)} FROM alerts;"
            "DROP TABLE alerts; ALTER TABLE alerts_new RENAME TO alerts; COMMIT;"
        )
        self.db.executescript("PRAGMA foreign_keys = ON")

    def _add_columns(self) -> None:
        cols = {r["name"] for r in self.db.query("PRAGMA table_info(alerts)")}
        for name, ddl in ADDED_COLUMNS:
            if name not in cols:
                self.db.executescript(f"ALTER TABLE alerts ADD COLUMN {ddl}")

    # -- the pipeline step: signals from the rule engine -----------------------------------

    def apply(self, signals: Iterable[AlertSignal]) -> list[Alert]:
        """Apply rule signals: open, update (dedup) or resolve alerts. Returns the changed alerts."""
        changed: list[int] = []
        for s in signals:
            aid = self._apply_one(s)
            if aid is not None:
                changed.append(aid)
        return [self.get(i) for i in changed]

    def _apply_one(self, s: AlertSignal) -> int | None:
        now = to_epoch_ms(self.clock.now())
        ts = to_epoch_ms(s.ts)
        with self.db.transaction() as c:
            row = c.execute("SELECT * FROM alerts WHERE fingerprint = ? AND state != 'closed'", (s.fingerprint,)).fetchone()
            if s.status == "resolved":
                if row is None or row["activity"] == "resolved":
                    return None
                c.execute("UPDATE alerts SET activity = 'resolved', resolved_at = ?, last_seen = max(last_seen, ?), updated = ? WHERE id = ?",
                          (ts, ts, now, row["id"]))
                self._event(c, row["id"], now, "rules", "resolved", "", {"ts": s.ts.isoformat(), "value": s.value})
                return row["id"]
            if row is not None:
                refire = row["activity"] == "resolved"
                c.execute(
                    "UPDATE alerts SET activity = 'firing', resolved_at = NULL, count = count + ?, last_seen = max(last_seen, ?),"
                    " value = ?, summary = ?, updated = ? WHERE id = ?",
                    (1 if refire else 0, ts, s.value, s.summary, now, row["id"]),
                )
                if refire:
                    self._event(c, row["id"], now, "rules", "refired", "", {"ts": s.ts.isoformat(), "value": s.value})
                return row["id"]
            prev = c.execute("SELECT max(id) FROM alerts WHERE fingerprint = ?", (s.fingerprint,)).fetchone()[0]
            repeats = c.execute("SELECT count(*) FROM alerts WHERE entity_id = ?", (s.entity_id,)).fetchone()[0] if s.entity_id else 0
            cur = c.execute(
                "INSERT INTO alerts (fingerprint, rule_id, site, device, metric, department, entity_id, item_code, severity,"
                " summary, activity, state, value, threshold, starts_at, last_seen, count, created, updated, labels, previous_id,"
                " credit_grade, entity_repeats, evidence)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'firing', 'open', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
                (s.fingerprint, s.rule_id, s.site, s.device, s.metric, s.department, s.entity_id, s.item_code, s.severity,
                 s.summary, s.value, s.threshold, ts, ts, now, now, json.dumps(dict(s.labels)), prev,
                 s.credit_grade, repeats, json.dumps(list(s.evidence))),
            )
            aid = int(cur.lastrowid)  # type: ignore[arg-type]
            self._event(c, aid, now, "rules", "opened", s.summary, {"ts": s.ts.isoformat(), "value": s.value, "threshold": s.threshold})
            return aid

    def _event(self, c: sqlite3.Connection, alert_id: int, at: int, actor: str, action: str, note: str, data: dict) -> None:
        c.execute("INSERT INTO alert_events (alert_id, at, actor, action, note, data) VALUES (?, ?, ?, ?, ?, ?)",
                  (alert_id, at, actor, action, note, json.dumps(data, ensure_ascii=False)))
        self.audit.append_in(c, actor, action, f"alert:{alert_id}", {"note": note, **data}, at=from_epoch_ms(at))

    # -- people's actions ----------------------------------------------------------------

    def transition(self, alert_id: int, action: str, actor: str, note: str = "", data: Mapping[str, Any] | None = None) -> Alert:
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
            row = c.execute("SELECT state, fingerprint, handling FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no alert {alert_id}")
            target, fields = check_action(action, row["state"], note, data)
            if action == "reopen":
                other = c.execute("SELECT id FROM alerts WHERE fingerprint = ? AND state != 'closed'", (row["fingerprint"],)).fetchone()
                if other is not None:
                    raise TransitionError(f"cannot reopen alert {alert_id}: alert {other['id']} of the same series is open")
            handling = json.loads(row["handling"])
            handling.update(fields)
            c.execute("UPDATE alerts SET state = ?, handling = ?, updated = ? WHERE id = ?",
                      (target, json.dumps(handling, ensure_ascii=False), now, alert_id))
            self._event(c, alert_id, now, actor, action, note, {"from": row["state"], "to": target, **fields})
        return self.get(alert_id)

    # -- reads ----------------------------------------------------------------------------

    def get(self, alert_id: int) -> Alert:
        rows = self.db.query("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        if not rows:
            raise NotFoundError(f"no alert {alert_id}")
        return self._alert(rows[0])

    def _alert(self, r: sqlite3.Row) -> Alert:
        a = _row(r)
        score = explain(severity=a.severity, credit_grade=a.credit_grade, repeats=a.entity_repeats, evidence=len(a.evidence),
                        created=a.created, now=self.clock.now(), params=self.risk_params)
        return replace(a, risk=score.to_dict())

    def list(self, f: AlertFilter = AlertFilter(), limit: int = 100, offset: int = 0, sort: str = "severity") -> tuple[list[Alert], int]:
        """A page of alerts matching ``f`` and the total number that match."""
        where, params = ["1=1"], []
        if f.state:
            bad = [s for s in f.state if s not in STATES]
            if bad:
                raise ValueError(f"unknown state {bad[0]!r}; known: {', '.join(STATES)}")
            where.append(f"state IN ({','.join('?' * len(f.state))})")
            params += list(f.state)
        for col in ("activity", "department", "site", "severity", "rule_id"):
            v = getattr(f, col)
            if v is not None:
                where.append(f"{col} = ?")
                params.append(v)
        if f.severity is not None and f.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {f.severity!r}; known: {', '.join(SEVERITIES)}")
        order = SORTS.get(sort)
        if order is None:
            raise ValueError(f"unknown sort {sort!r}; known: {', '.join(SORTS)}")
        order_args: list[Any] = []
        if sort == "risk":
            expr, order_args = sql_order(self.risk_params, self.clock.now())
            order = f"{expr} DESC, id DESC"
        w = " AND ".join(where)
        total = int(self.db.query(f"SELECT count(*) FROM alerts WHERE {w}", tuple(params))[0][0])
        rows = self.db.query(f"SELECT * FROM alerts WHERE {w} ORDER BY {order} LIMIT ? OFFSET ?", tuple(params + order_args + [limit, offset]))
        return [self._alert(r) for r in rows], total

    def events(self, alert_id: int) -> list[AlertEvent]:
        """The alert's history, oldest first."""
        return [self._ev(r) for r in self.db.query("SELECT * FROM alert_events WHERE alert_id = ? ORDER BY id", (alert_id,))]

    def events_since(self, after_id: int, limit: int = 500) -> list[AlertEvent]:
        """History entries after ``after_id`` across all alerts (for the live stream)."""
        return [self._ev(r) for r in self.db.query("SELECT * FROM alert_events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]

    def max_event_id(self) -> int:
        return int(self.db.query("SELECT coalesce(max(id), 0) FROM alert_events")[0][0])

    def counts(self, department: str | None = None) -> dict[str, dict[str, int]]:
        """Not-closed alerts counted by severity and by state."""
        where, params = "state != 'closed'", ()
        if department:
            where += " AND department = ?"
            params = (department,)
        by_sev = {r[0]: r[1] for r in self.db.query(f"SELECT severity, count(*) FROM alerts WHERE {where} GROUP BY severity", params)}
        by_state = {r[0]: r[1] for r in self.db.query(f"SELECT state, count(*) FROM alerts WHERE {where} GROUP BY state", params)}
        return {"severity": by_sev, "state": by_state}

    @staticmethod
    def _ev(r: sqlite3.Row) -> AlertEvent:
        return AlertEvent(id=r["id"], alert_id=r["alert_id"], at=from_epoch_ms(r["at"]), actor=r["actor"],
                          action=r["action"], note=r["note"], data=json.loads(r["data"]))

    def close(self) -> None:
        self.db.close()


