"""Anchors on a schedule: ingest's scheduler signs the chain's head and the outbox delivers it
to a real HTTP receiver standing in for the provincial hub; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from alerts.anchor_sign import anchor_problem
from alerts.anchoring import AnchorScheduler
from alerts.audit import Anchor
from alerts.outbox import ANCHOR_LANE, SenderPool, anchor_key
from alerts.pipeline import AlertPipeline, build_alert_pipeline
from farsight.clock import ManualClock
from farsight.settings import AlertsSettings, UpstreamSettings
from tests.alerts.receiver import Receiver
from tests.conftest import wait_until
from tests.factories import T0, signal

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "alerts/schemas/upstream-anchor.schema.json").read_text(
        encoding="utf-8"
    )
)


@pytest.fixture
def pipeline(backend: str) -> Iterator[AlertPipeline]:
    p = build_alert_pipeline(backend, AlertsSettings(), clock=ManualClock(T0))
    yield p
    p.close()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_anchors_are_made_on_a_schedule_and_kept_upstream(
    pipeline: AlertPipeline, backend: str, key: Ed25519PrivateKey
) -> None:
    (a,) = pipeline.apply([signal()])
    pipeline.store.transition(a.id, "ack", "li.wei", "looking")
    scheduler = AnchorScheduler(backend, key, "hubei", every_s=0.05)
    with Receiver() as receiver:
        pool = SenderPool(
            backend,
            UpstreamSettings(url=receiver.url, source="hubei", poll_s=0.05),
        ).start()
        scheduler.start()
        try:
            first = anchor_key("hubei", 2)
            wait_until(lambda: first in set(receiver.keys()), what="the first anchor upstream")
            # The chain grows: the next anchor follows; an unchanged head is not anchored again.
            pipeline.store.transition(a.id, "comment", "li.wei", "still looking")
            second = anchor_key("hubei", 3)
            wait_until(lambda: second in set(receiver.keys()), what="the next anchor upstream")
            # The comment's event travels in its alert's lane, not behind the anchor: wait for it
            # too before stopping the senders (under load it can arrive after the anchor).
            wait_until(lambda: len(receiver.keys()) == 2 + 3, what="the alert's three events")
        finally:
            scheduler.stop()
            pool.stop()
        kept = receiver.keys()
        anchors = [k for k in kept if ":anchor:" in k]
        assert anchors == [first, second]
        # The alert events went the same way, in their own lanes.
        assert len(kept) == 2 + 3
        for payload in (receiver.accepted[k] for k in anchors):
            jsonschema.validate(payload, SCHEMA)
            anchor = Anchor.from_json(payload)
            assert anchor.source == "hubei" and anchor_problem(anchor, key.public_key()) == ""
        assert Anchor.from_json(receiver.accepted[second]).hash == pipeline.store.audit.head()[1]
    rows = pipeline.outbox.rows(ANCHOR_LANE)
    assert [r["status"] for r in rows] == ["sent", "sent"]


def test_a_broken_chain_is_not_anchored(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    db = tmp_path / "farsight.db"
    p = build_alert_pipeline(db, AlertsSettings(), clock=ManualClock(T0))
    (a,) = p.apply([signal()])
    scheduler = AnchorScheduler(db, key, "hubei", every_s=60)
    try:
        first = scheduler.anchor_once()
        assert first is not None and first.seq == 1
        assert scheduler.anchor_once() is None, "nothing new"
        p.store.transition(a.id, "ack", "li.wei", "looking")
        evil = sqlite3.connect(db, isolation_level=None)
        evil.execute("DROP TRIGGER audit_log_no_update")
        evil.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        evil.close()
        assert scheduler.anchor_once() is None
        assert [r["event_id"] for r in p.outbox.rows(ANCHOR_LANE)] == [1]
        # A fresh scheduler walks the whole chain and refuses it too.
        fresh = AnchorScheduler(db, key, "hubei", every_s=60)
        assert fresh.anchor_once() is None
        fresh.stop()
    finally:
        scheduler.stop()
        p.close()
