"""The audit chain's storage: the ``audit_log`` table of a SQLite file or PostgreSQL database.

All SQL against the audit table lives here; hashing, anchors and the chain walk are the pure
functions of :mod:`alerts.audit`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from alerts.audit import (
    GENESIS,
    Anchor,
    AuditEntry,
    VerifyResult,
    at_to_ms,
    canonical_json,
    make_entry,
    ms_to_at,
    read_anchor,
    verify_chain,
    write_anchor,
)
from farsight.db import Connection, Database, connect
from farsight.errors import AuditError, FarsightError, StoreError
from farsight.logs import kv
from farsight.migrate import ensure_schema

log = logging.getLogger("farsight.alerts.audit")

TRIGGERS = ("audit_log_no_update", "audit_log_no_delete", "audit_log_append_only")

PG_HEAD_LOCK = 7243002
"""Advisory lock key held by a PostgreSQL transaction between reading the head and appending:
READ COMMITTED alone would let two appenders read the same head."""

_COLUMNS = "seq, at, actor, action, subject, data, prev_hash, hash"


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        seq=r[0],
        at=ms_to_at(r[1]),
        actor=r[2],
        action=r[3],
        subject=r[4],
        data=json.loads(r[5]),
        prev_hash=r[6],
        hash=r[7],
    )


class SqlAuditLog:
    """The audit chain in the ``audit_log`` table of a SQLite file or PostgreSQL database
    (usually the risk queue's).

    Give a path or URL to own a connection, or the :class:`~farsight.db.Database` of the store
    whose changes are audited, to append in that store's transactions. ``create=False``
    refuses a database without the table instead of creating it (for tools that only read).
    """

    def __init__(self, path_or_database: Path | str | Database, *, create: bool = True) -> None:
        self._owned = not isinstance(path_or_database, Database)
        self.db = Database.open(path_or_database)
        self.name = self.db.name
        try:
            if create:
                ensure_schema(self.db)  # the table and its triggers: migrations, revision 0001
            if not self._has_table():
                # Behind a current schema only if dropped by hand: not made again here, since a
                # fresh chain would hide the loss from anyone who holds no anchor.
                raise AuditError(
                    f"{self.name} has no audit_log table"
                    + (
                        "; its schema is current, so the table was dropped: restore it from a"
                        " backup and verify it against the latest anchor"
                        if create
                        else ""
                    )
                )
            if create and (missing := self.missing_triggers()):
                log.warning(
                    "audit_log append-only triggers missing: the chain still detects edits",
                    extra=kv(db=self.name, missing=",".join(missing)),
                )
        except FarsightError:
            if self._owned:
                self.db.close()
            raise

    @property
    def path(self) -> Path:
        return self.db.path

    def _has_table(self) -> bool:
        if self.db.dialect == "postgres":
            return bool(
                self.db.query(
                    "SELECT 1 FROM information_schema.tables WHERE table_name = 'audit_log'"
                )
            )
        return bool(
            self.db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'")
        )

    # -- writes -------------------------------------------------------------------------------

    def append_in(
        self,
        conn: Connection,
        actor: str,
        action: str,
        subject: str,
        data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append an entry inside the caller's open transaction on ``conn``.

        The entry commits or rolls back with the caller's change. In SQLite open the
        transaction with ``BEGIN IMMEDIATE`` (:meth:`Database.transaction` does): its write lock
        serialises appenders between reading the head and inserting the next link; under a
        deferred transaction a concurrent append makes this raise instead of forking the chain.
        In PostgreSQL an advisory transaction lock does the same.

        Raises
        ------
        ValueError, TypeError
            Bad arguments (empty actor, action or subject; data that is not a JSON object).
        AuditError
            ``conn`` has no open transaction, or the database refused the insert.
        """
        if not conn.in_transaction:
            raise AuditError(
                "append_in needs the caller's open transaction (BEGIN IMMEDIATE); use append()"
                " otherwise"
            )
        when = datetime.now(UTC) if at is None else at
        try:
            if self.db.dialect == "postgres":
                conn.execute("SELECT pg_advisory_xact_lock(?)", (PG_HEAD_LOCK,))
            last = conn.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            prev_seq, prev_hash = (int(last[0]), str(last[1])) if last is not None else (0, GENESIS)
            e = make_entry(prev_seq, prev_hash, actor, action, subject, data, when)
            conn.execute(
                f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e.seq,
                    at_to_ms(e.at),
                    e.actor,
                    e.action,
                    e.subject,
                    canonical_json(e.data).decode("utf-8"),
                    e.prev_hash,
                    e.hash,
                ),
            )
        except (sqlite3.Error, StoreError) as exc:
            raise AuditError(f"cannot append to the audit log in {self.name}: {exc}") from None
        return e

    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append an entry in a transaction of its own."""
        with self.db.transaction() as conn:
            return self.append_in(conn, actor, action, subject, data, at)

    # -- reads --------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last entry; ``(0, GENESIS)`` for an empty log."""
        rows = self._query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)

    def entries(
        self, subject: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]:
        """Entries after ``after_seq``, oldest first, optionally of one subject (``"alert:42"``).

        Rows are returned as stored; call :meth:`verify` to know they are untouched.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if subject is None:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        else:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM audit_log WHERE subject = ? AND seq > ? ORDER BY seq"
                " LIMIT ?",
                (subject, after_seq, limit),
            )
        try:
            return [_entry(r) for r in rows]
        except (ValueError, TypeError) as exc:
            raise AuditError(
                f"malformed audit row in {self.name}: {exc}; run `farsight audit verify`"
            ) from None

    def verify(self, anchor: Anchor | Path | str | None = None) -> VerifyResult:
        """Walk the whole chain in ``seq`` order; see :func:`verify_chain`.

        ``anchor`` is an :class:`Anchor` or the path of an anchor file. In SQLite the walk
        streams rows through one statement on a connection of its own, so it sees one
        consistent snapshot (WAL) without holding the whole log in memory or blocking
        appenders; in PostgreSQL it reads in pages by ``seq`` (entries are only ever added at
        the end, so the pages join up).
        """
        if anchor is not None and not isinstance(anchor, Anchor):
            anchor = read_anchor(anchor)
        if self.db.dialect == "postgres":
            return verify_chain(self._pages(), anchor)
        try:
            conn = connect(self.path, readonly=True)
        except FarsightError as exc:
            raise AuditError(str(exc)) from None
        try:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq")
            return verify_chain(_stream(cur), anchor)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the audit log in {self.name}: {exc}") from None
        finally:
            conn.close()

    def verify_from(self, seq: int, head: str) -> VerifyResult:
        """Verify only the entries after ``(seq, head)``, a prefix verified before (the
        scheduled anchors walk what was appended since the last one, not the whole chain)."""
        return verify_chain(self._pages(after_seq=seq), after=(seq, head))

    def _pages(self, size: int = 5000, after_seq: int | None = None) -> Iterator[tuple]:
        # Keyset on the stored seq, even where it is broken (verify_chain reports that);
        # a seq that does not grow ends the walk where the chain check flags it.
        after: Any = after_seq
        while True:
            if after is None:
                rows = self._query(
                    f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq LIMIT ?", (size,)
                )
            else:
                rows = self._query(
                    f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, size),
                )
            if not rows:
                return
            yield from (tuple(r) for r in rows)
            after = rows[-1][0]

    def export_anchor(
        self,
        path: Path | str,
        at: datetime | None = None,
        sign: Callable[[Anchor], Anchor] | None = None,
    ) -> Anchor:
        """Verify the chain, then write its head to ``path`` as an anchor and return it.

        ``sign`` signs it (:func:`alerts.anchor_sign.signer`); keep the file away from the
        database (a WORM store, the upstream hub). ``at`` is the time of the export (default
        now). A broken chain is refused: anchoring it would vouch for the tampering.
        """
        result = self.verify()
        if not result.ok:
            raise AuditError(f"not anchoring a broken chain: {result.summary()}")
        when = datetime.now(UTC) if at is None else at
        # Contiguous from 1 (verified above), so the head's seq is the number of entries.
        anchor = Anchor(
            seq=result.entries,
            hash=result.head,
            at=ms_to_at(at_to_ms(when)),
            entries=result.entries,
        )
        if sign is not None:
            anchor = sign(anchor)
        write_anchor(path, anchor)
        return anchor

    def missing_triggers(self) -> list[str]:
        """Names of the append-only triggers absent from the database (expected: none)."""
        if self.db.dialect == "postgres":
            present = {
                r[0]
                for r in self._query(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT"
                    " tgisinternal"
                )
            }
        else:
            present = {
                r[0]
                for r in self._query(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name ="
                    " 'audit_log'"
                )
            }
        return [t for t in TRIGGERS if t not in present]

    def _query(self, sql: str, params: tuple = ()) -> list[Any]:
        try:
            return self.db.query(sql, params)
        except FarsightError as exc:
            raise AuditError(str(exc)) from None

    def close(self) -> None:
        """Close the connection if this log opened it."""
        if self._owned:
            self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SqliteAuditLog = SqlAuditLog
"""The spine's name; the class serves both backends."""


def open_audit_log(target: Path | str | Database, *, create: bool = True) -> SqlAuditLog:
    """The audit log of a SQLite file, PostgreSQL URL or open database."""
    return SqlAuditLog(target, create=create)


def _stream(cur: sqlite3.Cursor, size: int = 1000) -> Iterator[tuple]:
    while True:
        batch = cur.fetchmany(size)
        if not batch:
            return
        yield from (tuple(r) for r in batch)
