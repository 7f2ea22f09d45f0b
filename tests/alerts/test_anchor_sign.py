"""Ed25519 anchors: keys on disk, signing, and every way an anchor is refused."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from alerts.anchor_sign import (
    anchor_problem,
    generate_key,
    key_id,
    load_public_key,
    load_signing_key,
    sign_anchor,
)
from alerts.audit import Anchor, read_anchor, upstream_message, write_anchor
from farsight.errors import AuditError

AT = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
ANCHOR = Anchor(seq=1471, hash="ab" * 32, at=AT, entries=1471, source="hubei")


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_signed_anchor_verifies_with_its_key_only(key: Ed25519PrivateKey) -> None:
    signed = sign_anchor(ANCHOR, key)
    assert signed.signed and signed.key_id == key_id(key.public_key())
    assert anchor_problem(signed, key.public_key()) == ""
    other = Ed25519PrivateKey.generate().public_key()
    assert "not by the trusted key" in anchor_problem(signed, other)
    assert "cannot be checked" in anchor_problem(signed, None)
    assert "not signed" in anchor_problem(ANCHOR, key.public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 1470},
        {"hash": "cd" * 32},
        {"entries": 1},
        {"source": "other"},
        {"at": AT.replace(minute=58)},
    ],
)
def test_any_changed_field_breaks_the_signature(key: Ed25519PrivateKey, change: dict) -> None:
    signed = sign_anchor(ANCHOR, key)
    assert "does not verify" in anchor_problem(replace(signed, **change), key.public_key())
    assert "does not verify" in anchor_problem(
        replace(signed, signature="not base64!"), key.public_key()
    )


def test_a_signed_anchor_survives_its_file_and_the_upstream_message(
    key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    signed = sign_anchor(ANCHOR, key)
    write_anchor(tmp_path / "a.json", signed)
    assert read_anchor(tmp_path / "a.json") == signed
    # As the provincial hub kept it: the whole message.
    (tmp_path / "up.json").write_text(json.dumps(upstream_message(signed)), encoding="utf-8")
    back = read_anchor(tmp_path / "up.json")
    assert back == signed and anchor_problem(back, key.public_key()) == ""


def test_malformed_signatures_are_refused(tmp_path: Path) -> None:
    doc = {**ANCHOR.to_json(), "signature": {"alg": "RSA", "key_id": "x", "value": "y"}}
    (tmp_path / "bad.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(AuditError, match="Ed25519"):
        read_anchor(tmp_path / "bad.json")


def test_keys_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "k" / "anchor.key"
    pub, kid = generate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and pub == tmp_path / "k" / "anchor.key.pub"
    private, public = load_signing_key(path), load_public_key(pub)
    assert key_id(private.public_key()) == key_id(public) == kid
    with pytest.raises(AuditError, match="never overwritten"):
        generate_key(path)
    path.chmod(0o640)
    with pytest.raises(AuditError, match="chmod 600"):
        load_signing_key(path)
    with pytest.raises(AuditError, match="not a PEM public key"):
        load_public_key(path)
    with pytest.raises(AuditError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")
