"""Token store: only hashes stored, department scope, revocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from farsight.errors import AuthError, NotFoundError
from hub.auth import Principal, TokenStore, hash_token


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    s = TokenStore(tmp_path / "farsight.db", ("env", "transport"))
    yield s
    s.close()


def _db_bytes(folder: Path) -> bytes:
    """The database and its WAL and shared-memory files: everything SQLite wrote."""
    return b"".join(
        p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("farsight.db")
    )


def test_issue_and_verify(store: TokenStore) -> None:
    token = store.issue("alice", "env")
    assert len(token) >= 40
    assert store.verify(token) == Principal("alice", "env")
    everyone = store.issue("admin")
    assert store.verify(everyone) == Principal("admin", None)
    assert store.issue("alice", "env") != token  # random, never derived from the user


def test_plaintext_token_is_never_stored(store: TokenStore, tmp_path: Path) -> None:
    token = store.issue("alice", "env")
    store.verify(token)
    raw = _db_bytes(tmp_path)
    assert hash_token(token).encode() in raw  # we are looking at the right files
    assert token.encode() not in raw
    assert token.split("_", 1)[1].encode() not in raw


def test_list_has_no_secrets(store: TokenStore) -> None:
    token = store.issue("alice", "env")
    store.issue("bob")
    listed = store.list()
    assert [(t.user, t.department, t.revoked) for t in listed] == [
        ("alice", "env", None),
        ("bob", None, None),
    ]
    for t in listed:
        d = t.to_dict()
        assert set(d) == {"id", "user", "department", "created", "revoked"}
        assert token not in repr(d) and hash_token(token) not in repr(d)


def test_revoked_token_is_refused(store: TokenStore) -> None:
    token = store.issue("alice", "env")
    token_id = store.list()[0].id
    info = store.revoke(token_id)
    assert info.revoked is not None
    with pytest.raises(AuthError, match="revoked"):
        store.verify(token)
    assert store.revoke(token_id).revoked == info.revoked  # idempotent
    with pytest.raises(NotFoundError):
        store.revoke(4242)


@pytest.mark.parametrize("token", ["", "fs_unknown", "x" * 10_000])
def test_unknown_or_malformed_tokens_are_refused(store: TokenStore, token: str) -> None:
    store.issue("alice")
    with pytest.raises(AuthError):
        store.verify(token)


@pytest.mark.parametrize(
    "user, department, match",
    [
        ("alice", "health", "unknown department"),
        ("", None, "user"),
        ("bad user", None, "user"),
        ("x" * 65, None, "user"),
        ("robert'); DROP TABLE api_tokens;--", None, "user"),
    ],
)
def test_issue_validates_user_and_department(
    store: TokenStore, user: str, department: str | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store.issue(user, department)
    assert store.list() == []


def test_tokens_survive_reopening(tmp_path: Path) -> None:
    a = TokenStore(tmp_path / "farsight.db", ("env",))
    token = a.issue("alice", "env")
    a.close()
    b = TokenStore(tmp_path / "farsight.db", ("env",))
    try:
        assert b.verify(token).user == "alice"
    finally:
        b.close()
