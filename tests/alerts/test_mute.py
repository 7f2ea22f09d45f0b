"""The mute stage with silences, on SQLite and PostgreSQL: muted alerts stay in the queue,
flagged, with an event and an audit entry for every change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from alerts.mute import MuteStage
from alerts.silences import SilenceStore
from alerts.store import AlertFilter, AlertStore
from farsight.clock import ManualClock
from tests.factories import T0, signal

H = timedelta(hours=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def stage(backend: str, clock: ManualClock) -> Iterator[MuteStage]:
    store = AlertStore(backend, clock=clock)
    yield MuteStage(store, SilenceStore(store.db, clock=clock, audit=store.audit), ())
    store.close()


def _actions(store: AlertStore, alert_id: int) -> list[str]:
    return [e.action for e in store.events(alert_id)]


def test_silence_mutes_a_matching_new_alert_only(stage: MuteStage) -> None:
    s = stage.silences.create({"site": "yc-aq-1"}, None, T0 + H, "analyser calibration", "alice")
    muted, free = stage.apply([signal(fingerprint="a"), signal(fingerprint="b", site="yc-stack-1")])
    assert muted.suppressed == {"silence": s.id}
    assert free.suppressed == {}
    store = stage.store
    assert _actions(store, muted.id) == ["opened", "silenced"]
    assert _actions(store, free.id) == ["opened"]
    ev = store.events(muted.id)[-1]
    assert (ev.actor, ev.note, ev.data["silence"], ev.data["creator"]) == (
        "mute",
        "analyser calibration",
        s.id,
        "alice",
    )
    assert [a.id for a in store.list(AlertFilter(suppressed=False))[0]] == [free.id]
    assert [a.id for a in store.list(AlertFilter(suppressed=True))[0]] == [muted.id], (
        "nothing is lost: the muted alert is kept"
    )


def test_updates_of_a_muted_alert_stay_muted_without_new_events(
    stage: MuteStage, clock: ManualClock
) -> None:
    s = stage.silences.create({"site": "yc-aq-1"}, None, T0 + H, "x", "alice")
    a = stage.apply([signal()])[0]
    clock.advance(timedelta(minutes=1))
    again = stage.apply([signal(minutes=1, value=95.0)])
    assert [x.id for x in again] == [a.id] and again[0].suppressed == {"silence": s.id}
    stage.apply([signal(status="resolved", minutes=2)])
    assert stage.store.get(a.id).suppressed == {"silence": s.id}
    assert _actions(stage.store, a.id) == ["opened", "silenced", "resolved"]


def test_silence_ends_by_itself_and_tick_unmutes(stage: MuteStage, clock: ManualClock) -> None:
    store = stage.store
    s = stage.silences.create({"site": "yc-aq-1", "metric": "~pm.*"}, None, T0 + H, "x", "alice")
    a = stage.apply([signal()])[0]
    assert a.suppressed == {"silence": s.id}
    clock.advance(H - timedelta(seconds=1))
    assert stage.tick() == [], "still active one second before its end"
    clock.advance(timedelta(seconds=1))
    assert [x.id for x in stage.tick()] == [a.id]
    assert store.get(a.id).suppressed == {}
    ev = store.events(a.id)[-1]
    assert (ev.action, ev.data["silence"], ev.data["why"]) == ("unsilenced", s.id, "ended")
    assert stage.tick() == []
    later = stage.apply([signal(fingerprint="after", minutes=61)])[0]
    assert later.suppressed == {}, "an alert raised after the end is not muted"
    assert _actions(store, later.id) == ["opened"]


def test_a_silence_that_starts_later_mutes_existing_alerts_on_tick(
    stage: MuteStage, clock: ManualClock
) -> None:
    a = stage.apply([signal()])[0]
    s = stage.silences.create({"site": "yc-aq-1"}, T0 + H, T0 + 2 * H, "planned outage", "alice")
    assert stage.tick() == [], "pending silences mute nothing"
    clock.advance(H)
    assert [x.id for x in stage.tick()] == [a.id]
    assert stage.store.get(a.id).suppressed == {"silence": s.id}


def test_expire_early_unmutes(stage: MuteStage, clock: ManualClock) -> None:
    store = stage.store
    s = stage.silences.create({"department": "env"}, None, T0 + 5 * H, "x", "alice")
    a = stage.apply([signal()])[0]
    assert a.suppressed == {"silence": s.id}
    clock.advance(H)
    stage.silences.expire(s.id, "bob")
    assert [x.id for x in stage.tick()] == [a.id]
    assert store.get(a.id).suppressed == {}
    assert store.events(a.id)[-1].data["why"] == "expired early by bob"


def test_another_active_silence_takes_over(stage: MuteStage, clock: ManualClock) -> None:
    short = stage.silences.create({"site": "yc-aq-1"}, None, T0 + H, "short", "alice")
    long = stage.silences.create({"department": "env"}, None, T0 + 3 * H, "long", "bob")
    a = stage.apply([signal()])[0]
    assert a.suppressed == {"silence": long.id}, "the longest-lasting silence is recorded"
    stage.silences.expire(long.id, "bob")
    stage.tick()
    assert stage.store.get(a.id).suppressed == {"silence": short.id}
    assert _actions(stage.store, a.id)[-2:] == ["unsilenced", "silenced"]


def test_closed_alerts_are_left_alone(stage: MuteStage) -> None:
    a = stage.apply([signal()])[0]
    stage.store.transition(a.id, "close", "alice", "false alarm")
    stage.silences.create({"site": "yc-aq-1"}, None, T0 + H, "x", "alice")
    assert stage.tick() == []
    assert stage.store.get(a.id).suppressed == {}


def test_events_and_silences_are_audited(stage: MuteStage, clock: ManualClock) -> None:
    store = stage.store
    s = stage.silences.create({"site": "yc-aq-1"}, None, T0 + H, "x", "alice")
    a = stage.apply([signal()])[0]
    stage.silences.expire(s.id, "bob")
    stage.tick()
    assert [e.action for e in store.audit.entries(subject=f"alert:{a.id}")] == [
        "opened",
        "silenced",
        "unsilenced",
    ]
    assert [(e.actor, e.action) for e in store.audit.entries(subject=f"silence:{s.id}")] == [
        ("alice", "created"),
        ("bob", "expired"),
    ]
    assert store.audit.verify().ok


def test_a_failing_batch_rolls_back_alerts_and_mutes(stage: MuteStage) -> None:
    stage.silences.create({"site": "yc-aq-1"}, None, T0 + H, "x", "alice")
    with pytest.raises(RuntimeError), stage.store.db.transaction():
        stage.apply([signal()])
        raise RuntimeError("the batch failed after the alerts")
    assert stage.store.list()[1] == 0
    assert stage.store.audit.verify().ok


def test_mutes_are_decided_after_the_callers_transaction_commits(stage: MuteStage) -> None:
    """Patterns never run while the queue's write lock is held: inside a caller's transaction
    (ingest's batch) the signals are applied, and the mutes follow its commit."""
    s = stage.silences.create({"site": "~yc-aq-.*"}, None, T0 + H, "x", "alice")
    with stage.store.db.transaction():
        (a,) = stage.apply([signal()])
        assert a.suppressed == {}
        assert _actions(stage.store, a.id) == ["opened"], "not decided inside the transaction"
    assert stage.store.get(a.id).suppressed == {"silence": s.id}
    assert _actions(stage.store, a.id) == ["opened", "silenced"]


def test_a_decision_made_on_a_stale_read_is_not_recorded(stage: MuteStage) -> None:
    """Decided on a read, recorded under the row lock only if the alert is still as read: two
    workers deciding one alert record one change."""
    s = stage.silences.create({"site": "yc-aq-1"}, None, T0 + H, "x", "alice")
    with stage.store.db.transaction():
        (a,) = stage.apply([signal()])  # decided after this transaction
    assert [x.id for x in stage.evaluate([a.id])] == [], "already muted: nothing to record"
    other = MuteStage(stage.store, stage.silences, ())
    # A second stage that read the alert before the first one muted it decides the same
    # change: under the lock it finds the alert changed and records nothing.
    stale = {a.id: a}
    assert other._settle({a.id}, T0, stale) == []
    assert _actions(stage.store, a.id) == ["opened", "silenced"]
    assert stage.store.get(a.id).suppressed == {"silence": s.id}
