"""Handling statistics per department: how fast alerts are taken up (MTTA) and closed (MTTR).

Everything comes from the history (``alert_events``) of the alerts raised in a period: the
cohort of alerts created in ``[start, end)``, with whatever happened to them up to now. The
queries are the portable subset (plain selects, bound parameters); means, medians and
percentiles are computed here in Python, the same on SQLite and PostgreSQL.

- time to acknowledge: from ``opened`` to the first human response, whichever of ``ack``,
  ``dispatch`` or ``close`` came first (a dispatch or a desk closure takes an alert up too);
- time to resolve: from ``opened`` to the ``close`` that left the alert closed (alerts closed,
  reopened and not closed again are not resolved).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from alerts import store_reports as queries
from alerts.store import AlertStore
from alerts.store_reports import Period
from farsight.clock import to_epoch_ms, utc

RESPONSES = ("ack", "dispatch", "close")
"""Actions that count as taking an alert up (the end of the time to acknowledge)."""


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks (NumPy's default).

    ``None`` for no values.
    """
    xs = sorted(values)
    if not xs:
        return None
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarise(minutes: list[float]) -> dict[str, float | int | None]:
    """Count, mean, median and 90th percentile of durations in minutes (``None`` when empty)."""
    if not minutes:
        return {"n": 0, "mean_min": None, "median_min": None, "p90_min": None}
    return {
        "n": len(minutes),
        "mean_min": statistics.fmean(minutes),
        "median_min": statistics.median(minutes),
        "p90_min": percentile(minutes, 0.9),
    }


def _empty() -> dict[str, Any]:
    return {
        "raised": 0,
        "acknowledged": 0,
        "closed": 0,
        "escalated": 0,
        "overdue_now": 0,
        "_tta": [],
        "_ttr": [],
    }


def handling_stats(
    store: AlertStore,
    start: datetime,
    end: datetime,
    department: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Handling figures of the alerts raised in ``[start, end)``, per department and overall.

    Parameters
    ----------
    store : AlertStore
        The risk queue (its ``db`` is read; its clock is "now" unless ``now`` is given).
    start, end : datetime
        The period, timezone-aware; alerts *created* in it form the cohort.
    department : str, optional
        Only this department; ``None`` for all (each department with alerts gets an entry).
    now : datetime, optional
        The time "overdue now" is judged at; default the store's clock.

    Returns
    -------
    dict
        ``{"from", "to", "department", "departments": {dept: figures}, "all": figures}``, where
        figures are ``raised``, ``acknowledged`` (taken up by ack, dispatch or close),
        ``closed`` (closed now), ``escalated`` (escalated at least once), ``overdue_now``
        (not-closed, not-muted alerts of the department past their step's deadline now,
        whenever raised), ``mtta`` and ``mttr`` (each ``{"n", "mean_min", "median_min",
        "p90_min"}``).

    Raises
    ------
    ValueError
        Naive times, or ``start`` not before ``end``.
    """
    start, end = utc(start), utc(end)
    if start >= end:
        raise ValueError(f"from {start.isoformat()} must be before to {end.isoformat()}")
    now = utc(now) if now is not None else utc(store.clock.now())
    db = store.db
    period = Period(to_epoch_ms(start), to_epoch_ms(end), department)
    alerts = queries.cohort(db, period)
    events = queries.cohort_events(db, period, ("opened", *RESPONSES))
    overdue = queries.overdue_by_department(db, to_epoch_ms(now), department)

    opened: dict[int, int] = {}
    first_response: dict[int, int] = {}
    last_close: dict[int, int] = {}
    for e in events:
        aid, at, action = int(e["alert_id"]), int(e["at"]), e["action"]
        if action == "opened":
            opened.setdefault(aid, at)
            continue
        first_response.setdefault(aid, at)
        if action == "close":
            last_close[aid] = at

    by_dept: dict[str, dict[str, Any]] = defaultdict(_empty)
    if department is not None:
        by_dept[department]  # the asked-for department is listed even with nothing in it
    for a in alerts:
        aid = int(a["id"])
        d = by_dept[a["department"]]
        t0 = opened.get(aid, int(a["created"]))
        d["raised"] += 1
        if int(a["escalation"]) > 0:
            d["escalated"] += 1
        if aid in first_response:
            d["acknowledged"] += 1
            d["_tta"].append((first_response[aid] - t0) / 60_000)
        if a["state"] == "closed":
            d["closed"] += 1
            if aid in last_close:
                d["_ttr"].append((last_close[aid] - t0) / 60_000)
    for r in overdue:
        by_dept[r[0]]["overdue_now"] = int(r[1])

    total = _empty()
    out: dict[str, dict[str, Any]] = {}
    for dept in sorted(by_dept):
        d = by_dept[dept]
        for k in ("raised", "acknowledged", "closed", "escalated", "overdue_now", "_tta", "_ttr"):
            total[k] += d[k]
        out[dept] = _finish(d)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "now": now.isoformat(),
        "department": department,
        "departments": out,
        "all": _finish(total),
    }


def _finish(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "raised": d["raised"],
        "acknowledged": d["acknowledged"],
        "closed": d["closed"],
        "escalated": d["escalated"],
        "overdue_now": d["overdue_now"],
        "mtta": summarise(d["_tta"]),
        "mttr": summarise(d["_ttr"]),
    }
