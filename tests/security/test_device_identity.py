"""What a device or gateway says must be its own, checked by a running ingest behind the
authenticating broker: an HJ 212 frame carries its device's registered PW and MN, and a
gateway's batch carries only the sites the registry assigns to it. Refusals are dead letters
with their reason; the rest of the same traffic is stored."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from app.roles.ingest import IngestService
from edge.batch import BatchMessage, encode_batch
from farsight.broker import MosquittoBroker
from farsight.credentials import INGEST
from farsight.hj212 import build_data_frame, wrap
from farsight.settings import Settings
from tests.security.conftest import Peer, Trust, wait_for

MN = "42050000000001"
CEMS = "env/s-stack/cems1"
HJ212_TOPIC = "fs/v1/env/s-stack/cems1/hj212"
GW_KEY = secrets.token_hex(32)


@pytest.fixture
def ingest(secure_broker: MosquittoBroker, trust: Trust, tmp_path: Path) -> Iterator[IngestService]:
    """``farsight ingest``'s service as its own identity, checking PWs against the store and
    consuming gw-a's batches."""
    keys = tmp_path / "gateway-keys.yaml"
    keys.write_text(yaml.safe_dump({"gw-a": GW_KEY}), encoding="utf-8")
    keys.chmod(0o600)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / "hub"),
            "broker": {
                "host": secure_broker.host,
                "port": secure_broker.port,
                "embedded": "none",
                "username": INGEST,
                "password": trust.secrets[INGEST].password,
            },
            "ingest": {"client_id": INGEST},
            "credentials": {"store_file": str(trust.store.path)},
            "edge": {"keys_file": str(keys)},
        }
    )
    service = IngestService(settings, trust.registry)
    assert service.pipeline.passwords is not None  # the store exists: PWs are checked
    service.start()
    yield service
    service.stop()


def _frame(minute: int, pw: str | None, mn: str = MN) -> bytes:
    ts = datetime(2026, 12, 7, 8, 0, tzinfo=UTC) + timedelta(minutes=minute)
    values = {"a21026": {"Rtd": 12.5 + minute, "Flag": "N"}}
    frame = build_data_frame(mn=mn, ts=ts, values=values, pw=pw or "")
    if pw is None:  # no PW field at all: the segment framed again (length and CRC)
        return wrap(unwrap(frame).replace("PW=;", ""))
    return frame


def unwrap(frame: bytes) -> str:
    """The data segment of a frame: ``##``, four length digits, segment, CRC, CRLF."""
    return frame.decode("ascii")[6:-6]


def _reasons(service: IngestService) -> list[tuple[str, str]]:
    return sorted((d.reason, d.topic) for d in service.readings.dead_letters(limit=100))


def test_an_hj212_frame_needs_its_devices_pw_and_mn(
    ingest: IngestService, trust: Trust, peers: Callable[..., Peer]
) -> None:
    pw = trust.secrets[CEMS].hj212_pw
    assert pw, "the store gives every HJ 212 device a PW"
    wrong = "0" * len(pw) if pw != "0" * len(pw) else "1" * len(pw)
    logger = peers(CEMS).connected()  # the broker lets the device publish its own topic
    for frame in (
        _frame(0, pw),
        _frame(1, wrong),
        _frame(2, None),
        _frame(3, pw, "42059999999999"),
    ):
        assert not logger.publish(HJ212_TOPIC, frame).is_failure
    wait_for(lambda: len(_reasons(ingest)) == 3, "three dead letters")
    wait_for(lambda: ingest.readings.count() == 1, "the one good frame stored")
    assert _reasons(ingest) == [
        ("bad_password", HJ212_TOPIC),
        ("bad_password", HJ212_TOPIC),
        ("mn_mismatch", HJ212_TOPIC),
    ]
    details = [d.detail for d in ingest.readings.dead_letters(limit=100)]
    assert any("the frame has no PW" in d for d in details)
    # The reason never quotes a PW (the raw frame is kept, as every dead letter's is).
    assert not any(pw in d for d in details)
    assert not any(wrong in d for d in details if "PW" in d)
    (row,) = ingest.readings.series("s-stack", "so2", _ts(0), _ts(0))
    assert row["value"] == 12.5


def _ts(minute: int) -> datetime:
    return datetime(2026, 12, 7, 8, 0, tzinfo=UTC) + timedelta(minutes=minute)


def test_a_gateway_batch_carries_only_its_assigned_sites(
    ingest: IngestService, trust: Trust, peers: Callable[..., Peer]
) -> None:
    body = json.dumps({"ts": _ts(5).isoformat(), "metrics": {"pm25": 31}}).encode()
    own, foreign = "fs/v1/env/s-air/aq1/reading", "fs/v1/env/s-other/aq1/reading"
    batch = encode_batch(
        "gw-a",
        1,
        [BatchMessage(own, body, 1, False), BatchMessage(foreign, body, 2, False)],
        bytes.fromhex(GW_KEY),
        int(_ts(5).timestamp() * 1000),
    )
    gateway = peers("gw/gw-a").connected()
    assert not gateway.publish("fs/v1/gw/gw-a/batch", batch).is_failure
    wait_for(lambda: _reasons(ingest), "the foreign site's dead letter")
    wait_for(lambda: ingest.readings.count(site="s-air") == 1, "the own site's reading stored")
    assert _reasons(ingest) == [("foreign_site", foreign)]
    (letter,) = ingest.readings.dead_letters(limit=10)
    assert "'s-other' is not one of the gateway's sites (s-air)" in letter.detail
    assert ingest.readings.count(site="s-other") == 0
