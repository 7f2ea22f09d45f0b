"""The hub database's migrations (farsight/migrate.py) on SQLite and PostgreSQL.

An empty database reaches the newest revision; one written before migrations is adopted with its
rows; a current one opens without the migration tool; running the migrations again is harmless;
processes opening one fresh database at once migrate it once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.outbox import Outbox
from alerts.silences import SilenceStore
from alerts.store import COLUMNS, AlertStore
from farsight import migrate
from farsight.db import Database
from farsight.errors import StoreError
from farsight.migrate import HEAD, current, ensure_schema, history, upgrade
from hub.auth import TokenStore
from ingest.edge_batches import EdgeBatchDecoder
from ingest.edge_health import GatewayMonitor
from ingest.store import ReadingStore
from rules.state import RuleStateStore
from tests.factories import T0, reading

ROOT = Path(__file__).resolve().parents[2]

TABLES = {
    "readings",
    "dead_letters",
    "counters",
    "irregularities",
    "edge_gateways",
    "edge_batches",
    "edge_status",
    "rule_state",
    "alerts",
    "alert_events",
    "audit_log",
    "silences",
    "outbox",
    "api_tokens",
    "evidence_uploads",
    "alembic_version",
}


@pytest.fixture(params=["sqlite", "postgres"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend (the ``backend`` fixture's are at the newest schema)."""
    if request.param == "sqlite":
        yield str(tmp_path / "farsight.db")
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


def tables(db: Database) -> set[str]:
    if db.dialect == "postgres":
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {r[0] for r in db.query(sql)}


def columns(db: Database, table: str) -> list[str]:
    if db.dialect == "postgres":
        rows = db.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position",
            (table,),
        )
        return [r[0] for r in rows]
    return [r["name"] for r in db.query(f"PRAGMA table_info({table})")]


def open_every_store(db: Database) -> None:
    from farsight.settings import EdgeHubSettings

    ReadingStore(db)
    RuleStateStore(db)
    alerts = AlertStore(db)
    SilenceStore(db, audit=alerts.audit)
    Outbox(db)
    TokenStore(db, ["env"])
    EdgeBatchDecoder(db, {})
    GatewayMonitor(db, EdgeHubSettings())


def test_the_head_is_the_newest_revision_file() -> None:
    revs = history()
    assert revs[-1][0] == HEAD and revs[0][1] is None
    # One line of history: each revision follows the one before it.
    assert [down for _, down, _ in revs[1:]] == [rev for rev, _, _ in revs[:-1]]


def test_an_empty_database_reaches_head_with_the_whole_schema(empty: str) -> None:
    db = Database.open(empty)
    assert current(db) is None
    assert upgrade(db) == (None, HEAD)
    assert current(db) == HEAD
    assert TABLES <= tables(db)
    # The schema and the store's code agree on the alerts table.
    assert columns(db, "alerts") == list(COLUMNS)
    if db.dialect == "postgres":
        triggers = {
            r[0]
            for r in db.query(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass"
                " AND NOT tgisinternal"
            )
        }
        assert triggers == {
            "audit_log_no_update",
            "audit_log_no_delete",
            "audit_log_no_truncate",
            "audit_log_append_only",
        }
        assert db.query("SELECT 1 FROM pg_indexes WHERE indexname = 'alerts_text_trgm'")
    else:
        assert "alerts_text" in tables(db)
    db.close()


def test_running_the_migrations_again_is_harmless(empty: str) -> None:
    store = ReadingStore(empty)
    assert store.write_batch([reading("pm25", 1.0, 0)], received=T0) == [True]
    assert upgrade(store.db) == (HEAD, HEAD)
    assert upgrade(store.db) == (HEAD, HEAD)
    assert store.count() == 1
    assert store.db.query("SELECT count(*) FROM alembic_version")[0][0] == 1
    store.close()


