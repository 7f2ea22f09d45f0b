"""Dead-lettered gateway batches replayed by `farsight deadletters replay`, over a real mosquitto.

The hub had a gateway's key wrong, so its batches were refused (``bad_hmac``); once the key is
fixed, later batches move the gateway's sequence past the refused ones. Replayed, the refused
batches are verified again as live ones are (MAC under the current key, the gateway's sites) but
not against the sequence: their readings are stored once, a message for a site not the gateway's
stays refused, a batch signed with a key since rotated is not replayed and says why, a second
replay stores nothing, and the gateway's live sequence state is untouched.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from app.cli import main as farsight
from edge.batch import BatchMessage, encode_batch
from farsight.broker import MosquittoBroker
from ingest.store import ReadingStore
from tests.conftest import wait_until
from tests.edge.conftest import Hub
from tests.factories import T0, registry_doc

pytestmark = pytest.mark.e2e

GW = "gw-test"  # the test registry assigns it yc-aq-1 and yc-stack-1


def aq(minute: int) -> BatchMessage:
    body = {"ts": (T0 + timedelta(minutes=minute)).isoformat(), "metrics": {"pm25": 30 + minute}}
    return BatchMessage("fs/v1/env/yc-aq-1/aq1/reading", json.dumps(body).encode(), minute, True)


FOREIGN = BatchMessage(
    "fs/v1/transport/xg-wim-1/wim1/reading",
    json.dumps({"ts": T0.isoformat(), "metrics": {"gross_weight": 49.0, "axles": 6}}).encode(),
    0,
)
"""A weigh station's reading: not one of the gateway's sites."""


def publish(broker: MosquittoBroker, payloads: list[bytes]) -> None:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"gw-{secrets.token_hex(4)}"
    )
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for p in payloads:
            info = client.publish(f"fs/v1/gw/{GW}/batch", p, qos=1)
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def replay(db: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> dict[int, dict]:
    sites = db.parent / "sites.yaml"
    sites.write_text(yaml.safe_dump(registry_doc(), allow_unicode=True), encoding="utf-8")
    command = ["deadletters", "replay", "--db", str(db), "--registry", str(sites), "--json"]
    assert farsight([*command, *extra]) == 0
    return {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}


def test_refused_batches_are_replayed_once_verified_whatever_the_sequence_since(
    central_broker: MosquittoBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real, wrong, rotated = (bytes.fromhex(secrets.token_hex(32)) for _ in range(3))
    d = tmp_path / "hub"
    d.mkdir()
    hub = Hub(central_broker, d, {GW: wrong.hex()}).start()  # the hub's key was mistyped
    try:
        publish(
            central_broker,
            [
                encode_batch(GW, 1, [aq(0), aq(1), aq(2)], real, 1000),
                encode_batch(GW, 2, [aq(3), FOREIGN], real, 2000),
                encode_batch(GW, 3, [aq(4)], rotated, 3000),  # signed with an old key
            ],
        )
        wait_until(lambda: len(hub.dead_letters()) == 3, what="three refused batches")
        assert {x.reason for x in hub.dead_letters()} == {"bad_hmac"} and hub.count() == 0
    finally:
        hub.stop()

    keys_file = d / "gateway-keys.yaml"
    keys_file.write_text(yaml.safe_dump({GW: real.hex()}), encoding="utf-8")
    hub = Hub(central_broker, d, {GW: real.hex()}).start()
    try:  # the key fixed, the gateway goes on: batch 7 is accepted, its sequence now 7
        publish(central_broker, [encode_batch(GW, 7, [aq(10), FOREIGN], real, 7000)])
        wait_until(lambda: hub.count() == 1, what="batch 7's reading")
        wait_until(lambda: len(hub.dead_letters()) == 4, what="batch 7's foreign message")
        assert hub.gateways()[GW]["last_seq"] == 7
        letters = {x.reason: x.id for x in hub.dead_letters() if x.reason != "bad_hmac"}
        by_seq = {
            json.loads(x.payload)["seq"]: x.id for x in hub.dead_letters() if x.reason == "bad_hmac"
        }
    finally:
        hub.stop()

    monkeypatch.setenv("FARSIGHT__DATA_DIR", str(d))
    monkeypatch.setenv("FARSIGHT__EDGE__KEYS_FILE", str(keys_file))
    db = hub.settings.database
    first = replay(db, capsys=capsys)
    assert set(first) == {*by_seq.values(), letters["foreign_site"]}
    one, two, three = (first[by_seq[s]] for s in (1, 2, 3))
    assert (one["outcome"], one["stored"], one["duplicates"]) == ("stored", 3, 0), one["detail"]
    # Batch 2's reading is stored; the weigh station's message stays refused, said per letter.
    assert (two["outcome"], two["stored"], two["reason"]) == ("failed", 1, "foreign_site")
    assert "'xg-wim-1' is not one of the gateway's sites" in two["detail"]
    assert (three["outcome"], three["reason"]) == ("failed", "bad_hmac")
    assert "key since rotated" in three["detail"] and "not replayed" in three["detail"]
    # A message a verified batch carried for another site is not stored by replaying it alone.
    foreign = first[letters["foreign_site"]]
    assert (foreign["outcome"], foreign["stored"], foreign["reason"]) == (
        "failed",
        0,
        "foreign_site",
    )

    store = ReadingStore(db)
    try:
        assert store.count(site="yc-aq-1", metric="pm25") == 5  # 0..3 and 10
        assert store.count(site="xg-wim-1") == 0
        assert store.dead_letter_count() == 4  # marked, not deleted; nothing new written
        state = store.db.query("SELECT last_seq FROM edge_gateways WHERE gateway = ?", (GW,))
        assert int(state[0][0]) == 7  # the live sequence is not moved by a replay
    finally:
        store.close()

    again = replay(db, "--all", capsys=capsys)
    assert sum(r["stored"] for r in again.values()) == 0
    assert again[by_seq[1]]["outcome"] == "duplicate"
    assert (again[by_seq[2]]["outcome"], again[by_seq[2]]["duplicates"]) == ("failed", 1)
    store = ReadingStore(db)
    try:
        assert store.count() == 5
    finally:
        store.close()
