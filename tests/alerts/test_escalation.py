"""Escalation on both backends: per-severity deadlines, escalation of overdue alerts on the
engine's clock, repeats, and no escalation when handled in time or muted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from alerts.escalation import ESCALATED, Escalator, deadline, step_of
from alerts.store import AlertStore
from farsight.clock import ManualClock
from farsight.settings import EscalationSettings
from tests.factories import T0, signal

SETTINGS = EscalationSettings(
    ack_within_min={"critical": 15, "major": 60, "warning": 240, "info": 1440},
    verify_within_min={"critical": 1440, "major": 2880, "warning": 10080, "info": 20160},
    repeat_min=30,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(backend: str, clock: ManualClock) -> Iterator[AlertStore]:
    s = AlertStore(backend, clock=clock)
    yield s
    assert s.audit.verify().ok
    s.close()


@pytest.fixture
def escalator(store: AlertStore) -> Escalator:
    e = Escalator(store, SETTINGS)
    store.listeners.append(e.on_event)
    return e


def raise_alert(
    store: AlertStore, severity: str = "critical", fingerprint: str = "fp1", minutes: float = 0
):
    (a,) = store.apply(
        [replace(signal(fingerprint=fingerprint, minutes=minutes), severity=severity)]
    )
    return a


def escalations(store: AlertStore, alert_id: int) -> list[dict]:
    return [e.data for e in store.events(alert_id) if e.action == ESCALATED]


# -- the pure part -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "ack_min", "verify_min"),
    [("critical", 15, 1440), ("major", 60, 2880), ("warning", 240, 10080), ("info", 1440, 20160)],
)
def test_deadline_per_severity_and_step(severity: str, ack_min: int, verify_min: int) -> None:
    assert deadline(severity, "ack", T0, SETTINGS) == T0 + timedelta(minutes=ack_min)
    assert deadline(severity, "verify", T0, SETTINGS) == T0 + timedelta(minutes=verify_min)


def test_deadline_partial_table_falls_back_to_default_and_refuses_unknowns() -> None:
    partial = EscalationSettings(ack_within_min={"critical": 5})
    assert deadline("critical", "ack", T0, partial) == T0 + timedelta(minutes=5)
    assert deadline("major", "ack", T0, partial) == T0 + timedelta(
        minutes=EscalationSettings().ack_within_min["major"]
    )
    with pytest.raises(ValueError, match="severity"):
        deadline("urgent", "ack", T0, SETTINGS)
    with pytest.raises(ValueError, match="step"):
        deadline("major", "close", T0, SETTINGS)
    with pytest.raises(ValueError):
        deadline("major", "ack", T0.replace(tzinfo=None), SETTINGS)
    assert (
        step_of("dispatched") == "verify"
        and step_of("new") == "ack"
        and step_of("acknowledged") == "ack"
    )


# -- the store: due_at follows the handling ---------------------------------------------------


def test_due_at_follows_the_handling_steps(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "major")
    assert store.get(a.id).due_at == T0 + timedelta(minutes=60)
    clock.advance(timedelta(minutes=10))
    assert store.transition(a.id, "ack", "li.wei", "on it").due_at is None
    clock.advance(timedelta(minutes=20))
    dispatched = store.transition(
        a.id, "dispatch", "li.wei", "go", {"team": "t1", "inspector": "zhang", "due": "2026-11-27"}
    )
    assert dispatched.due_at == T0 + timedelta(minutes=30 + 2880)
    assert (
        store.transition(a.id, "verify", "zhang", "seen", {"finding": "no_violation"}).due_at
        is None
    )
    assert store.transition(a.id, "close", "li.wei", "done").due_at is None
    clock.advance(timedelta(minutes=5))
    reopened = store.transition(a.id, "reopen", "li.wei", "complaint came in")
    assert reopened.due_at == T0 + timedelta(minutes=35 + 60)
    # A comment or a rule resolution leaves the deadline alone.
    assert store.transition(a.id, "comment", "li.wei", "note").due_at == reopened.due_at
    store.apply([replace(signal("resolved", minutes=40), severity="major")])
    assert store.get(a.id).due_at == reopened.due_at


# -- tick: escalation on the engine's clock ------------------------------------------------------


def test_overdue_new_alert_escalates_at_deadline_then_after_repeat(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "critical")
    due = T0 + timedelta(minutes=15)
    assert escalator.tick(due - timedelta(milliseconds=1)) == []
    assert escalations(store, a.id) == []
    clock.advance(timedelta(minutes=15))
    (e,) = escalator.tick(due)
    assert e.id == a.id and e.escalation == 1 and e.due_at == due + timedelta(minutes=30)
    assert escalations(store, a.id) == [
        {"step": "ack", "overdue_min": 0, "level": 1, "due": due.isoformat()}
    ]
    # Once only: the next tick before repeat_min escalates nothing.
    assert escalator.tick(due + timedelta(minutes=29)) == []
    assert len(escalations(store, a.id)) == 1
    (again,) = escalator.tick(due + timedelta(minutes=31))
    assert again.escalation == 2 and again.due_at == due + timedelta(minutes=61)
    assert escalations(store, a.id)[-1] == {
        "step": "ack",
        "overdue_min": 31,
        "level": 2,
        "due": due.isoformat(),
    }
    assert store.get(a.id).state == "new"  # escalating is not handling


def test_tick_uses_the_given_time_not_the_store_clock(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "critical")
    clock.advance(timedelta(days=2))  # the store's clock ran far ahead; the engine has not
    assert escalator.tick(T0 + timedelta(minutes=14)) == []
    assert store.get(a.id).escalation == 0
    assert [x.id for x in escalator.tick(T0 + timedelta(minutes=15))] == [a.id]


def test_acknowledged_in_time_is_not_escalated(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "critical")
    late = raise_alert(store, "critical", fingerprint="fp-late")
    clock.advance(timedelta(minutes=14))
    store.transition(a.id, "ack", "li.wei", "on it")
    escalated = escalator.tick(T0 + timedelta(hours=6))
    assert [x.id for x in escalated] == [late.id]
    assert escalations(store, a.id) == [] and store.get(a.id).escalation == 0


def test_muted_alert_is_not_escalated(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "major")
    other = raise_alert(store, "major", fingerprint="fp-other")
    store.record(
        a.id,
        "silences",
        "silenced",
        "maintenance window",
        {"silence": 1},
        changes={"suppressed": '{"silence": 1}'},
    )
    escalated = escalator.tick(T0 + timedelta(hours=3))
    assert [x.id for x in escalated] == [other.id]
    assert escalations(store, a.id) == [] and store.get(a.id).escalation == 0
    # Unmuted and still overdue: escalated at the next tick.
    store.record(a.id, "silences", "unsilenced", "window over", {}, changes={"suppressed": "{}"})
    assert [x.id for x in escalator.tick(T0 + timedelta(hours=3))] == [a.id]


def test_closed_alert_is_not_escalated(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "critical")
    store.transition(a.id, "close", "li.wei", "false alarm seen from the data")
    assert escalator.tick(T0 + timedelta(days=1)) == []


def test_verification_deadline_after_dispatch(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "warning")
    clock.advance(timedelta(minutes=100))
    store.transition(
        a.id, "dispatch", "li.wei", "go", {"team": "t1", "inspector": "zhang", "due": "2026-12-01"}
    )
    verify_due = T0 + timedelta(minutes=100 + 10080)
    # The acknowledgement deadline (240 min) no longer applies once dispatched.
    assert escalator.tick(T0 + timedelta(minutes=241)) == []
    assert escalator.tick(verify_due - timedelta(seconds=1)) == []
    (e,) = escalator.tick(verify_due + timedelta(minutes=5))
    assert e.escalation == 1
    assert escalations(store, a.id) == [
        {"step": "verify", "overdue_min": 5, "level": 1, "due": verify_due.isoformat()}
    ]
    store.transition(a.id, "verify", "zhang", "seen", {"finding": "violation_confirmed"})
    assert escalator.tick(verify_due + timedelta(days=30)) == []


def test_escalation_is_in_history_and_audit(
    store: AlertStore, escalator: Escalator, clock: ManualClock
) -> None:
    a = raise_alert(store, "critical")
    escalator.tick(T0 + timedelta(minutes=20))
    timeline = store.timeline(a.id)
    assert [t["action"] for t in timeline] == ["opened", ESCALATED]
    assert timeline[-1]["actor"] == "escalation" and "audit" in timeline[-1]
