"""Schema migrations of the hub database, SQLite or PostgreSQL, by Alembic.

Every store of the hub database (readings, rule state, alerts, audit chain, silences, outbox,
tokens, edge gateway state) calls :func:`ensure_schema` when it opens; none creates tables of
its own. The one history of the schema is ``farsight/migrations/versions/``.

Why Alembic. Weighed against yoyo-migrations, the other tool that runs raw SQL on both
sqlite3 and psycopg 3:

- Alembic is the SQLAlchemy project's, released every few weeks and among the most used
  packages on PyPI; yoyo's last release is from 2024, by one maintainer.
- Alembic keeps one linear history with a single version row (``alembic_version``), so "is
  this database current?" is one plain query here, without importing the tool; yoyo records a
  set of applied migrations in four tables of its own, and its answer is a set comparison.
- Revisions are Python, so the first one can look at what an older Farsight left in a SQLite
  file and rebuild a table (a CHECK changes only by a rebuild there); yoyo's plain-SQL files are
  split into statements by a parser, which trigger bodies and PostgreSQL's ``$$`` functions
  strain, and its Python steps get a bare DB-API connection.
- It runs on a connection we hand it, in our transaction, after we take the lock, so several
  processes opening one fresh database migrate it once.

The cost is SQLAlchemy as a dependency (Alembic's engine layer; the stores keep their raw
sqlite3 and psycopg SQL): it is imported only when a database is behind, never on the way of a
store opening a current database. Revisions use ``op.get_bind().exec_driver_sql`` with raw SQL
rather than SQLAlchemy's schema objects, as the stores do.

The runner: SQLite migrates under ``BEGIN IMMEDIATE`` with foreign keys off (SQLite's documented
table rebuild) and checks them before committing; PostgreSQL under a transaction-scoped advisory
lock, its DDL transactional. Either way all revisions commit as one, or none does.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farsight.cli_options import add_database_options, database_target
from farsight.db import Database, PostgresDatabase, is_postgres_url
from farsight.errors import FarsightError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection

HEAD = "0006"
"""The newest revision in ``migrations/versions`` (a test holds them equal): a database whose
version row says this is current, which :func:`ensure_schema` learns from one query."""

MIGRATIONS = Path(__file__).parent / "migrations"

VERSION_TABLE = "alembic_version"

LOCK_KEY = 7243001
"""PostgreSQL advisory lock held while migrating (the one ``PostgresDatabase.executescript``
takes too), so two processes opening one database do not migrate it together."""

_current: weakref.WeakSet[Database] = weakref.WeakSet()
"""Databases this process has seen at :data:`HEAD`: checked once per connection."""
_current_lock = threading.Lock()


def current(db: Database) -> str | None:
    """The revision ``db`` is at; ``None`` for an empty database or one written before migrations.

    One plain query, no migration tool: call it outside a transaction (on PostgreSQL a missing
    version table is an error, which would abort an open one).
    """
    try:
        rows = db.query(f"SELECT version_num FROM {VERSION_TABLE}")
    except StoreError:
        return None  # no version table
    return str(rows[0][0]) if rows else None


def ensure_schema(db: Database) -> Database:
    """Bring ``db`` to :data:`HEAD` if it is behind, and return it; what every store calls on open.

    A database already current costs one query, once per connection; only one that is behind
    loads Alembic (see :func:`upgrade`). Call it outside a transaction, as stores do on open: a
    migration runs on a connection of its own, which would wait for the caller's write lock.
    """
    with _current_lock:
        if db in _current:
            return db
    if current(db) != HEAD:
        upgrade(db)
    with _current_lock:
        _current.add(db)
    return db


def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Run the migrations of ``db`` up to ``revision``; returns (revision before, after).

    Harmless when there is nothing to do: the version is read again under the lock, so a
    database another process has just migrated is left as it is.

    Raises
    ------
    StoreError
        The database cannot be reached or a revision failed (nothing is committed then), or it
        is at a revision this code does not know (migrated by a newer Farsight).
    """
    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    cfg = _config()
    try:
        with _locked(db) as conn:
            before = _version(conn)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            after = _version(conn)
            if db.dialect == "sqlite":
                _check_foreign_keys(conn, db)
    except (CommandError, RevisionError) as exc:
        raise StoreError(
            f"cannot migrate {db.name}: {exc} (this Farsight knows revisions up to {HEAD}; "
            "a newer one may have migrated the database)"
        ) from None
    except DBAPIError as exc:
        raise StoreError(f"migrating {db.name}: {exc.orig}".strip()) from None
    return before, after


