"""API tokens: issued to a user with a role, optionally scoped to one department, stored only as
hashes, and expiring; browser sessions started from them.

A token is ``kind='api'`` (``farsight token issue``) or ``kind='session'``: what
``POST /api/session`` puts in the browser's cookie. A session is a token of its own whose parent
is the API token it was started from: it expires with the session or its parent, whichever is
first, it fails once its parent is revoked, and logout revokes it without touching the parent.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from farsight.clock import Clock, SystemClock, from_epoch_ms, to_epoch_ms
from farsight.db import Database
from farsight.errors import AuthError, NotFoundError
from farsight.logs import kv
from farsight.migrate import ensure_schema

log = logging.getLogger(__name__)

USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
"""User names end up in alert history and logs: keep them short and printable."""

TOKEN_PREFIX = "fs_"
"""Marks Farsight tokens so secret scanners and people recognise one that leaked."""

TOKEN_MAX = 256
"""Longest token accepted for checking; anything longer is refused before hashing."""

DEFAULT_TTL = timedelta(days=30)
"""Lifetime of a token when none is given (``hub.token_ttl_h`` sets the hub's)."""

TTL_MAX = timedelta(days=366)
"""Longest lifetime a token may be issued with: a token that outlives a year is a password."""

DEFAULT_SESSION_TTL = timedelta(hours=12)
"""Lifetime of a browser session when none is given (``hub.session_ttl_h``)."""

ID_MAX = 2**63 - 1
"""Largest id a token row can have (BIGINT): larger ids are refused, not looked up."""


class Role(StrEnum):
    """What a token may do, each role including the ones before it."""

    VIEWER = "viewer"
    """Reads its scope: sites, readings, the queue, statistics, the live stream."""
    OFFICER = "officer"
    """Handles alerts: acknowledge, dispatch, verify, comment, close, upload evidence."""
    SUPERVISOR = "supervisor"
    """An officer who also silences, reopens, exports, reloads rules and dispatches joint
    visits."""
    ADMIN = "admin"
    """A supervisor who also manages tokens and devices and reads the operations views."""

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        """True when this role may do everything ``other`` may."""
        return self.rank >= other.rank


_RANKS = {r: i for i, r in enumerate(Role)}


def parse_role(value: str | Role) -> Role:
    """A role from its name; ValueError naming the choices otherwise."""
    try:
        return Role(value)
    except ValueError:
        raise ValueError(
            f"unknown role {value!r}; known: {', '.join(r.value for r in Role)}"
        ) from None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a user with a role, scoped to one department or to all
    (``None``).

    ``token_id`` is the API token's id (for a session, its parent's): limits per token count
    against it. ``session`` tells a browser session from a bearer token.
    """

    user: str
    department: str | None
    role: Role = Role.VIEWER
    token_id: int = 0
    session: bool = False
    expires: datetime | None = None

    def may_act_for(self, department: str) -> bool:
        """True when the principal may act on records of ``department``."""
        return self.department is None or self.department == department

    def has(self, role: Role) -> bool:
        """True when the principal's role includes ``role``."""
        return self.role.includes(role)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: everything but the secret and its hash."""

    id: int
    user: str
    department: str | None
    created: datetime
    revoked: datetime | None
    role: Role = Role.VIEWER
    expires: datetime | None = None
    kind: str = "api"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "user": self.user,
            "department": self.department,
            "role": self.role.value,
            "kind": self.kind,
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "revoked": self.revoked.isoformat() if self.revoked else None,
        }

    def expired(self, now: datetime) -> bool:
        return self.expires is None or self.expires <= now


class TokenRefused(AuthError):
    """A token that is missing, unknown, revoked or expired; ``user`` when the token was known
    (a revoked or expired one), so failures can be counted per user too."""

    def __init__(self, message: str, user: str | None = None) -> None:
        super().__init__(message)
        self.user = user


def hash_token(token: str) -> str:
    """sha256 hex of a token.

    A fast unsalted hash is enough here, unlike for passwords: tokens are 32 random bytes from
    :func:`secrets.token_urlsafe`, so there is no dictionary to try and brute force over 2**256
    is hopeless however fast the hash. Looking tokens up by hash also means no comparison ever
    runs over the secret itself, so response times leak nothing about it.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_ttl(ttl: timedelta) -> timedelta:
    """``ttl`` when it is positive and at most :data:`TTL_MAX`; ValueError otherwise."""
    if ttl <= timedelta(0) or ttl > TTL_MAX:
        raise ValueError(f"token lifetime must be more than 0 and at most {TTL_MAX}, got {ttl}")
    return ttl


