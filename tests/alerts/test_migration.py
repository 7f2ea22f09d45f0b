"""Databases written before migrations (alert schema versions 1-3) open under the newest schema,
keeping their alerts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alerts.store import AlertStore
from farsight.migrate import HEAD

V1_SCHEMA = """
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
    state        TEXT    NOT NULL CHECK (state IN ('open', 'acknowledged', 'closed')),
    value        REAL,
    threshold    REAL,
    starts_at    INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    resolved_at  INTEGER,
    count        INTEGER NOT NULL DEFAULT 1,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    labels       TEXT    NOT NULL DEFAULT '{}',
    previous_id  INTEGER REFERENCES alerts (id)
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
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id);"""


def test_version_1_database_is_migrated_keeping_alerts_and_history(tmp_path: Path) -> None:
    db = tmp_path / "farsight.db"
    c = sqlite3.connect(db)
    c.executescript(V1_SCHEMA)
    c.execute(
        "INSERT INTO alerts (fingerprint, rule_id, site, device, metric, department, entity_id,"
        " item_code, severity, summary, activity, state, starts_at, last_seen, created, updated)"
        " VALUES ('fp', 'r', 's', 'd', 'm', 'env', 'e', 'i', 'warning', 'x', 'firing',"
        " 'acknowledged', 1, 1, 1, 1)"
    )
    c.execute(
        "INSERT INTO alert_events (alert_id, at, actor, action) VALUES (1, 1, 'li.wei', 'ack')"
    )
    c.commit()
    c.close()
    store = AlertStore(db)
    assert store.get(1).state == "acknowledged" and store.get(1).handling == {}
    moved = store.transition(
        1,
        "dispatch",
        "li.wei",
        "send the team",
        {"team": "Yichang 2", "inspector": "wang.fang", "due": "2026-12-01"},
    )
    assert moved.state == "dispatched"
    assert [e.action for e in store.events(1)] == ["ack", "dispatch"]
    store.close()
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    # Marked as at the newest schema (formerly PRAGMA user_version, now the migrations' row).
    assert check.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    check.close()


V2_SCHEMA = """
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
    state        TEXT    NOT NULL
                 CHECK (state IN ('open', 'acknowledged', 'dispatched', 'verified', 'closed')),
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
    handling     TEXT    NOT NULL DEFAULT '{}'
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


def test_version_2_database_gains_the_risk_columns(tmp_path: Path) -> None:
    db = tmp_path / "farsight.db"
    c = sqlite3.connect(db)
    c.executescript(V2_SCHEMA)
    c.execute(
        "INSERT INTO alerts (fingerprint, rule_id, site, device, metric, department, entity_id,"
        " item_code, severity, summary, activity, state, starts_at, last_seen, created, updated)"
        " VALUES ('fp', 'r', 's', 'd', 'm', 'env', 'e', 'i', 'major', 'x', 'firing', 'dispatched',"
        " 1, 1, 1, 1)"
    )
    c.commit()
    c.close()
    store = AlertStore(db)
    a = store.get(1)
    assert (a.state, a.credit_grade, a.entity_repeats, a.evidence) == ("dispatched", "B", 0, ())
    assert a.risk is not None and a.risk["score"] > 0
    store.close()


def test_text_search_finds_alerts_before_and_after_they_are_indexed(tmp_path: Path) -> None:
    from dataclasses import replace

    from alerts.store import AlertFilter
    from tests.factories import signal

    store = AlertStore(tmp_path / "farsight.db")

    def total(text: str) -> int:
        return store.list(AlertFilter(text=text))[1]

    store.apply(
        [
            replace(signal(fingerprint=f"f{i}"), summary=f"NOx over permit at stack {i}")
            for i in range(3)
        ]
    )
    assert total("permit at stack") == 3  # not indexed yet: matched above the mark
    assert store.index_text() == 3 and store.index_text() == 0
    assert total("permit at stack") == 3 and total("stack 1") == 1
    store.apply([replace(signal(fingerprint="f9"), summary="NOx over permit at stack 9")])
    assert total("permit at stack") == 4  # three from the index, one above the mark
    assert store.index_text(limit=10) == 1
    assert store.db.query("SELECT indexed_to FROM alerts_text_mark")[0][0] == 4
    store.close()
