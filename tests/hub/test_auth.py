"""Token store: only hashes stored, department scope and role, expiry, revocation, sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from farsight.clock import ManualClock
from farsight.errors import AuthError, NotFoundError
from hub.auth import Principal, Role, TokenRefused, TokenStore, hash_token

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


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


def _who(p: Principal) -> tuple[str, str | None, Role]:
    return p.user, p.department, p.role


def test_issue_and_verify(store: TokenStore) -> None:
    token = store.issue("alice", "env", role=Role.OFFICER)
    assert len(token) >= 40
    assert _who(store.verify(token)) == ("alice", "env", Role.OFFICER)
    everyone = store.issue("admin", role="admin")
    assert _who(store.verify(everyone)) == ("admin", None, Role.ADMIN)
    assert store.issue("alice", "env", role="viewer") != token  # random, never derived


def test_plaintext_token_is_never_stored(store: TokenStore, tmp_path: Path) -> None:
    token = store.issue("alice", "env", role="viewer")
    store.verify(token)
    raw = _db_bytes(tmp_path)
    assert hash_token(token).encode() in raw  # we are looking at the right files
    assert token.encode() not in raw
    assert token.split("_", 1)[1].encode() not in raw


def test_list_has_no_secrets(store: TokenStore) -> None:
    token = store.issue("alice", "env", role="officer")
    store.issue("bob", role="admin")
    store.start_session(store.verify(token))  # a browser session is not an API token: unlisted
    listed = store.list()
    assert [(t.user, t.department, t.role, t.revoked) for t in listed] == [
        ("alice", "env", Role.OFFICER, None),
        ("bob", None, Role.ADMIN, None),
    ]
    for t in listed:
        d = t.to_dict()
        assert set(d) == {"id", "user", "department", "role", "kind", "created", "expires"} | {
            "revoked"
        }
        assert token not in repr(d) and hash_token(token) not in repr(d)


def test_revoked_token_is_refused(store: TokenStore) -> None:
    token = store.issue("alice", "env", role="viewer")
    token_id = store.list()[0].id
    info = store.revoke(token_id)
    assert info.revoked is not None
    with pytest.raises(AuthError, match="revoked"):
        store.verify(token)
    assert store.revoke(token_id).revoked == info.revoked  # idempotent
    with pytest.raises(NotFoundError):
        store.revoke(4242)
    with pytest.raises(NotFoundError):
        store.revoke(2**64)  # past the column: not found, never an overflow


@pytest.mark.parametrize("token", ["", "fs_unknown", "x" * 10_000])
def test_unknown_or_malformed_tokens_are_refused(store: TokenStore, token: str) -> None:
    store.issue("alice", role="viewer")
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
        store.issue(user, department, role="viewer")
    assert store.list() == []


@pytest.mark.parametrize(
    "role, ttl, match",
    [
        ("root", None, "unknown role 'root'; known: viewer, officer, supervisor, admin"),
        ("viewer", timedelta(0), "lifetime"),
        ("viewer", timedelta(days=400), "lifetime"),
    ],
)
def test_issue_validates_role_and_lifetime(
    store: TokenStore, role: str, ttl: timedelta | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store.issue("alice", role=role, ttl=ttl)
    assert store.list() == []


def test_roles_include_the_ones_below() -> None:
    order = [Role.VIEWER, Role.OFFICER, Role.SUPERVISOR, Role.ADMIN]
    for i, have in enumerate(order):
        assert [have.includes(need) for need in order] == [j <= i for j in range(len(order))]


def test_tokens_expire(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = TokenStore(tmp_path / "farsight.db", ("env",), clock=clock, ttl=timedelta(hours=8))
    try:
        default = store.issue("alice", "env", role="viewer")
        longer = store.issue("bob", "env", role="viewer", ttl=timedelta(hours=24))
        assert store.verify(default).expires == T0 + timedelta(hours=8)
        clock.advance(timedelta(hours=8) - timedelta(milliseconds=1))
        assert store.verify(default).user == "alice"
        clock.advance(timedelta(milliseconds=1))
        with pytest.raises(TokenRefused, match="token expired") as exc:
            store.verify(default)
        assert exc.value.user == "alice"
        assert store.verify(longer).user == "bob"
        listed = {t.user: t for t in store.list()}
        assert listed["alice"].expired(clock.now()) and not listed["bob"].expired(clock.now())
    finally:
        store.close()


def test_sessions_end_with_logout_their_lifetime_or_their_token(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = TokenStore(
        tmp_path / "farsight.db",
        ("env",),
        clock=clock,
        ttl=timedelta(hours=30),
        session_ttl=timedelta(hours=12),
    )
    try:
        token = store.issue("alice", "env", role="officer")
        api = store.verify(token)
        session, ends = store.start_session(api)
        assert ends == T0 + timedelta(hours=12)
        as_session = store.verify(session, session=True)
        assert _who(as_session) == ("alice", "env", Role.OFFICER)
        assert as_session.session and as_session.token_id == api.token_id
        # A session is a cookie, never a bearer token, and a cookie never holds an API token.
        with pytest.raises(AuthError, match="session works only as the session cookie"):
            store.verify(session)
        with pytest.raises(AuthError, match="must hold a session"):
            store.verify(token, session=True)
        with pytest.raises(ValueError):
            store.start_session(as_session)

        # Logout: the session ends at once; the token it came from does not.
        assert store.end_session(session) is True
        with pytest.raises(AuthError, match="session ended"):
            store.verify(session, session=True)
        assert store.end_session(session) is False
        assert store.verify(token).user == "alice"

        # Its own lifetime.
        second, _ = store.start_session(api)
        clock.advance(timedelta(hours=12))
        with pytest.raises(AuthError, match="session expired"):
            store.verify(second, session=True)

        # Never longer than its token: 18 h left on the token, 12 h for the session, then 6 h.
        _, ends = store.start_session(store.verify(token))
        assert ends == T0 + timedelta(hours=24)
        clock.advance(timedelta(hours=12))
        fourth, ends = store.start_session(store.verify(token))
        assert ends == T0 + timedelta(hours=30)
        clock.advance(timedelta(hours=6))
        with pytest.raises(AuthError, match="expired"):
            store.verify(fourth, session=True)

        # Revoking the token ends its sessions.
        fresh = store.issue("bob", "env", role="viewer")
        session, _ = store.start_session(store.verify(fresh))
        store.revoke(store.verify(fresh).token_id)
        with pytest.raises(AuthError, match="revoked|ended"):
            store.verify(session, session=True)
        # Ended and expired sessions are deleted when the next one starts.
        kinds = [r[0] for r in store.db.query("SELECT kind FROM api_tokens ORDER BY id")]
        assert kinds.count("session") == 1
    finally:
        store.close()


def test_tokens_survive_reopening(tmp_path: Path) -> None:
    a = TokenStore(tmp_path / "farsight.db", ("env",))
    token = a.issue("alice", "env", role="supervisor")
    a.close()
    b = TokenStore(tmp_path / "farsight.db", ("env",))
    try:
        assert _who(b.verify(token)) == ("alice", "env", Role.SUPERVISOR)
    finally:
        b.close()
