"""The reads of ``farsight audit verify``: the chain, the alerts and their events, on one snapshot.

All SQL of the check lives here; :mod:`alerts.audit_replay` compares what these return and
:mod:`alerts.audit_trail` puts the two together. Every function reads through the connection of
a :meth:`~farsight.db.Database.snapshot`, so the chain and the tables are seen at one instant
while ingest and the hub keep writing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from alerts.audit import AuditEntry, StoredRow, ms_to_at
from alerts.audit_replay import AlertRow, EventRow, after_snapshot, alert_subject, subject_alert
from farsight.db import Connection

_CHAIN = "seq, at, actor, action, subject, data, prev_hash, hash"
_ALERT = (
    "id, state, activity, suppressed, escalation, handling, evidence, fingerprint, rule_id,"
    " site, device, metric, department, entity_id"
)

PAGE = 5000
"""Rows per read: the walk never holds the whole chain in memory."""


def chain_rows(c: Connection, page: int = PAGE) -> Iterator[StoredRow]:
    """The chain's rows in ``seq`` order, as stored (for :func:`alerts.audit.verify_chain`)."""
    after: Any = None
    while True:
        if after is None:
            rows = c.execute(
                f"SELECT {_CHAIN} FROM audit_log ORDER BY seq LIMIT ?", (page,)
            ).fetchall()
        else:
            rows = c.execute(
                f"SELECT {_CHAIN} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, page),
            ).fetchall()
        if not rows:
            return
        for r in rows:
            yield (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
        after = rows[-1][0]


def alert_ids(c: Connection) -> list[int]:
    """Every alert id in the queue."""
    return [int(r[0]) for r in c.execute("SELECT id FROM alerts ORDER BY id").fetchall()]


def chain_alert_ids(c: Connection, upto_seq: int) -> set[int]:
    """The ids of the alerts the chain has entries of, up to ``upto_seq``."""
    rows = c.execute(
        "SELECT DISTINCT subject FROM audit_log WHERE subject LIKE 'alert:%' AND seq <= ?",
        (upto_seq,),
    ).fetchall()
    return {aid for r in rows if (aid := subject_alert(str(r[0]))) is not None}


def _marks(n: int) -> str:
    return ",".join("?" * n)


def alert_rows(c: Connection, ids: Sequence[int]) -> dict[int, AlertRow]:
    """The checked columns of these alerts (missing ids absent)."""
    if not ids:
        return {}
    rows = c.execute(
        f"SELECT {_ALERT} FROM alerts WHERE id IN ({_marks(len(ids))})", tuple(ids)
    ).fetchall()
    return {
        int(r["id"]): AlertRow(int(r["id"]), after_snapshot(r, opened=True, strict=False))
        for r in rows
    }


def event_rows(c: Connection, ids: Sequence[int]) -> dict[int, list[EventRow]]:
    """The events of these alerts, oldest first, by alert."""
    out: dict[int, list[EventRow]] = {}
    if not ids:
        return out
    rows = c.execute(
        "SELECT id, alert_id, at, actor, action, note, data FROM alert_events"
        f" WHERE alert_id IN ({_marks(len(ids))}) ORDER BY id",
        tuple(ids),
    ).fetchall()
    for r in rows:
        try:
            data = json.loads(r["data"])
        except ValueError:
            data = {"unreadable data": r["data"]}
        if not isinstance(data, dict):
            data = {"unreadable data": r["data"]}
        ev = EventRow(
            id=int(r["id"]),
            alert_id=int(r["alert_id"]),
            at_ms=int(r["at"]),
            actor=r["actor"],
            action=r["action"],
            note=r["note"],
            data=data,
        )
        out.setdefault(ev.alert_id, []).append(ev)
    return out


def alert_entries(c: Connection, ids: Sequence[int], upto_seq: int) -> dict[int, list[AuditEntry]]:
    """The audit entries of these alerts up to ``upto_seq`` (the verified prefix), oldest
    first, by alert."""
    out: dict[int, list[AuditEntry]] = {}
    if not ids:
        return out
    subjects = [alert_subject(i) for i in ids]
    rows = c.execute(
        f"SELECT {_CHAIN} FROM audit_log WHERE subject IN ({_marks(len(subjects))})"
        " AND seq <= ? ORDER BY seq",
        (*subjects, upto_seq),
    ).fetchall()
    for r in rows:
        aid = subject_alert(r[4])
        if aid is None:
            continue
        out.setdefault(aid, []).append(
            AuditEntry(
                seq=int(r[0]),
                at=ms_to_at(int(r[1])),
                actor=r[2],
                action=r[3],
                subject=r[4],
                data=json.loads(r[5]),
                prev_hash=r[6],
                hash=r[7],
            )
        )
    return out


__all__ = [
    "PAGE",
    "alert_entries",
    "alert_ids",
    "alert_rows",
    "chain_alert_ids",
    "chain_rows",
    "event_rows",
]
