"""API tokens: issued to a user (optionally scoped to one department), stored only as hashes."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a user, scoped to one department or to all (``None``)."""

    user: str
    department: str | None

    def may_act_for(self, department: str) -> bool:
        """True when the principal may act on records of ``department``."""
        return self.department is None or self.department == department


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: everything but the secret and its hash."""

    id: int
    user: str
    department: str | None
    created: datetime
    revoked: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "user": self.user,
            "department": self.department,
            "created": self.created.isoformat(),
            "revoked": self.revoked.isoformat() if self.revoked else None,
        }


def hash_token(token: str) -> str:
    """sha256 hex of a token.

    A fast unsalted hash is enough here, unlike for passwords: tokens are 32 random bytes from
    :func:`secrets.token_urlsafe`, so there is no dictionary to try and brute force over 2**256
    is hopeless however fast the hash. Looking tokens up by hash also means no comparison ever
    runs over the secret itself, so response times leak nothing about it.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Bearer tokens in the shared database (table ``api_tokens``), SQLite or PostgreSQL."""

    def __init__(
        self, path: Path | str | Database, departments: Iterable[str], clock: Clock | None = None
    ) -> None:
        self.db = ensure_schema(Database.open(path))
        self.departments = tuple(departments)
        self.clock = clock or SystemClock()

    def issue(self, user: str, department: str | None = None) -> str:
        """Create a token for ``user`` (all departments when ``department`` is ``None``).

        Returns the plaintext token; it is shown this once and cannot be recovered.

        Raises
        ------
        ValueError
            The user name is malformed or the department is unknown.
        """
        if not isinstance(user, str) or not USER_RE.match(user):
            raise ValueError(f"user {user!r} must match {USER_RE.pattern}")
        if department is not None and department not in self.departments:
            raise ValueError(
                f"unknown department {department!r}; known: {', '.join(self.departments)}"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction() as c:
            cur = c.execute(
                'INSERT INTO api_tokens (token_hash, "user", department, created)'
                " VALUES (?, ?, ?, ?) RETURNING id",
                (hash_token(token), user, department, to_epoch_ms(self.clock.now())),
            )
            token_id = int(cur.fetchone()[0])
        log.info(
            "token issued", extra=kv(token_id=token_id, user=user, department=department or "*")
        )
        return token

    def verify(self, token: str) -> Principal:
        """The principal a token acts for.

        Raises
        ------
        AuthError
            The token is empty, unknown or revoked.
        """
        if not token or not isinstance(token, str) or len(token) > TOKEN_MAX:
            raise AuthError("missing or malformed token")
        rows = self.db.query(
            'SELECT "user", department, revoked FROM api_tokens WHERE token_hash = ?',
            (hash_token(token),),
        )
        if not rows:
            raise AuthError("unknown token")
        if rows[0]["revoked"] is not None:
            raise AuthError("token revoked")
        return Principal(user=rows[0]["user"], department=rows[0]["department"])

    def revoke(self, token_id: int) -> TokenInfo:
        """Revoke a token by id; revoking twice keeps the first revocation time.

        Raises
        ------
        NotFoundError
            No token has this id.
        """
        with self.db.transaction() as c:
            cur = c.execute(
                "UPDATE api_tokens SET revoked = coalesce(revoked, ?) WHERE id = ?",
                (to_epoch_ms(self.clock.now()), int(token_id)),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no token {token_id}")
        log.info("token revoked", extra=kv(token_id=token_id))
        return self.get(token_id)

    def get(self, token_id: int) -> TokenInfo:
        """One token's listing entry; raises NotFoundError when there is none."""
        rows = self.db.query(
            'SELECT id, "user", department, created, revoked FROM api_tokens WHERE id = ?',
            (int(token_id),),
        )
        if not rows:
            raise NotFoundError(f"no token {token_id}")
        return self._info(rows[0])

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first, without secrets or hashes."""
        return [
            self._info(r)
            for r in self.db.query(
                'SELECT id, "user", department, created, revoked FROM api_tokens ORDER BY id'
            )
        ]

    @staticmethod
    def _info(r: sqlite3.Row) -> TokenInfo:
        return TokenInfo(
            id=r["id"],
            user=r["user"],
            department=r["department"],
            created=from_epoch_ms(r["created"]),
            revoked=from_epoch_ms(r["revoked"]) if r["revoked"] is not None else None,
        )

    def close(self) -> None:
        self.db.close()