_COLUMNS = 'id, "user", department, role, kind, created, expires, revoked'


class TokenStore:
    """Bearer tokens in the shared database (table ``api_tokens``), SQLite or PostgreSQL."""

    def __init__(
        self,
        path: Path | str | Database,
        departments: Iterable[str],
        clock: Clock | None = None,
        ttl: timedelta = DEFAULT_TTL,
        session_ttl: timedelta = DEFAULT_SESSION_TTL,
    ) -> None:
        self.db = ensure_schema(Database.open(path))
        self.departments = tuple(departments)
        self.clock = clock or SystemClock()
        self.ttl = check_ttl(ttl)
        self.session_ttl = check_ttl(session_ttl)

    def issue(
        self,
        user: str,
        department: str | None = None,
        *,
        role: Role | str,
        ttl: timedelta | None = None,
    ) -> str:
        """Create a token for ``user`` with ``role`` (all departments when ``department`` is
        ``None``), valid for ``ttl`` (default the store's).

        Returns the plaintext token; it is shown this once and cannot be recovered.

        Raises
        ------
        ValueError
            The user name is malformed, the department or role unknown, or the lifetime out of
            bounds.
        """
        if not isinstance(user, str) or not USER_RE.match(user):
            raise ValueError(f"user {user!r} must match {USER_RE.pattern}")
        if department is not None and department not in self.departments:
            raise ValueError(
                f"unknown department {department!r}; known: {', '.join(self.departments)}"
            )
        role = parse_role(role)
        life = check_ttl(ttl if ttl is not None else self.ttl)
        now = self.clock.now()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction() as c:
            cur = c.execute(
                'INSERT INTO api_tokens (token_hash, "user", department, role, kind, created,'
                " expires) VALUES (?, ?, ?, ?, 'api', ?, ?) RETURNING id",
                (
                    hash_token(token),
                    user,
                    department,
                    role.value,
                    to_epoch_ms(now),
                    to_epoch_ms(now + life),
                ),
            )
            token_id = int(cur.fetchone()[0])
        log.info(
            "token issued",
            extra=kv(
                token_id=token_id,
                user=user,
                department=department or "*",
                role=role.value,
                expires=(now + life).isoformat(timespec="seconds"),
            ),
        )
        return token

    def verify(self, token: str, *, session: bool = False) -> Principal:
        """The principal a token acts for.

        ``session=False`` (a bearer token) accepts API tokens only; ``session=True`` (the
        session cookie) accepts sessions only, so a session cannot be used as a bearer token to
        change anything, and a cookie never carries an API token.

        Raises
        ------
        TokenRefused
            The token is empty, malformed, unknown, of the wrong kind, revoked or expired (with
            the user when the token was known).
        """
        if not token or not isinstance(token, str) or len(token) > TOKEN_MAX:
            raise TokenRefused("missing or malformed token")
        rows = self.db.query(
            'SELECT t.id, t."user", t.department, t.role, t.kind, t.expires, t.revoked,'
            " t.parent, p.expires AS p_expires, p.revoked AS p_revoked"
            " FROM api_tokens t LEFT JOIN api_tokens p ON p.id = t.parent"
            " WHERE t.token_hash = ?",
            (hash_token(token),),
        )
        if not rows:
            raise TokenRefused("unknown token")
        r = rows[0]
        user = str(r["user"])
        is_session = r["kind"] == "session"
        if is_session != session:
            raise TokenRefused(
                "a session works only as the session cookie"
                if is_session
                else "the session cookie must hold a session from POST /api/session",
                user,
            )
        if r["revoked"] is not None:
            raise TokenRefused("session ended" if is_session else "token revoked", user)
        if is_session and r["p_revoked"] is not None:
            raise TokenRefused("token revoked", user)
        now_ms = to_epoch_ms(self.clock.now())
        ends = [r["expires"], r["p_expires"]] if is_session else [r["expires"]]
        for expires in ends:
            # A row without an expiry was not written by this code: refused, not trusted.
            if expires is None or int(expires) <= now_ms:
                raise TokenRefused("session expired" if is_session else "token expired", user)
        return Principal(
            user=user,
            department=r["department"],
            role=parse_role(r["role"]),
            token_id=int(r["parent"] if is_session else r["id"]),
            session=is_session,
            expires=from_epoch_ms(int(r["expires"])),
        )

    def start_session(self, principal: Principal) -> tuple[str, datetime]:
        """A browser session for the API token of ``principal``: the session token and when it
        ends (the session lifetime, or the token's own end if sooner).

        Sessions that ended are deleted here, so the table holds the live ones and a few more.
        """
        if principal.session:
            raise ValueError("a session is started from an API token, not from another session")
        now = self.clock.now()
        ends = now + self.session_ttl
        if principal.expires is not None:
            ends = min(ends, principal.expires)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction() as c:
            c.execute(
                "DELETE FROM api_tokens WHERE kind = 'session'"
                " AND (expires <= ? OR revoked IS NOT NULL)",
                (to_epoch_ms(now),),
            )
            c.execute(
                'INSERT INTO api_tokens (token_hash, "user", department, role, kind, parent,'
                " created, expires) VALUES (?, ?, ?, ?, 'session', ?, ?, ?)",
                (
                    hash_token(token),
                    principal.user,
                    principal.department,
                    principal.role.value,
                    principal.token_id,
                    to_epoch_ms(now),
                    to_epoch_ms(ends),
                ),
            )
        return token, ends

    def end_session(self, token: str) -> bool:
        """Revoke the session ``token``; True when a live session was ended."""
        if not token or not isinstance(token, str) or len(token) > TOKEN_MAX:
            return False
        with self.db.transaction() as c:
            cur = c.execute(
                "UPDATE api_tokens SET revoked = ? WHERE token_hash = ? AND kind = 'session'"
                " AND revoked IS NULL",
                (to_epoch_ms(self.clock.now()), hash_token(token)),
            )
            return cur.rowcount > 0

    def revoke(self, token_id: int) -> TokenInfo:
        """Revoke an API token by id, and with it every session started from it; revoking twice
        keeps the first revocation time.

        Raises
        ------
        NotFoundError
            No API token has this id.
        """
        token_id = _token_id(token_id)
        now = to_epoch_ms(self.clock.now())
        with self.db.transaction() as c:
            cur = c.execute(
                "UPDATE api_tokens SET revoked = coalesce(revoked, ?) WHERE id = ?"
                " AND kind = 'api'",
                (now, token_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no token {token_id}")
            c.execute(
                "UPDATE api_tokens SET revoked = coalesce(revoked, ?) WHERE parent = ?",
                (now, token_id),
            )
        log.info("token revoked", extra=kv(token_id=token_id))
        return self.get(token_id)

    def get(self, token_id: int) -> TokenInfo:
        """One API token's listing entry; raises NotFoundError when there is none."""
        token_id = _token_id(token_id)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ? AND kind = 'api'", (token_id,)
        )
        if not rows:
            raise NotFoundError(f"no token {token_id}")
        return self._info(rows[0])

    def list(self) -> list[TokenInfo]:
        """Every API token (not the browser sessions), oldest first, without secrets or
        hashes."""
        return [
            self._info(r)
            for r in self.db.query(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE kind = 'api' ORDER BY id"
            )
        ]

    @staticmethod
    def _info(r: Any) -> TokenInfo:
        return TokenInfo(
            id=r["id"],
            user=r["user"],
            department=r["department"],
            created=from_epoch_ms(r["created"]),
            revoked=from_epoch_ms(r["revoked"]) if r["revoked"] is not None else None,
            role=parse_role(r["role"]),
            expires=from_epoch_ms(r["expires"]) if r["expires"] is not None else None,
            kind=r["kind"],
        )

    def close(self) -> None:
        self.db.close()


def _token_id(token_id: int) -> int:
    """An id that fits the table's column; NotFoundError for any other (no row can have it)."""
    value = int(token_id)
    if not 1 <= value <= ID_MAX:
        raise NotFoundError(f"no token {token_id}")
    return value
