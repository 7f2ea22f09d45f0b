"""The risk queue in SQLite: dedup per fingerprint, resolve, handling transitions and history."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.store_sqlite import AlertFilter, SqliteAlertStore
from farsight.errors import NotFoundError, TransitionError
from tests.factories import signal


@pytest.fixture
def store(tmp_path: Path) -> SqliteAlertStore:
    s = SqliteAlertStore(tmp_path / "alerts.db")
    yield s
    s.close()


def test_one_open_alert_per_fingerprint(store: SqliteAlertStore) -> None:
    store.apply([signal(minutes=0)])
    store.apply([signal(minutes=10, value=99)])
    alerts, total = store.list()
    assert total == 1
    a = alerts[0]
    assert a.state == "open" and a.activity == "firing" and a.value == 99 and a.count == 1


def test_resolve_then_refire_counts_and_closure_opens_a_new_alert(store: SqliteAlertStore) -> None:
    (a,) = store.apply([signal(minutes=0)])
    (r,) = store.apply([signal("resolved", minutes=5)])
    assert r.id == a.id and r.activity == "resolved" and r.resolved_at is not None
    (again,) = store.apply([signal(minutes=7)])
    assert again.id == a.id and again.count == 2 and again.activity == "firing"
    store.transition(a.id, "ack", "li.wei", "looking")
    store.transition(a.id, "close", "li.wei", "verified on site: sensor fault")
    (new,) = store.apply([signal(minutes=30)])
    assert new.id != a.id and new.previous_id == a.id and new.state == "open"
    # A resolve for a fingerprint with nothing open changes nothing.
    assert store.apply([signal("resolved", fingerprint="other", minutes=40)]) == []


def test_transitions_record_who_when_and_refuse_invalid_moves(store: SqliteAlertStore) -> None:
    (a,) = store.apply([signal()])
    with pytest.raises(TransitionError, match="note"):
        store.transition(a.id, "close", "li.wei", "   ")
    acked = store.transition(a.id, "ack", "li.wei", "on it")
    assert acked.state == "acknowledged"
    with pytest.raises(TransitionError, match="acknowledged"):
        store.transition(a.id, "ack", "li.wei")
    closed = store.transition(a.id, "close", "wang.fang", "rectification ordered")
    assert closed.state == "closed"
    before = store.get(a.id)
    with pytest.raises(TransitionError):
        store.transition(a.id, "close", "wang.fang", "again")
    assert store.get(a.id) == before
    with pytest.raises(NotFoundError):
        store.transition(999, "ack", "x")
    actions = [(e.actor, e.action, e.note) for e in store.events(a.id)]
    assert actions == [("rules", "opened", a.summary), ("li.wei", "ack", "on it"), ("wang.fang", "close", "rectification ordered")]


def test_filters_and_pagination(store: SqliteAlertStore) -> None:
    store.apply([signal(fingerprint=f"fp{i}", site="yc-aq-1" if i % 2 else "xg-wim-1", department="env" if i % 2 else "transport") for i in range(7)])
    page, total = store.list(AlertFilter(department="env"), limit=2, offset=0)
    assert total == 3 and len(page) == 2
    page2, _ = store.list(AlertFilter(department="env"), limit=2, offset=2)
    assert len(page2) == 1 and {a.id for a in page}.isdisjoint({a.id for a in page2})
    assert store.list(AlertFilter(state=("closed",)))[1] == 0
    with pytest.raises(ValueError, match="unknown state"):
        store.list(AlertFilter(state=("bogus",)))
    assert store.counts()["severity"] == {"warning": 7}
