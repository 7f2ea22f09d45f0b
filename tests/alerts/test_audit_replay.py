"""The queue against its chain: the pure replay on entries of both forms (written before and
since entries carried their event id and the row after the change), and the whole check on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from alerts.audit import AuditEntry, make_entry
from alerts.audit_replay import (
    AlertRow,
    EventRow,
    after_snapshot,
    compare_alert,
    replay,
    subject_alert,
)
from alerts.audit_trail import verify_trail
from alerts.pipeline import AlertPipeline, build_alert_pipeline
from farsight.clock import ManualClock, to_epoch_ms
from farsight.settings import AlertsSettings
from tests.factories import T0, signal

M = timedelta(minutes=1)

# One alert's life as a Farsight from before this check recorded it: (actor, action, note, data).
OLD_LIFE: list[tuple[str, str, str, dict[str, Any]]] = [
    ("rules", "opened", "PM2.5 high", {"ts": "2026-11-25T00:00:00+00:00", "value": 90.0}),
    ("mute", "silenced", "calibration", {"silence": 3, "creator": "alice"}),
    ("mute", "unsilenced", "silence 3 ended", {"silence": 3, "why": "ended"}),
    ("li.wei", "ack", "looking", {"from": "new", "to": "acknowledged"}),
    (
        "li.wei",
        "dispatch",
        "send a team",
        {
            "from": "acknowledged",
            "to": "dispatched",
            "dispatch": {"team": "T", "inspector": "wang.fang", "due": "2026-11-27"},
        },
    ),
    ("li.wei", "joint_visit", "one trip", {"visit": "v-1", "alerts": [1, 2]}),
    ("escalation", "escalated", "verify overdue", {"step": "verify", "level": 1}),
    (
        "wang.fang",
        "verify",
        "confirmed",
        {
            "from": "dispatched",
            "to": "verified",
            "verification": {"finding": "violation_confirmed", "evidence": []},
        },
    ),
    ("rules", "resolved", "", {"ts": "2026-11-25T03:00:00+00:00", "value": 20.0}),
    (
        "li.wei",
        "close",
        "case opened",
        {"from": "verified", "to": "closed", "disposal": {"case_number": "C-1"}},
    ),
]

OLD_ROW = {
    "state": "closed",
    "activity": "resolved",
    "suppressed": {},
    "escalation": 1,
    "handling": {
        "dispatch": {"team": "T", "inspector": "wang.fang", "due": "2026-11-27", "visit": "v-1"},
        "verification": {"finding": "violation_confirmed", "evidence": []},
        "disposal": {"case_number": "C-1"},
    },
    "evidence": [],
}


def _old_chain(
    life: list[tuple[str, str, str, dict[str, Any]]] = OLD_LIFE,
) -> tuple[list[AuditEntry], list[EventRow]]:
    entries, events = [], []
    prev_seq, prev_hash = 0, "0" * 64
    for i, (actor, action, note, data) in enumerate(life):
        at = T0 + i * M
        e = make_entry(prev_seq, prev_hash, actor, action, "alert:1", {"note": note, **data}, at)
        entries.append(e)
        events.append(EventRow(i + 1, 1, to_epoch_ms(at), actor, action, note, data))
        prev_seq, prev_hash = e.seq, e.hash
    return entries, events


def test_an_old_chain_replays_to_its_row_without_findings() -> None:
    entries, events = _old_chain()
    # Evidence is not in the old entries: the replay says nothing of it.
    assert replay(entries).values == {k: v for k, v in OLD_ROW.items() if k != "evidence"}
    assert compare_alert(1, AlertRow(1, OLD_ROW), events, entries) == []


def test_an_old_chain_still_catches_edits_with_the_entry() -> None:
    entries, events = _old_chain()
    row = AlertRow(1, {**OLD_ROW, "state": "verified"})
    ((finding,),) = [compare_alert(1, row, events, entries)]
    assert finding.seq == entries[-1].seq and "state is" in finding.what
    # An escalation deleted from the history: the entry without its event.
    without = [ev for ev in events if ev.action != "escalated"]
    ((finding,),) = [compare_alert(1, AlertRow(1, OLD_ROW), without, entries)]
    assert finding.seq == entries[6].seq and "escalated by 'escalation'" in finding.what
    # Who verified, changed: paired by content in order, reported on its entry.
    changed = [replace(ev, actor="mallory") if ev.action == "verify" else ev for ev in events]
    ((finding,),) = [compare_alert(1, AlertRow(1, OLD_ROW), changed, entries)]
    assert finding.seq == entries[7].seq
    assert 'actor is "mallory", the chain says "wang.fang"' in finding.what
    # An event nobody recorded.
    added = [*events, EventRow(99, 1, to_epoch_ms(T0), "mallory", "comment", "x", {})]
    ((finding,),) = [compare_alert(1, AlertRow(1, OLD_ROW), added, entries)]
    assert finding.seq is None and "event 99 (comment by 'mallory') has no audit entry" in str(
        finding
    )


def test_alerts_the_chain_never_saw_or_no_longer_finds() -> None:
    entries, _ = _old_chain()
    (found,) = compare_alert(2, AlertRow(2, OLD_ROW), [], [])
    assert found.seq is None and "never recorded" in found.what
    (found,) = compare_alert(1, None, [], entries)
    assert found.seq == entries[0].seq and "deleted" in found.what


def test_subjects() -> None:
    assert subject_alert("alert:42") == 42
    for bad in ("alert:", "alert:x", "silence:4", "alert:٤", "alert:" + "9" * 19):
        assert subject_alert(bad) is None


# -- the whole check, through the store, on both backends ---------------------------------------


@pytest.fixture
def pipeline(backend: str) -> Iterator[AlertPipeline]:
    p = build_alert_pipeline(backend, AlertsSettings(), clock=ManualClock(T0))
    yield p
    p.close()


def test_entries_carry_their_event_and_the_row_after_it(pipeline: AlertPipeline) -> None:
    store = pipeline.store
    (a,) = pipeline.apply([signal()])
    store.transition(a.id, "ack", "li.wei", "looking")
    opened, ack = store.audit.entries(subject=f"alert:{a.id}")
    events = store.events(a.id)
    assert (opened.data["event_id"], ack.data["event_id"]) == (events[0].id, events[1].id)
    assert opened.data["after"]["site"] == "yc-aq-1" and opened.data["after"]["state"] == "new"
    assert ack.data["after"]["state"] == "acknowledged" and "site" not in ack.data["after"]
    # The timeline pairs them by that id.
    assert [s["audit"]["seq"] for s in store.timeline(a.id)] == [opened.seq, ack.seq]
    with pytest.raises(ValueError, match="event_id"):
        store.record(a.id, "x", "comment", "", {"event_id": 1})


def test_a_clean_queue_verifies_and_a_moved_alert_is_caught(
    pipeline: AlertPipeline, backend: str
) -> None:
    store = pipeline.store
    (a,) = pipeline.apply([signal()])
    store.transition(a.id, "ack", "li.wei", "looking")
    report = verify_trail(store.db)
    assert report.ok and report.alerts == 1 and report.events == 2, report.lines()
    # The alert moved to another department, out of its officers' sight.
    sql = "UPDATE alerts SET department = 'transport' WHERE id = %s"
    if backend.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(backend, autocommit=True) as evil:
            evil.execute(sql, (a.id,))
    else:
        evil = sqlite3.connect(backend, isolation_level=None)
        evil.execute(sql.replace("%s", "?"), (a.id,))
        evil.close()
    report = verify_trail(store.db)
    (finding,) = report.findings
    opened = store.audit.entries(subject=f"alert:{a.id}")[0]
    assert (finding.alert_id, finding.seq) == (a.id, opened.seq)
    assert finding.what == 'department is "transport", the chain says "env"'
    assert report.lines()[-2:] == [
        "queue differs from the chain: 1 finding(s) in 1 alert(s)",
        f"  alert {a.id} (audit entry seq {opened.seq}): {finding.what}",
    ]


def test_an_old_chain_then_new_entries_verify_clean() -> None:
    """A queue upgraded in place: the old entries replay, the new ones carry the row."""
    entries, events = _old_chain(OLD_LIFE[:4])
    row = {**OLD_ROW, "state": "acknowledged", "activity": "firing", "escalation": 0}
    row["handling"] = {}
    assert compare_alert(1, AlertRow(1, row), events, entries) == []
    after = {**row, "state": "closed", "handling": {"disposal": {"desk": True}}}
    last = entries[-1]
    new = make_entry(
        last.seq,
        last.hash,
        "li.wei",
        "close",
        "alert:1",
        {
            "note": "false alarm",
            "from": "acknowledged",
            "to": "closed",
            "disposal": {"desk": True},
            "event_id": 5,
            "after": after,
        },
        T0 + 10 * M,
    )
    ev = EventRow(
        5,
        1,
        to_epoch_ms(T0 + 10 * M),
        "li.wei",
        "close",
        "false alarm",
        {"from": "acknowledged", "to": "closed", "disposal": {"desk": True}},
    )
    assert compare_alert(1, AlertRow(1, after), [*events, ev], [*entries, new]) == []
    (f,) = compare_alert(1, AlertRow(1, {**after, "state": "new"}), [*events, ev], [*entries, new])
    assert f.seq == new.seq and f.what == 'state is "new", the chain says "closed"'


def test_after_snapshot_keeps_unreadable_columns_when_not_strict() -> None:
    row = {
        "state": "new",
        "activity": "firing",
        "suppressed": "not json",
        "escalation": "x",
        "handling": "{}",
        "evidence": "[]",
    }
    with pytest.raises(ValueError):
        after_snapshot(row)
    snap = after_snapshot(row, strict=False)
    assert snap["suppressed"] == "not json" and snap["escalation"] == "x"
    assert json.dumps(snap)
