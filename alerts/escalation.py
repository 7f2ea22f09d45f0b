"""Escalation: per-severity deadlines of the handling steps, and escalation of overdue alerts.

Two steps have a deadline (``settings.alerts.escalation``): acknowledgement, counted from the
moment the alert is raised (or reopened), and on-site verification, counted from the dispatch.
The :class:`Escalator` keeps ``alerts.due_at`` equal to the deadline of the current step by
listening to every alert event (inside the event's transaction, so the deadline commits with the
change), and :meth:`Escalator.tick` escalates what is overdue at a time the caller gives: the
wall clock (ingest's periodic tick), never the rule engine's watermark, which the readings' own
timestamps move: one reading dated 2099 escalated every open alert at once when it did.

Deadlines are counted from the event's time (``alert_events.at``: when the alert entered the
queue or a person acted), not from the data's time: an alert raised late for buffered data gives
the duty officers their full time to acknowledge it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from alerts.model import Alert, AlertEvent
from alerts.store import AlertStore
from farsight.clock import from_epoch_ms, to_epoch_ms, utc
from farsight.db import Connection
from farsight.logs import kv
from farsight.settings import EscalationSettings
from farsight.types import SEVERITIES

log = logging.getLogger(__name__)

STEPS = ("ack", "verify")
"""Handling steps with a deadline: acknowledgement, then on-site verification."""

ESCALATED = "escalated"
"""History action of an escalation (``data``: step, overdue minutes, level)."""

_DEFAULTS = EscalationSettings()

_STARTS_ACK = ("opened", "reopen")
_STARTS_VERIFY = ("dispatch",)
_ENDS = ("ack", "verify", "close")


def deadline(
    severity: str, step: str, from_time: datetime, settings: EscalationSettings
) -> datetime:
    """When a handling step is due.

    Parameters
    ----------
    severity : str
        The alert's severity, one of :data:`farsight.types.SEVERITIES`.
    step : str
        ``"ack"`` (minutes from raising to acknowledgement, ``ack_within_min``) or ``"verify"``
        (minutes from dispatch to the verification finding, ``verify_within_min``).
    from_time : datetime
        When the step started (raised, reopened or dispatched); timezone-aware.
    settings : EscalationSettings
        Minutes per severity; a severity missing from a configured table takes the built-in
        default, so a partial table never leaves alerts without a deadline.

    Returns
    -------
    datetime
        The deadline, in UTC.

    Raises
    ------
    ValueError
        Unknown severity or step, or a naive ``from_time``.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; known: {', '.join(SEVERITIES)}")
    if step == "ack":
        table, default = settings.ack_within_min, _DEFAULTS.ack_within_min
    elif step == "verify":
        table, default = settings.verify_within_min, _DEFAULTS.verify_within_min
    else:
        raise ValueError(f"unknown step {step!r}; known: {', '.join(STEPS)}")
    minutes = table.get(severity, default[severity])
    return utc(from_time) + timedelta(minutes=float(minutes))


def step_of(state: str) -> str:
    """The step an alert in ``state`` is waiting for: verification once dispatched, else
    acknowledgement."""
    return "verify" if state == "dispatched" else "ack"


class Escalator:
    """Keeps ``due_at`` on the current step's deadline and escalates overdue alerts.

    Register :meth:`on_event` as a listener of every :class:`~alerts.store.AlertStore` that
    writes alert events (``store.listeners.append(escalator.on_event)``), and call :meth:`tick`
    with the wall clock's time from the worker's periodic tick.
    """

    def __init__(self, store: AlertStore, settings: EscalationSettings | None = None) -> None:
        self.store = store
        self.settings = settings or EscalationSettings()

    # -- the listener: inside each alert event's transaction --------------------------------

    def on_event(self, conn: Connection, alert: Alert, event: AlertEvent) -> None:
        """Set or clear ``due_at`` for the event's step (an ``EventListener``).

        Only handling events move the deadline; the store's other events (``escalated``,
        ``resolved``, ``comment``, the joint visit's record, ...) leave it alone, so the
        escalation this class records itself never comes back here as a change.
        """
        action = event.action
        if action in _STARTS_ACK:
            due: datetime | None = deadline(alert.severity, "ack", event.at, self.settings)
        elif action in _STARTS_VERIFY:
            due = deadline(alert.severity, "verify", event.at, self.settings)
        elif action in _ENDS:
            # Acknowledged: the next step (dispatch) has no deadline of its own; verified and
            # closed: nothing is waiting.
            due = None
        else:
            return
        self.store.set_due_in(conn, alert.id, to_epoch_ms(due) if due else None)

    # -- the periodic step -----------------------------------------------------------------

    def tick(self, now: datetime) -> list[Alert]:
        """Escalate every not-closed, not-muted alert whose step is due at or before ``now``.

        Each escalation is one ``escalated`` event (data: ``step``, ``overdue_min`` since the
        step's deadline, ``level``) with ``escalation`` raised by one and the next escalation
        due ``repeat_min`` after ``now``, in one transaction. The row is read again under lock
        in that transaction, so an alert acknowledged meanwhile, or escalated by another worker,
        is left alone.

        Parameters
        ----------
        now : datetime
            The wall clock's time (a test's or replay's own clock), timezone-aware.

        Returns
        -------
        list of Alert
            The alerts escalated, after the change.
        """
        now_ms = to_epoch_ms(now)
        repeat_ms = round(self.settings.repeat_min * 60_000)
        escalated: list[Alert] = []
        for aid in self.store.due_ids(now_ms):
            with self.store.db.transaction() as c:
                row = self.store.escalation_row_in(c, aid)
                if (
                    row is None
                    or row["state"] == "closed"
                    or row["suppressed"] != "{}"
                    or row["due_at"] is None
                    or row["due_at"] > now_ms
                ):
                    continue
                step = step_of(row["state"])
                step_due = self._step_deadline(c, aid, row["severity"], step, row["due_at"])
                level = int(row["escalation"]) + 1
                overdue_min = round(max(0, now_ms - step_due) / 60_000, 1)
                alert = self.store.record(
                    aid,
                    "escalation",
                    ESCALATED,
                    f"{step} overdue by {overdue_min:g} min (level {level})",
                    data={
                        "step": step,
                        "overdue_min": overdue_min,
                        "level": level,
                        "due": from_epoch_ms(step_due).isoformat(),
                    },
                    changes={"escalation": level, "due_at": now_ms + repeat_ms},
                )
            log.warning(
                "alert escalated",
                extra=kv(
                    alert=aid,
                    site=alert.site,
                    rule=alert.rule_id,
                    department=alert.department,
                    step=step,
                    level=level,
                    overdue_min=overdue_min,
                ),
            )
            escalated.append(alert)
        return escalated

    def _step_deadline(
        self, c: Connection, alert_id: int, severity: str, step: str, fallback_ms: int
    ) -> int:
        """The original deadline of the current step (repeats move ``due_at``; the overdue
        time is still counted from the step's own deadline)."""
        starts = _STARTS_VERIFY if step == "verify" else _STARTS_ACK
        started = self.store.last_event_at_in(c, alert_id, tuple(starts))
        if started is None:
            return int(fallback_ms)
        return to_epoch_ms(deadline(severity, step, from_epoch_ms(started), self.settings))
