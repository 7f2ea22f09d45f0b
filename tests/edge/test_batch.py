"""Batch signing and the hub's verification: tampering, wrong keys, replays, redeliveries."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path

import pytest

from edge.batch import BatchMessage, decode_batch, encode_batch
from farsight.clock import to_epoch_ms
from farsight.db import Database
from ingest.edge_batches import BatchError, EdgeBatchDecoder
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from tests.factories import T0, registry

KEY = bytes.fromhex(secrets.token_hex(32))
MSGS = [
    BatchMessage(
        "fs/v1/env/yc-aq-1/aq1/reading", b'{"ts": 1764000000000, "metrics": {"pm25": 1}}', 1, False
    ),
    BatchMessage("fs/v1/env/yc-stack-1/cems1/hj212", b"\xff\x00binary", 2, True),
]


def _batch(seq: int, key: bytes = KEY, gateway: str = "gw-1") -> bytes:
    return encode_batch(gateway, seq, MSGS, key, 1000, {"dropped": 2})


def test_a_signed_batch_round_trips() -> None:
    b = decode_batch(_batch(7), KEY)
    assert (b.gateway, b.seq, b.sent_ms, dict(b.loss)) == ("gw-1", 7, 1000, {"dropped": 2})
    assert list(b.messages) == MSGS


@pytest.mark.parametrize("field,value", [("seq", 8), ("gateway", "gw-2"), ("sent", 1)])
def test_changing_any_field_breaks_the_mac(field: str, value: object) -> None:
    doc = json.loads(_batch(7))
    doc[field] = value
    with pytest.raises(BatchError) as e:
        decode_batch(json.dumps(doc).encode(), KEY)
    assert e.value.reason == "bad_hmac"


def test_changing_a_payload_breaks_the_mac_and_another_key_does_not_verify() -> None:
    doc = json.loads(_batch(7))
    doc["messages"][0]["text"] = doc["messages"][0]["text"].replace('"pm25": 1', '"pm25": 9')
    with pytest.raises(BatchError, match="bad_hmac"):
        decode_batch(json.dumps(doc).encode(), KEY)
    with pytest.raises(BatchError, match="bad_hmac"):
        decode_batch(_batch(7), bytes.fromhex(secrets.token_hex(32)))
    with pytest.raises(BatchError, match="bad_batch"):
        decode_batch(b"not json", KEY)


def _msg(payload: bytes, gateway: str = "gw-1") -> Message:
    return Message(f"fs/v1/gw/{gateway}/batch", payload)


def test_the_hub_refuses_replays_and_ignores_redeliveries(tmp_path: Path) -> None:
    dec = EdgeBatchDecoder(tmp_path / "hub.db", {"gw-1": KEY})
    first = dec.expand([_msg(_batch(1)), _msg(_batch(2))])
    assert len(first.messages) == 4 and not first.dead
    assert [m.backfilled for m in first.messages] == [False, True, False, True]
    dec.commit(first)
    again = dec.expand([_msg(_batch(2))])  # the broker redelivers what the hub had not acknowledged
    assert again.messages == [] and again.dead == [] and again.duplicates == {"gw-1": 1}
    dec.commit(again)
    replay = encode_batch("gw-1", 2, MSGS[:1], KEY, 2000)  # same seq, other content: a replay
    out = dec.expand(
        [
            _msg(replay),
            _msg(_batch(1)[:-5] + b'"}'),
            _msg(_batch(3), "gw-9"),
            _msg(_batch(4, gateway="gw-1"), "gw-1"),
        ]
    )
    reasons = [d.reason for d in out.dead]
    assert reasons == ["replayed_batch", "bad_batch", "unknown_gateway"]
    assert len(out.messages) == 2  # batch 4 is fine
    g = dec.gateways()
    assert g[0]["last_seq"] == 2 and g[0]["lost_dropped"] == 2 and g[0]["duplicates"] == 1


def test_a_batch_on_another_gateways_topic_is_refused(tmp_path: Path) -> None:
    dec = EdgeBatchDecoder(tmp_path / "hub.db", {"gw-1": KEY, "gw-2": KEY})
    out = dec.expand([_msg(_batch(1, gateway="gw-1"), "gw-2")])
    assert [d.reason for d in out.dead] == ["gateway_mismatch"]


def test_a_gateway_forwards_only_for_the_sites_assigned_to_it(tmp_path: Path) -> None:
    assigned = {"gw-1": frozenset({"yc-aq-1"}), "gw-2": frozenset()}
    dec = EdgeBatchDecoder(
        tmp_path / "hub.db",
        {"gw-1": KEY, "gw-2": KEY},
        assigned_sites=lambda gw: assigned.get(gw, frozenset()),
    )
    out = dec.expand([_msg(_batch(1))])
    # The reading of its own site passes; the stack's frame is refused on its own, with why.
    assert [m.topic for m in out.messages] == [MSGS[0].topic]
    assert [(d.reason, d.topic) for d in out.dead] == [("foreign_site", MSGS[1].topic)]
    assert "'yc-stack-1' is not one of the gateway's sites (yc-aq-1)" in out.dead[0].detail
    assert out.accepted and out.accepted[0][0].seq == 1  # the batch itself is accepted
    none = dec.expand([_msg(_batch(1, gateway="gw-2"), "gw-2")])
    assert [d.reason for d in none.dead] == ["foreign_site", "foreign_site"]
    assert "no sites are assigned to gateway gw-2" in none.dead[0].detail


def test_readings_a_gateway_held_back_are_stored_with_the_hubs_receipt_of_the_batch(
    tmp_path: Path,
) -> None:
    # The gateway was cut off for two hours, then forwarded what it held (backfilled) with a
    # fresh reading. Both reached the platform when the hub received the batch: timeliness shows
    # the held one two hours late, the fresh one seconds, whenever the batch is stored.
    db = Database.open(tmp_path / "hub.db")
    store = ReadingStore(db)
    pipe = IngestPipeline(registry(), store, edge=EdgeBatchDecoder(db, {"gw-1": KEY}))
    arrived = T0 + timedelta(hours=2)

    def reading(ts: str, seq: int, backfilled: bool) -> BatchMessage:
        body = json.dumps({"ts": ts, "metrics": {"pm25": 12.0}}).encode()
        return BatchMessage("fs/v1/env/yc-aq-1/aq1/reading", body, seq, backfilled)

    held = reading(T0.isoformat(), 1, True)
    fresh = reading((arrived - timedelta(seconds=5)).isoformat(), 2, False)
    batch = encode_batch("gw-1", 1, [held, fresh], KEY, to_epoch_ms(arrived))
    result = pipe.process([Message("fs/v1/gw/gw-1/batch", batch, arrived)])
    assert (result.stored, result.rejected) == (2, 0)
    rows = db.query("SELECT ts, received FROM readings ORDER BY ts")
    assert [r["received"] for r in rows] == [to_epoch_ms(arrived)] * 2
    assert [r["received"] - r["ts"] for r in rows] == [2 * 3_600_000, 5_000]
    store.close()
