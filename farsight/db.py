"""SQLite plumbing shared by the embedded stores: WAL mode, busy timeout, error conversion."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from farsight.errors import StoreError


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a SQLite database in WAL mode, creating its folder.

    WAL lets the hub read while ingest writes; ``synchronous=NORMAL`` keeps commits durable
    across a process crash (not a power cut), the usual trade for an embedded time-series store.
    """
    path = Path(path)
    try:
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        conn = sqlite3.connect(uri, uri=True, timeout=10.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        return conn
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from None


class Database:
    """One connection, serialised by a lock; transactions are explicit and may nest.

    Stores can share one ``Database``: a transaction opened inside another joins it, so a
    worker can commit readings, alerts, audit entries and rule state as one unit.
    """

    def __init__(self, path: Path | str, schema: str = "") -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.RLock()
        self._depth = 0
        if schema:
            self.executescript(schema)

    @classmethod
    def of(cls, path_or_db: "Path | str | Database", schema: str = "") -> "Database":
        """``path_or_db`` itself when it is a Database (its schema applied), else a new one."""
        if isinstance(path_or_db, Database):
            if schema:
                path_or_db.executescript(schema)
            return path_or_db
        return cls(path_or_db, schema)

    def executescript(self, script: str) -> None:
        """Run DDL (``CREATE ... IF NOT EXISTS``) once at start."""
        with self._lock:
            try:
                self._conn.executescript(script)
            except sqlite3.Error as exc:
                raise StoreError(f"schema of {self.path}: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error, which becomes a StoreError."""
        with self._lock:
            if self._depth:
                # Joined: the outermost transaction commits or rolls back everything.
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"begin on {self.path}: {exc}") from None
            self._depth = 1
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: {exc}") from None
                raise
            finally:
                self._depth = 0

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run a read-only statement and return all rows."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