def test_a_current_database_opens_without_running_the_migrations(
    empty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[Database] = []
    real = migrate.upgrade

    def counted(db: Database, revision: str = "head") -> tuple[str | None, str | None]:
        runs.append(db)
        return real(db, revision)

    monkeypatch.setattr(migrate, "upgrade", counted)
    fresh = Database.open(empty)
    open_every_store(fresh)  # eight stores on one new database: migrated once
    assert len(runs) == 1
    fresh.close()
    for _ in range(3):
        again = Database.open(empty)
        open_every_store(again)
        again.close()
    assert len(runs) == 1


def test_opening_a_current_database_does_not_load_the_migration_tool(tmp_path: Path) -> None:
    path = tmp_path / "farsight.db"
    AlertStore(path).close()
    probe = (
        "import sys\n"
        "from alerts.store import AlertStore\n"
        "from ingest.store import ReadingStore\n"
        f"AlertStore({str(path)!r}).close(); ReadingStore({str(path)!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'sqlalchemy')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_connections_opening_one_fresh_database_at_once_migrate_it_once(empty: str) -> None:
    # The file exists (in WAL mode) before the race: the race is the migrations', not SQLite's
    # first switch to WAL.
    Database.open(empty).close()
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            db = Database.open(empty)
            start.wait(timeout=60)
            AlertStore(db)
            db.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            start.abort()  # the others stop waiting
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    db = Database.open(empty)
    assert db.query("SELECT version_num FROM alembic_version")[0][0] == HEAD
    assert db.query("SELECT count(*) FROM alembic_version")[0][0] == 1
    db.close()


def test_a_database_from_before_migrations_is_adopted_with_its_rows(empty: str) -> None:
    # What an older Farsight left: some stores' tables (each made its own), with rows.
    db = Database.open(empty)
    with db.transaction() as c:
        c.execute(
            "CREATE TABLE rule_state (rule TEXT NOT NULL, scope TEXT NOT NULL,"
            " digest TEXT NOT NULL, state TEXT NOT NULL, saved_at BIGINT NOT NULL,"
            " PRIMARY KEY (rule, scope))"
        )
        c.execute(
            "INSERT INTO rule_state VALUES (?, ?, ?, ?, ?)",
            ("pm25-high", '["yc-aq-1"]', "d1", '{"since": 3}', 1),
        )
    assert current(db) is None
    state = RuleStateStore(db)
    assert state.count() == 1 and current(db) == HEAD
    assert TABLES <= tables(db)
    db.close()


def test_a_sqlite_file_at_the_last_hand_made_version_is_adopted_without_a_rebuild(
    tmp_path: Path,
) -> None:
    # Version 4, the last the stores migrated by hand: today's layout, PRAGMA user_version = 4
    # and no version table.
    path = tmp_path / "farsight.db"
    store = AlertStore(path)
    store.db.executescript("DROP TABLE alembic_version; PRAGMA user_version = 4;")
    store.close()
    db = Database.open(path)
    page = db.query("SELECT rootpage FROM sqlite_master WHERE name = 'alerts'")[0][0]
    assert current(db) is None
    ensure_schema(db)
    assert current(db) == HEAD
    assert db.query("SELECT rootpage FROM sqlite_master WHERE name = 'alerts'")[0][0] == page
    db.close()


def test_a_database_at_an_unknown_revision_is_refused(empty: str) -> None:
    db = ensure_schema(Database.open(empty))
    with db.transaction() as c:
        c.execute("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    with pytest.raises(StoreError, match="9999"):
        ReadingStore(empty)


def test_the_db_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "farsight.db")
    assert migrate.main(["current", "--db", path]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not Path(path).exists()  # reading made no file

    assert migrate.main(["upgrade", "--db", path]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: upgraded from no version to {HEAD}"
    assert migrate.main(["upgrade", "--db", path]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: at {HEAD}, nothing to do"
    assert migrate.main(["current", "--check", "--db", path]) == 0
    assert capsys.readouterr().out.strip() == f"{HEAD} (head)"
    assert migrate.main(["history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("<base> -> 0001: ")
    assert lines[-1].startswith(f"{history()[-2][0]} -> {HEAD} (head): ")

    # As the main CLI registers them: `farsight db ...`.
    parser = argparse.ArgumentParser(prog="farsight")
    migrate.add_db_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["db", "current", "--db", path])
    assert args.func(args) == 0 and capsys.readouterr().out.strip() == f"{HEAD} (head)"

    other = str(tmp_path / "other.db")
    Database.open(other).close()
    assert migrate.main(["current", "--check", "--db", other]) == 1
    assert capsys.readouterr().out.strip() == f"none (behind head {HEAD})"


def test_tokens_from_before_roles_keep_their_power_and_get_an_expiry(empty: str) -> None:
    import hashlib
    import time

    from hub.auth import Role

    db = Database.open(empty)
    assert upgrade(db, "0001") == (None, "0001")
    created = int(time.time() * 1000)
    with db.transaction() as c:
        for user, dept in (("alice", "env"), ("root", None)):
            c.execute(
                'INSERT INTO api_tokens (token_hash, "user", department, created)'
                " VALUES (?, ?, ?, ?)",
                (hashlib.sha256(f"fs_{user}".encode()).hexdigest(), user, dept, created),
            )
    db.close()
    store = TokenStore(empty, ["env"])  # opening the store migrates
    assert current(store.db) == HEAD
    alice, root = store.verify("fs_alice"), store.verify("fs_root")
    # What a token could do before roles existed: a department's everything in it (supervisor),
    # a province-wide one also the operations views (admin).
    assert (alice.role, root.role) == (Role.SUPERVISOR, Role.ADMIN)
    days = (alice.expires.timestamp() * 1000 - created) / 86_400_000 if alice.expires else 0
    assert 29.9 < days < 30.1
    assert [t.kind for t in store.list()] == ["api", "api"]
    with pytest.raises(StoreError), store.db.transaction() as c:
        c.execute("UPDATE api_tokens SET role = 'root' WHERE \"user\" = 'alice'")
    store.close()