def history() -> list[tuple[str, str | None, str]]:
    """The revisions, oldest first: (revision, the one it follows, first line of its docstring)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    out = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        out.append((rev.revision, down if isinstance(down, str) else None, rev.doc or ""))
    return out[::-1]


# -- the runner ----------------------------------------------------------------------------------


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _version(conn: Connection) -> str | None:
    from sqlalchemy import inspect

    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar_one_or_none()


@contextmanager
def _locked(db: Database) -> Iterator[Connection]:
    """A connection of its own to ``db`` in a transaction that holds the migration lock;
    committed when the block ends, rolled back on any error."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    if isinstance(db, PostgresDatabase):
        url = db.url

        def connect_pg() -> Any:
            import psycopg

            return psycopg.connect(url, connect_timeout=10)

        engine = create_engine("postgresql+psycopg://", creator=connect_pg, poolclass=NullPool)
    else:
        path = db.path

        def connect_sqlite() -> sqlite3.Connection:
            # Transactions are begun below, not by the sqlite3 module; foreign keys are off for
            # table rebuilds (the pragma is ignored inside a transaction, so it is set here).
            conn = sqlite3.connect(path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA foreign_keys = OFF")
            return conn

        engine = create_engine("sqlite://", creator=connect_sqlite, poolclass=NullPool)

        @event.listens_for(engine, "begin")
        def begin_immediate(conn: Connection) -> None:
            # The write lock from the start: a second process waits here, then finds it done.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.connect() as conn, conn.begin():
            if db.dialect == "postgres":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
            yield conn
    finally:
        engine.dispose()


def _check_foreign_keys(conn: Connection, db: Database) -> None:
    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise StoreError(
            f"migrating {db.name} would break {len(bad)} foreign key(s), first {tuple(bad[0])}; "
            "nothing was changed"
        )


# -- the command line (registered by the main CLI: see add_db_parser) ----------------------------


def _open(args: argparse.Namespace) -> Database:
    target = database_target(args)
    if args.db_command != "upgrade" and not is_postgres_url(target) and not Path(target).is_file():
        raise StoreError(f"no database at {target}")  # reading must not create one
    return Database.open(target)


def _cmd_upgrade(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        before, after = upgrade(db)
    finally:
        db.close()
    if before == after:
        print(f"{db.name}: at {after}, nothing to do")
    else:
        print(f"{db.name}: upgraded from {before or 'no version'} to {after}")
    return 0


def _cmd_current(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        rev = current(db)
    finally:
        db.close()
    where = "head" if rev == HEAD else f"behind head {HEAD}"
    print(f"{rev or 'none'} ({where})")
    return 1 if args.check and rev != HEAD else 0


def _cmd_history(args: argparse.Namespace) -> int:
    for rev, down, doc in history():
        print(f"{down or '<base>'} -> {rev}{' (head)' if rev == HEAD else ''}: {doc}")
    return 0


def add_db_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db upgrade|current|history`` to the main CLI's subparsers."""
    _add_actions(sub.add_parser("db", help=_HELP))


_HELP = "the hub database's schema: upgrade it, show its revision"


def _add_actions(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    q = actions.add_parser("upgrade", help="run the migrations up to the newest revision")
    add_database_options(q)
    q.set_defaults(func=_cmd_upgrade)
    q = actions.add_parser("current", help="print the revision the database is at")
    add_database_options(q)
    q.add_argument("--check", action="store_true", help="exit 1 unless it is at the newest")
    q.set_defaults(func=_cmd_current)
    q = actions.add_parser("history", help="list the revisions, oldest first")
    q.set_defaults(func=_cmd_history)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m farsight.migrate ACTION``: the ``farsight db`` commands on their own."""
    parser = argparse.ArgumentParser(prog="python -m farsight.migrate", description=_HELP)
    _add_actions(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except FarsightError as exc:
        print(f"farsight: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
