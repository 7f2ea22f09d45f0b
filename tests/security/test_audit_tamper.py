"""The audit trail proves the queue: tampering with the database is caught by ``audit verify``.

On SQLite and PostgreSQL, a realistic queue (raised, acknowledged, dispatched, verified, closed,
reopened, silenced, inhibited, escalated, a joint visit) is edited as an operator with the
database would: the chain rewritten with every later hash recomputed, the anchor rewritten with
it (unsigned, or signed with another key), ``alerts`` and ``alert_events`` edited directly.
Each edit is caught, with the alert and the audit entry; the untouched queue verifies clean.

The anchor the chain is checked against is the one ingest's scheduler signed and the outbox
sent to a real HTTP receiver standing in for the provincial hub: the copy the operator cannot
reach, read back by ``farsight audit verify --anchor FILE`` as it was received.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from alerts.anchor_sign import (
    generate_key,
    load_public_key,
    load_signing_key,
    sign_anchor,
)
from alerts.anchoring import AnchorScheduler
from alerts.audit import Anchor, entry_hash, hashed_fields, ms_to_at, read_anchor, write_anchor
from alerts.audit_trail import TrailReport, verify_trail
from alerts.joint import dispatch_visit
from alerts.outbox import ANCHOR_LANE, OutboxSender, anchor_key
from alerts.pipeline import AlertPipeline, build_alert_pipeline
from farsight.clock import ManualClock
from farsight.db import to_pyformat
from farsight.settings import AlertsSettings, UpstreamSettings
from tests.alerts.receiver import Receiver
from tests.conftest import wait_until
from tests.factories import ENTITY, T0, signal

ROOT = Path(__file__).resolve().parents[2]
H = timedelta(hours=1)
EVIDENCE = "ab" * 32
SOURCE = "test-province"


class Evil:
    """A connection of the operator's own, outside Farsight, that edits tables directly."""

    def __init__(self, target: str) -> None:
        self.postgres = target.startswith("postgresql://")
        if self.postgres:
            import psycopg

            self.conn: Any = psycopg.connect(target, autocommit=True)
        else:
            self.conn = sqlite3.connect(target, isolation_level=None)

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(to_pyformat(sql) if self.postgres else sql, params)
        return list(cur.fetchall()) if cur.description else []

    def unlock_audit_log(self) -> None:
        """Lift the append-only triggers, as someone with the database can."""
        if self.postgres:
            self.run("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            for t in ("audit_log_no_update", "audit_log_no_delete", "audit_log_append_only"):
                self.run(f"DROP TRIGGER IF EXISTS {t}")

    def rewrite_entry(self, seq: int, **changes: Any) -> None:
        """Edit entry ``seq`` (actor, data) and recompute every hash from it to the head."""
        self.unlock_audit_log()
        rows = self.run(
            "SELECT seq, at, actor, action, subject, data, prev_hash FROM audit_log"
            " WHERE seq >= ? ORDER BY seq",
            (seq,),
        )
        prev = rows[0][6]
        for s, at, actor, action, subject, data, _ in rows:
            doc = json.loads(data)
            if s == seq:
                actor = changes.get("actor", actor)
                doc = changes.get("data", doc)
            text = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            h = entry_hash(prev, hashed_fields(s, ms_to_at(at), actor, action, subject, doc))
            self.run(
                "UPDATE audit_log SET actor = ?, data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (actor, text, prev, h, s),
            )
            prev = h

    def close(self) -> None:
        self.conn.close()


@dataclass
class Queue:
    """A queue after a realistic day of work, its signing key, and the anchor upstream kept."""

    target: str
    pipeline: AlertPipeline
    ids: dict[str, int]
    key_file: Path
    public_key_file: Path
    anchor_file: Path
    receiver: Receiver

    def verify(self, anchor: Anchor | None = None) -> TrailReport:
        return verify_trail(self.pipeline.store.db, anchor, load_public_key(self.public_key_file))

    def entry_seq(self, alert: str, action: str) -> int:
        """The seq of the alert's (last) audit entry of ``action``."""
        entries = self.pipeline.store.audit.entries(subject=f"alert:{self.ids[alert]}")
        return [e.seq for e in entries if e.action == action][-1]

    def event_id(self, alert: str, action: str) -> int:
        return [e.id for e in self.pipeline.store.events(self.ids[alert]) if e.action == action][-1]


def _workflow(p: AlertPipeline, clock: ManualClock) -> dict[str, int]:
    """A day of the risk queue, through the same pipeline ingest and the hub use."""
    store = p.store
    from dataclasses import replace as _with

    (a,) = p.apply([signal(fingerprint="a")])
    (b,) = p.apply([signal(fingerprint="b", site="yc-stack-1")])
    (w,) = p.apply([signal(fingerprint="w", site="xg-wim-1", department="transport")])
    (e,) = p.apply([signal(fingerprint="e", site="yc-stack-1")])
    j1, j2 = p.apply([signal(fingerprint="j1"), signal(fingerprint="j2")])
    # Whole-site offline (the default inhibit rule): b, e and the stack's alerts are inhibited,
    # then released when the site is back.
    offline = _with(signal(fingerprint="off", site="yc-stack-1"), rule_id="site-offline")
    offline = _with(offline, device="")
    (off,) = [x for x in p.apply([offline]) if x.rule_id == "site-offline"]
    clock.advance(timedelta(minutes=5))
    p.apply([_with(offline, status="resolved", ts=T0 + timedelta(minutes=5))])
    # A: the whole handling workflow, reopened once.
    store.transition(a.id, "ack", "li.wei", "looking at the data")
    store.transition(
        a.id,
        "dispatch",
        "li.wei",
        "send a team",
        {"team": "Xiling 2", "inspector": "wang.fang", "due": "2026-11-27"},
    )
    clock.advance(H)
    store.transition(
        a.id,
        "verify",
        "wang.fang",
        "exceedance confirmed on site",
        {"finding": "violation_confirmed", "evidence": [EVIDENCE]},
    )
    store.transition(a.id, "close", "li.wei", "case opened", {"case_number": "YC-2026-118"})
    store.transition(a.id, "reopen", "zhao.min", "the penalty was appealed")
    store.transition(a.id, "comment", "zhao.min", "appeal hearing on Monday")
    store.transition(a.id, "close", "zhao.min", "appeal rejected", {"case_number": "YC-2026-118"})
    # W: silenced by a person, then the silence expired early.
    s = p.silences.create({"site": "xg-wim-1"}, None, clock.now() + H, "scale calibration", "bob")
    p.mute.tick()
    clock.advance(timedelta(minutes=10))
    p.silences.expire(s.id, "bob")
    p.mute.tick()
    # E: nobody acknowledges it; escalated on the engine's clock.
    p.escalator.tick(T0 + 6 * H)
    # J1, J2: one joint visit to the same operator.
    dispatch_visit(
        store, ENTITY, [j1.id, j2.id], "li.wei", "one trip", "Xiling 1", "wang.fang", "2026-11-28"
    )
    return {"a": a.id, "b": b.id, "w": w.id, "e": e.id, "j1": j1.id, "off": off.id}


@pytest.fixture
def queue(backend: str, tmp_path: Path) -> Iterator[Queue]:
    clock = ManualClock(T0)
    settings = AlertsSettings(upstream=UpstreamSettings(source=SOURCE))
    pipeline = build_alert_pipeline(backend, settings, clock=clock)
    ids = _workflow(pipeline, clock)
    key_file = tmp_path / "keys" / "anchor.key"
    public_key_file, _ = generate_key(key_file)
    # Ingest's scheduler signs the head and queues it; the hub's sender delivers it upstream.
    scheduler = AnchorScheduler(backend, load_signing_key(key_file), SOURCE, every_s=300)
    with Receiver() as receiver:
        try:
            anchor = scheduler.anchor_once(clock.now())
            assert anchor is not None and anchor.seq == pipeline.store.audit.head()[0]
            sender = OutboxSender(backend, UpstreamSettings(url=receiver.url, source=SOURCE))
            try:
                while sender.run_once()["claimed"]:
                    pass
            finally:
                sender.close()
        finally:
            scheduler.stop()
        kept = receiver.accepted[anchor_key(SOURCE, anchor.seq)]
        anchor_file = tmp_path / "from-upstream.json"
        anchor_file.write_text(json.dumps(kept), encoding="utf-8")
        yield Queue(
            backend, pipeline, ids, key_file, public_key_file, anchor_file, receiver=receiver
        )
    pipeline.close()


def _findings(report: TrailReport) -> list[tuple[int, int | None, str]]:
    return [(f.alert_id, f.seq, f.what) for f in report.findings]


def run_verify(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARSIGHT")}
    return subprocess.run(
        [sys.executable, "-m", "app", "audit", "verify", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_realistic_queue_verifies_clean(queue: Queue) -> None:
    anchor = read_anchor(queue.anchor_file)
    report = queue.verify(anchor)
    assert report.ok, "\n".join(report.lines())
    assert report.findings == () and report.alerts == 7 and report.events >= 30
    store = queue.pipeline.store
    # The workflow did what it says: nothing here verifies an empty queue.
    actions = {e.action for aid in queue.ids.values() for e in store.events(aid)}
    assert {
        "opened",
        "ack",
        "dispatch",
        "verify",
        "close",
        "reopen",
        "comment",
        "inhibited",
        "uninhibited",
        "silenced",
        "unsilenced",
        "escalated",
        "joint_visit",
        "resolved",
    } <= actions
    done = run_verify(
        "--db",
        queue.target,
        "--anchor",
        str(queue.anchor_file),
        "--public-key",
        str(queue.public_key_file),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("audit chain ok")
    assert lines[1].startswith(f"anchor signature ok: seq {anchor.seq}") and SOURCE in lines[1]
    assert lines[2] == f"queue ok: 7 alerts and {report.events} events are what the chain recorded"


def test_a_rewritten_chain_is_caught_against_the_anchor_upstream_kept(queue: Queue) -> None:
    """Who acknowledged alert A is rewritten in the event and in the chain, every later hash
    recomputed: the tables and the chain agree again, and only the signed copy upstream
    tells."""
    seq = queue.entry_seq("a", "ack")
    evil = Evil(queue.target)
    evil.run(
        "UPDATE alert_events SET actor = 'mallory' WHERE id = ?", (queue.event_id("a", "ack"),)
    )
    (entry,) = queue.pipeline.store.audit.entries(after_seq=seq - 1, limit=1)
    evil.rewrite_entry(seq, actor="mallory")
    evil.close()
    assert queue.verify().ok, "without the anchor the rewrite is consistent"
    assert entry.actor == "li.wei"
    report = queue.verify(read_anchor(queue.anchor_file))
    assert not report.ok and not report.chain.ok
    anchor = read_anchor(queue.anchor_file)
    assert report.chain.first_bad_seq == anchor.seq and "anchor mismatch" in report.chain.reason
    done = run_verify(
        "--db",
        queue.target,
        "--anchor",
        str(queue.anchor_file),
        "--public-key",
        str(queue.public_key_file),
    )
    assert done.returncode == 1
    assert done.stdout.startswith(f"audit chain broken at seq {anchor.seq}: anchor mismatch")


def test_a_rewritten_anchor_is_refused_unsigned_or_signed_with_another_key(
    queue: Queue, tmp_path: Path
) -> None:
    evil = Evil(queue.target)
    evil.run(
        "UPDATE alert_events SET actor = 'mallory' WHERE id = ?", (queue.event_id("a", "ack"),)
    )
    evil.rewrite_entry(queue.entry_seq("a", "ack"), actor="mallory")
    head = evil.run("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")[0]
    evil.close()
    genuine = read_anchor(queue.anchor_file)
    forged = Anchor(seq=head[0], hash=head[1], at=genuine.at, entries=head[0], source=SOURCE)
    assert forged.hash != genuine.hash
    mallory = Ed25519PrivateKey.generate()
    cases = {
        "unsigned": (forged, "the anchor is not signed"),
        "another key": (sign_anchor(forged, mallory), "not by the trusted key"),
        # Signed by another key under the trusted key's id: the signature does not verify.
        "forged key id": (
            replace(sign_anchor(forged, mallory), key_id=genuine.key_id),
            "does not verify",
        ),
        # The genuine signature moved onto the rewritten head.
        "moved signature": (
            replace(forged, key_id=genuine.key_id, signature=genuine.signature),
            "does not verify",
        ),
    }
    for name, (anchor, reason) in cases.items():
        report = queue.verify(anchor)
        assert report.chain.ok, f"{name}: the forged anchor matches the rewritten chain"
        assert not report.ok and reason in report.anchor_problem, (name, report.anchor_problem)
        path = tmp_path / f"{name}.json"
        write_anchor(path, anchor)
        done = run_verify(
            "--db", queue.target, "--anchor", str(path), "--public-key", str(queue.public_key_file)
        )
        assert done.returncode == 1, name
        assert "anchor refused: " in done.stdout and reason in done.stdout, done.stdout


def test_closing_an_alert_in_the_table_is_caught(queue: Queue) -> None:
    evil = Evil(queue.target)
    evil.run("UPDATE alerts SET state = 'closed' WHERE id = ?", (queue.ids["e"],))
    evil.close()
    report = queue.verify()
    assert not report.ok and report.chain.ok
    assert _findings(report) == [
        (
            queue.ids["e"],
            queue.entry_seq("e", "opened"),
            'state is "closed", the chain says "new"',
        )
    ]


def test_changing_who_acted_in_the_alert_is_caught(queue: Queue) -> None:
    """The inspector of A's dispatch, kept in its handling record, is changed."""
    store = queue.pipeline.store
    handling = dict(store.get(queue.ids["a"]).handling or {})
    handling["dispatch"] = {**handling["dispatch"], "inspector": "mallory"}
    evil = Evil(queue.target)
    evil.run("UPDATE alerts SET handling = ? WHERE id = ?", (json.dumps(handling), queue.ids["a"]))
    evil.close()
    report = queue.verify()
    ((alert_id, seq, what),) = _findings(report)
    assert alert_id == queue.ids["a"] and seq == queue.entry_seq("a", "dispatch")
    assert what.startswith("handling.dispatch is") and "mallory" in what and "wang.fang" in what


def test_deleting_an_escalation_is_caught(queue: Queue) -> None:
    evil = Evil(queue.target)
    evil.run("DELETE FROM alert_events WHERE id = ?", (queue.event_id("e", "escalated"),))
    evil.close()
    report = queue.verify()
    ((alert_id, seq, what),) = _findings(report)
    assert alert_id == queue.ids["e"] and seq == queue.entry_seq("e", "escalated")
    assert "escalated by 'escalation'" in what and "missing from alert_events" in what


def test_changing_who_acted_in_an_event_is_caught(queue: Queue) -> None:
    evil = Evil(queue.target)
    evil.run(
        "UPDATE alert_events SET actor = 'mallory' WHERE id = ?", (queue.event_id("a", "verify"),)
    )
    evil.close()
    report = queue.verify()
    ((alert_id, seq, what),) = _findings(report)
    assert alert_id == queue.ids["a"] and seq == queue.entry_seq("a", "verify")
    assert 'actor is "mallory", the chain says "wang.fang"' in what
    done = run_verify("--db", queue.target)
    assert done.returncode == 1
    assert f"alert {alert_id} (audit entry seq {seq}): event" in done.stdout


def test_an_added_event_and_a_deleted_alert_are_caught(queue: Queue) -> None:
    evil = Evil(queue.target)
    evil.run(
        "INSERT INTO alert_events (alert_id, at, actor, action, note, data)"
        " VALUES (?, 0, 'mallory', 'comment', 'nothing to see', '{}')",
        (queue.ids["w"],),
    )
    # Deleting an alert takes its events and its outbox rows first (foreign keys).
    evil.run("DELETE FROM alert_events WHERE alert_id = ?", (queue.ids["b"],))
    evil.run("DELETE FROM alerts WHERE id = ?", (queue.ids["b"],))
    evil.close()
    report = queue.verify()
    found = _findings(report)
    added = [f for f in found if f[0] == queue.ids["w"]]
    assert len(added) == 1 and added[0][1] is None and "has no audit entry" in added[0][2]
    deleted = [f for f in found if f[0] == queue.ids["b"]]
    assert deleted[0][1] == queue.entry_seq("b", "opened") and "deleted" in deleted[0][2]


def test_ingest_anchors_the_chain_on_its_schedule(mosquitto: Any, tmp_path: Path) -> None:
    """`farsight ingest` (the process that writes the queue) signs the chain's head every
    alerts.anchor_every_s and queues it for the upstream hub."""
    from app.roles.ingest import IngestService
    from farsight.settings import Settings
    from tests.factories import registry

    key_file = tmp_path / "anchor.key"
    public_key_file, _ = generate_key(key_file)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / "var"),
            "broker": {"host": mosquitto.host, "port": mosquitto.port, "embedded": "none"},
            "ingest": {"client_id": "test-ingest-anchors"},
            "alerts": {
                "anchor_every_s": 0.2,
                "anchor_key_file": str(key_file),
                "upstream": {"source": SOURCE},
            },
        }
    )
    svc = IngestService(settings, registry())
    assert isinstance(svc.anchors, AnchorScheduler)
    svc.start()
    try:
        outbox = svc.alert_pipeline.outbox
        svc.alert_pipeline.apply([signal()])
        head = svc.alerts.audit.head()
        wait_until(
            lambda: any(r["event_id"] == head[0] for r in outbox.rows(ANCHOR_LANE)),
            what="an anchor of the head in the outbox",
        )
        (row,) = [r for r in outbox.rows(ANCHOR_LANE) if r["event_id"] == head[0]]
        anchor = Anchor.from_json(json.loads(row["payload"]))
        assert (anchor.seq, anchor.hash, anchor.source) == (head[0], head[1], SOURCE)
        assert row["key"] == anchor_key(SOURCE, head[0])
        report = verify_trail(svc.alerts.db, anchor, load_public_key(public_key_file))
        assert report.ok, report.lines()
    finally:
        svc.stop()
