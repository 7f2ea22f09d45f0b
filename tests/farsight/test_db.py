"""Work after a commit and consistent snapshots, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from farsight.db import Database


@pytest.fixture
def db(backend: str) -> Iterator[Database]:
    d = Database.open(backend)
    d.executescript("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    yield d
    d.close()


def test_after_commit_runs_once_the_outermost_transaction_commits(db: Database) -> None:
    seen: list[tuple[str, int]] = []

    def count() -> int:
        return int(db.query("SELECT count(*) FROM t")[0][0])

    with db.transaction() as c:
        c.execute("INSERT INTO t (x) VALUES (1)")
        with db.transaction():
            db.after_commit(lambda: seen.append(("inner", count())))
        assert seen == [], "a joined transaction has not committed"
        db.after_commit(lambda: seen.append(("outer", count())))
    assert seen == [("inner", 1), ("outer", 1)]
    db.after_commit(lambda: seen.append(("none open", count())))
    assert seen[-1] == ("none open", 1)


def test_after_commit_is_dropped_on_rollback(db: Database) -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError), db.transaction() as c:
        c.execute("INSERT INTO t (x) VALUES (2)")
        db.after_commit(lambda: seen.append("ran"))
        raise RuntimeError("rolled back")
    with db.transaction():
        pass
    assert seen == []


def test_a_snapshot_does_not_see_later_commits(db: Database, backend: str) -> None:
    with db.transaction() as c:
        c.execute("INSERT INTO t (x) VALUES (1)")
    other = Database.open(backend)
    try:
        with db.snapshot() as snap:
            assert snap.execute("SELECT count(*) FROM t").fetchone()[0] == 1
            with other.transaction() as c:
                c.execute("INSERT INTO t (x) VALUES (2)")
            assert snap.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        assert int(db.query("SELECT count(*) FROM t")[0][0]) == 2
    finally:
        other.close()
