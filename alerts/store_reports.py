"""Read-only queries of the risk queue behind the reports: the risk warning report, the handling
statistics (MTTA/MTTR) and the joint-inspection candidates.

The report modules compute from the rows these functions return; they write no SQL of their own.
Every value is bound as a parameter, never formatted into the SQL; the SQL is the portable subset
of :mod:`farsight.db` (``?`` placeholders, ``CASE``, integer arithmetic, ``GROUP BY`` over a
derived table), so it runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class ReadableDatabase(Protocol):
    """What these queries need of a :class:`farsight.db.Database`."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Period:
    """Alerts created in ``[start_ms, end_ms)`` (epoch milliseconds), of one department or all."""

    start_ms: int
    end_ms: int
    department: str | None = None

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        """The filter and its parameters (``alias``: a table alias such as ``"a."``)."""
        sql = f"{alias}created >= ? AND {alias}created < ?"
        args: list[Any] = [self.start_ms, self.end_ms]
        if self.department is not None:
            sql += f" AND {alias}department = ?"
            args.append(self.department)
        return sql, args


# -- the risk warning report -----------------------------------------------------------------------


def counts_by_severity_state_activity(db: ReadableDatabase, period: Period) -> Sequence[Any]:
    """Rows ``(severity, state, activity, n)``: one grouped pass for the report's totals."""
    where, args = period.where()
    return db.query(
        f"SELECT severity, state, activity, count(*) AS n FROM alerts WHERE {where}"
        " GROUP BY severity, state, activity",
        tuple(args),
    )


def counts_by_rule(db: ReadableDatabase, period: Period) -> Sequence[Any]:
    """Rows ``(rule_id, n)``."""
    where, args = period.where()
    return db.query(
        f"SELECT rule_id, count(*) AS n FROM alerts WHERE {where} GROUP BY rule_id", tuple(args)
    )


def counts_by_site(db: ReadableDatabase, period: Period, severe: Sequence[str]) -> Sequence[Any]:
    """Rows ``(site, department, n, severe)``, ``severe`` counting the given severities."""
    where, args = period.where()
    marks = ", ".join("?" * len(severe))
    return db.query(
        f"SELECT site, department, count(*) AS n,"
        f" sum(CASE WHEN severity IN ({marks}) THEN 1 ELSE 0 END) AS severe"
        f" FROM alerts WHERE {where} GROUP BY site, department",
        (*severe, *args),
    )


def counts_by_bucket(
    db: ReadableDatabase, period: Period, anchor_ms: int, step_ms: int
) -> Sequence[Any]:
    """Rows ``(b, severity, n)``, ``b`` the bucket index ``(created - anchor) / step``.

    The bucket is computed in a derived table so that the ``GROUP BY`` names a column
    (PostgreSQL refuses to match ``(created - $1) / $2`` against ``(created - $3) / $4``).
    """
    where, args = period.where()
    return db.query(
        "SELECT b, severity, count(*) AS n FROM (SELECT (created - ?) / ? AS b, severity"
        f" FROM alerts WHERE {where}) AS t GROUP BY b, severity",
        (anchor_ms, step_ms, *args),
    )


def scoring_rows(db: ReadableDatabase, period: Period) -> Sequence[Any]:
    """One row per alert with what its risk score and finding need: ``id, entity_id, severity,
    credit_grade, entity_repeats, evidence, created, state, handling`` (JSON as stored)."""
    where, args = period.where()
    return db.query(
        "SELECT id, entity_id, severity, credit_grade, entity_repeats, evidence, created, state,"
        f" handling FROM alerts WHERE {where}",
        tuple(args),
    )


def first_event_at(db: ReadableDatabase, period: Period, action: str) -> Sequence[Any]:
    """Rows ``(alert_id, at)``: the first ``action`` event of each alert of the period."""
    where, args = period.where()
    return db.query(
        "SELECT alert_id, min(at) AS at FROM alert_events WHERE action = ?"
        f" AND alert_id IN (SELECT id FROM alerts WHERE {where}) GROUP BY alert_id",
        (action, *args),
    )


def last_event_at(db: ReadableDatabase, period: Period, action: str) -> Sequence[Any]:
    """Rows ``(alert_id, at)``: the last ``action`` event of each alert of the period."""
    where, args = period.where()
    return db.query(
        "SELECT alert_id, max(at) AS at FROM alert_events WHERE action = ?"
        f" AND alert_id IN (SELECT id FROM alerts WHERE {where}) GROUP BY alert_id",
        (action, *args),
    )


# -- handling statistics ---------------------------------------------------------------------------


def cohort(db: ReadableDatabase, period: Period) -> Sequence[Any]:
    """Rows ``(id, department, state, created, escalation)`` of the alerts raised in the period."""
    where, args = period.where("a.")
    return db.query(
        f"SELECT a.id, a.department, a.state, a.created, a.escalation FROM alerts a WHERE {where}",
        tuple(args),
    )


def cohort_events(db: ReadableDatabase, period: Period, actions: Sequence[str]) -> Sequence[Any]:
    """Rows ``(alert_id, at, action)`` of the given actions of the period's alerts, in order."""
    where, args = period.where("a.")
    marks = ",".join("?" * len(actions))
    return db.query(
        "SELECT e.alert_id, e.at, e.action FROM alert_events e JOIN alerts a ON a.id = e.alert_id"
        f" WHERE {where} AND e.action IN ({marks}) ORDER BY e.alert_id, e.at, e.id",
        (*args, *actions),
    )


def overdue_by_department(
    db: ReadableDatabase, now_ms: int, department: str | None = None
) -> Sequence[Any]:
    """Rows ``(department, count)`` of not-closed, not-muted alerts past their deadline."""
    where = "due_at IS NOT NULL AND due_at <= ? AND state != 'closed' AND suppressed = '{}'"
    args: list[Any] = [now_ms]
    if department is not None:
        where += " AND department = ?"
        args.append(department)
    return db.query(
        f"SELECT department, count(*) FROM alerts WHERE {where} GROUP BY department", tuple(args)
    )


# -- joint inspections -----------------------------------------------------------------------------


def entities_with_waiting(
    db: ReadableDatabase, states: Sequence[str], min_alerts: int
) -> list[str]:
    """Entities (credit codes) with at least ``min_alerts`` not-muted alerts in ``states``."""
    marks = ", ".join("?" * len(states))
    rows = db.query(
        f"SELECT entity_id FROM alerts WHERE state IN ({marks}) AND suppressed = '{{}}'"
        " AND entity_id != '' GROUP BY entity_id HAVING count(*) >= ? ORDER BY entity_id",
        (*states, min_alerts),
    )
    return [r["entity_id"] for r in rows]
