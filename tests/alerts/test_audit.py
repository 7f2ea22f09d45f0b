"""The hash-chained audit log: canonical form, hashing, appends in callers' transactions,
concurrency, the append-only triggers, and detection of tampering by someone with the file."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from alerts.audit import (
    GENESIS,
    Anchor,
    canonical_json,
    entry_hash,
    hashed_fields,
    ms_to_at,
    read_anchor,
    verify_chain,
)
from alerts.audit_store import SqlAuditLog, SqliteAuditLog
from farsight.db import Database, is_postgres_url, to_pyformat
from farsight.errors import AuditError, StoreError

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "farsight.db"


@pytest.fixture
def log(backend: str) -> Iterator[SqliteAuditLog]:
    """The audit log on each backend in turn (SQLite file, then PostgreSQL database)."""
    with SqlAuditLog(backend) as audit:
        yield audit


@pytest.fixture
def sqlite_log(db_path: Path) -> Iterator[SqliteAuditLog]:
    with SqliteAuditLog(db_path) as audit:
        yield audit


def fill(log: SqliteAuditLog, n: int) -> None:
    for i in range(n):
        log.append(
            "li.wei" if i % 2 else "rules",
            "ack" if i % 3 else "opened",
            f"alert:{i % 4}",
            {"i": i, "note": f"第{i}条"},
            at=T0 + timedelta(seconds=i),
        )


class _PgAttacker:
    """A superuser's plain psycopg connection, ``?`` placeholders like sqlite3's."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str, params: tuple = ()) -> Any:
        return self.conn.execute(to_pyformat(sql), params)


def attacker(target: str | Path) -> Any:
    """Someone with write access to the database: a plain connection, triggers dropped."""
    if is_postgres_url(target):
        conn: Any = _PgAttacker(str(target))
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_append_only"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name} ON audit_log")
        return conn
    conn = sqlite3.connect(target, isolation_level=None)
    for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_append_only"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    return conn


def row(conn: Any, seq: int) -> tuple[Any, ...]:
    return conn.execute(
        "SELECT seq, at, actor, action, subject, data, prev_hash, hash FROM audit_log"
        " WHERE seq = ?",
        (seq,),
    ).fetchone()


# -- canonical form and hashing --------------------------------------------------------------


def test_known_answer_vector() -> None:
    """Pins the exact bytes hashed, for the PostgreSQL backend and any outside auditor."""
    entry = hashed_fields(
        1,
        datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC),
        "li.wei",
        "ack",
        "alert:42",
        {"to": "acknowledged", "from": "open", "n": 2},
    )
    expected_bytes = (
        b'{"action":"ack","actor":"li.wei","at":"2026-11-25T08:00:00.123Z",'
        b'"data":{"from":"open","n":2,"to":"acknowledged"},"seq":1,"subject":"alert:42"}'
    )
    assert canonical_json(entry) == expected_bytes
    assert (
        entry_hash(GENESIS, entry)
        == hashlib.sha256(GENESIS.encode() + b"\n" + expected_bytes).hexdigest()
    )


def test_canonical_form_details() -> None:
    assert (
        canonical_json({"b": [1, 2.5, None, True], "a": {"y": 'é\n"', "x": -0.0}})
        == '{"a":{"x":-0.0,"y":"é\\n\\""},"b":[1,2.5,null,true]}'.encode()
    )
    # RFC 8785 order: UTF-16 code units, so an astral character (D83D ...) sorts before U+E000.
    assert canonical_json({"\ue000": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ue000":1}'.encode()
    # Types that JSON would conflate stay apart.
    assert canonical_json({"a": True}) != canonical_json({"a": 1})
    assert canonical_json({"a": 1}) != canonical_json({"a": 1.0})
    assert canonical_json({"a": (1, 2)}) == canonical_json({"a": [1, 2]})


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({1: "x"}, TypeError),  # would collide with {"1": "x"}
        ({"a": Decimal("1.5")}, TypeError),  # give decimals as strings
        ({"a": {1, 2}}, TypeError),
        ({"a": float("nan")}, ValueError),
        ({"a": float("inf")}, ValueError),
        ({"a": "\ud800"}, ValueError),  # lone surrogate: not UTF-8
        ({"\udfff": 1}, ValueError),
        ([1, 2], TypeError),  # an entry is an object
    ],
)
def test_canonical_json_refuses_what_is_not_stable_json(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_json(value)


def test_canonical_json_refuses_cycles() -> None:
    d: dict[str, Any] = {}
    d["self"] = d
    with pytest.raises(ValueError, match="circular"):
        canonical_json(d)


def test_entry_hash_refuses_a_bad_prev_hash() -> None:
    for bad in ("", "0" * 63, "G" * 64, GENESIS.upper().replace("0", "A")):
        with pytest.raises(ValueError):
            entry_hash(bad, {"seq": 1})


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)
_objects = st.dictionaries(_text, _json, max_size=6)


def _reorder(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _reorder(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_reorder(v, rnd) for v in value]
    return value


@given(_objects)
def test_the_fast_path_writes_the_same_bytes_as_the_careful_encoder(obj: dict[str, Any]) -> None:
    from alerts.audit import _encode

    out: list[str] = []
    _encode(obj, out, set())
    assert canonical_json(obj) == "".join(out).encode("utf-8")


def test_keys_beyond_the_bmp_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, before U+E000: the standard encoder's code-point order
    # would put it last, so such keys take the careful path.
    assert canonical_json({"\ue000": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ue000":1}'.encode()


@given(_objects, st.randoms(use_true_random=False))
def test_canonical_json_ignores_key_order_and_survives_a_round_trip(
    obj: dict[str, Any], rnd: random.Random
) -> None:
    once = canonical_json(obj)
    assert canonical_json(_reorder(obj, rnd)) == once
    # verify() re-canonicalises the stored text, so parse and re-encode must be a fixed point.
    assert canonical_json(json.loads(once)) == once


_entries = st.fixed_dictionaries(
    {
        "seq": st.integers(1, 2**40),
        "at": st.integers(0, 4_000_000_000_000).map(ms_to_at),
        "actor": _text.filter(bool),
        "action": _text.filter(bool),
        "subject": _text.filter(bool),
        "data": _objects,
    }
)
_hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@given(
    _entries,
    _hex64,
    st.sampled_from(["seq", "at", "actor", "action", "subject", "data", "prev_hash"]),
    st.data(),
)
def test_hash_changes_when_any_field_changes(
    fields: dict[str, Any], prev: str, which: str, data: st.DataObject
) -> None:
    before = entry_hash(prev, hashed_fields(**fields))
    changed = dict(fields)
    if which == "prev_hash":
        other = data.draw(_hex64)
        assume(other != prev)
        assert entry_hash(other, hashed_fields(**fields)) != before
        return
    changed[which] = data.draw(_entries)[which]
    assume(canonical_json(hashed_fields(**changed)) != canonical_json(hashed_fields(**fields)))
    assert entry_hash(prev, hashed_fields(**changed)) != before


# -- appending -------------------------------------------------------------------------------


def test_append_links_entries_and_verify_walks_them(log: SqliteAuditLog) -> None:
    assert log.head() == (0, GENESIS)
    assert log.verify().ok and log.verify().entries == 0
    first = log.append(
        "li.wei",
        "ack",
        "alert:42",
        {"from": "open", "to": "acknowledged"},
        at=datetime(2026, 11, 25, 16, 0, 0, 123999, tzinfo=timezone(timedelta(hours=8))),
    )
    # Stored in milliseconds and UTC, so the returned entry is what a reader re-hashes.
    assert first.at == datetime(2026, 11, 25, 8, 0, 0, 123000, tzinfo=UTC)
    assert first.seq == 1 and first.prev_hash == GENESIS
    assert first.hash == entry_hash(GENESIS, first.hashed())
    second = log.append("rules", "resolved", "alert:42", {"value": 12})
    assert second.seq == 2 and second.prev_hash == first.hash
    fill(log, 8)
    result = log.verify()
    assert (
        result.ok and result.entries == 10 and result.first_bad_seq is None and result.reason == ""
    )
    assert log.head() == (10, result.head)
    assert result.summary() == f"audit chain ok: 10 entries, head {result.head}"


def test_entries_give_a_subjects_timeline(log: SqliteAuditLog) -> None:
    fill(log, 12)
    timeline = log.entries(subject="alert:1")
    assert [e.seq for e in timeline] == [2, 6, 10]
    assert timeline[0].data == {"i": 1, "note": "第1条"} and timeline[0].at == T0 + timedelta(
        seconds=1
    )
    assert [e.seq for e in log.entries(after_seq=9, limit=2)] == [10, 11]
    assert [e.seq for e in log.entries(subject="alert:1", after_seq=2)] == [6, 10]
    assert log.entries(subject="alert:999") == []
    assert all(e.hash == entry_hash(e.prev_hash, e.hashed()) for e in log.entries())
    with pytest.raises(ValueError):
        log.entries(limit=0)


def test_bad_arguments_raise_and_write_nothing(log: SqliteAuditLog) -> None:
    with pytest.raises(ValueError):
        log.append("", "ack", "alert:1")
    with pytest.raises(ValueError):
        log.append("li.wei", "ack", "alert:1", at=datetime(2026, 1, 1))  # naive
    with pytest.raises(TypeError):
        log.append("li.wei", "ack", "alert:1", {"reading": Decimal("35.2")})
    with pytest.raises(ValueError):
        log.append("li.wei", "ack", "alert:1", {"v": float("nan")})
    assert log.head() == (0, GENESIS)


def test_entry_commits_and_rolls_back_with_the_callers_transaction(db_path: Path) -> None:
    # A table of the caller's own (the hub schema's alerts table comes with the audit log's).
    db = Database.open(
        db_path, "CREATE TABLE IF NOT EXISTS cases (id INTEGER PRIMARY KEY, state TEXT NOT NULL);"
    )
    log = SqliteAuditLog(db)
    with db.transaction() as c:
        c.execute("INSERT INTO cases (id, state) VALUES (42, 'open')")
        log.append_in(c, "rules", "opened", "alert:42", {"state": "open"})

    with pytest.raises(RuntimeError, match="officer's session expired"), db.transaction() as c:
        c.execute("UPDATE cases SET state = 'acknowledged' WHERE id = 42")
        entry = log.append_in(c, "li.wei", "ack", "alert:42", {"to": "acknowledged"})
        assert entry.seq == 2
        raise RuntimeError("officer's session expired")

    assert db.query("SELECT state FROM cases WHERE id = 42")[0][0] == "open"
    assert [e.action for e in log.entries()] == ["opened"]
    assert log.verify().ok and log.verify().entries == 1
    # The rolled-back seq is reused: no gap in the chain.
    assert log.append("li.wei", "ack", "alert:42").seq == 2
    assert log.verify().ok
    db.close()


def test_append_in_needs_an_open_transaction(db_path: Path) -> None:
    db = Database.open(db_path)
    log = SqliteAuditLog(db)
    conn = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(AuditError, match="open transaction"):
        log.append_in(conn, "li.wei", "ack", "alert:1")
    conn.close()
    db.close()


def test_concurrent_appenders_on_their_own_connections_keep_one_chain(db_path: Path) -> None:
    SqliteAuditLog(db_path).close()  # schema once, before the race
    n = 200
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def own_transactions(actor: str) -> None:
        try:
            with SqliteAuditLog(Database.open(db_path)) as log:
                start.wait()
                for i in range(n):
                    log.append(actor, "note", f"alert:{i % 7}", {"i": i})
                    time.sleep(
                        0.0005
                    )  # let the other writer in: without it one thread wins every lock
                log.db.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def inside_store_transactions(actor: str) -> None:
        try:
            db = Database.open(
                db_path, "CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY, i INTEGER);"
            )
            log = SqliteAuditLog(db)
            start.wait()
            for i in range(n):
                with db.transaction() as c:
                    c.execute("INSERT INTO changes (i) VALUES (?)", (i,))
                    log.append_in(c, actor, "change", f"alert:{i % 5}", {"i": i})
                time.sleep(0.0005)
            db.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [
        threading.Thread(target=own_transactions, args=("officer-a",)),
        threading.Thread(target=inside_store_transactions, args=("officer-b",)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with SqliteAuditLog(db_path) as log:
        result = log.verify()
        assert result.ok, result.summary()
        assert result.entries == 2 * n
        entries = log.entries(limit=10 * n)
        assert [e.seq for e in entries] == list(range(1, 2 * n + 1))
        assert sum(e.actor == "officer-a" for e in entries) == n
        assert [e.data["i"] for e in entries if e.actor == "officer-b"] == list(range(n))
        # The writers really raced: their entries interleave in the chain.
        switches = sum(a.actor != b.actor for a, b in itertools.pairwise(entries))
        assert switches >= 5


def test_a_stale_deferred_transaction_cannot_fork_the_chain(
    sqlite_log: SqliteAuditLog, db_path: Path
) -> None:
    log = sqlite_log
    log.append("rules", "opened", "alert:1")
    stale = sqlite3.connect(db_path, isolation_level=None, timeout=0.1)
    stale.execute("BEGIN DEFERRED")
    stale.execute("SELECT count(*) FROM audit_log").fetchone()  # snapshot taken: head is seq 1
    log.append("li.wei", "ack", "alert:1")  # another writer moves the head
    with pytest.raises(AuditError, match="cannot append"):
        log.append_in(stale, "zhang.san", "close", "alert:1")
    stale.execute("ROLLBACK")
    stale.close()
    assert log.verify().ok and log.head()[0] == 2


# -- append-only in the database -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE audit_log SET data = '{}' WHERE seq = 2", "UPDATE refused"),
        ("DELETE FROM audit_log WHERE seq = 3", "DELETE refused"),
        ("DELETE FROM audit_log", "DELETE refused"),
        # REPLACE's implicit delete does not fire DELETE triggers; the insert trigger stops it.
        (
            (
                "INSERT OR REPLACE INTO audit_log"
                f" VALUES (2, 0, 'x', 'x', 'x', '{{}}', '{GENESIS}', '{GENESIS}')"
            ),
            "only the next seq",
        ),
        (
            f"INSERT INTO audit_log VALUES (9, 0, 'x', 'x', 'x', '{{}}', '{GENESIS}', '{GENESIS}')",
            "only the next seq",
        ),
        (
            f"INSERT INTO audit_log VALUES (4, 0, 'x', 'x', 'x', '{{}}', '{GENESIS}', '{GENESIS}')",
            "only the next seq",
        ),
    ],
)
def test_triggers_refuse_changes_through_any_normal_connection(
    sqlite_log: SqliteAuditLog, db_path: Path, sql: str, message: str
) -> None:
    log = sqlite_log
    fill(log, 3)
    plain = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match=f"append-only: {message}"):
        plain.execute(sql)
    plain.close()
    # Through the project's Database the same refusal arrives as a StoreError.
    other = Database.open(db_path)
    with pytest.raises(StoreError, match=f"append-only: {message}"), other.transaction() as c:
        c.execute(sql)
    other.close()
    assert log.verify().ok and log.verify().entries == 3
    assert log.missing_triggers() == []


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE audit_log SET data = '{}' WHERE seq = 2", "UPDATE refused"),
        ("DELETE FROM audit_log WHERE seq = 3", "DELETE refused"),
        ("TRUNCATE audit_log", "TRUNCATE refused"),
        (
            f"INSERT INTO audit_log VALUES (9, 0, 'x', 'x', 'x', '{{}}', '{GENESIS}', '{GENESIS}')",
            "only the next seq",
        ),
        (
            f"INSERT INTO audit_log VALUES (4, 0, 'x', 'x', 'x', '{{}}', '{GENESIS}', '{GENESIS}')",
            "only the next seq",
        ),
    ],
)
def test_postgres_triggers_refuse_update_delete_truncate_and_forged_inserts(
    postgres_url: str, sql: str, message: str
) -> None:
    import psycopg

    with SqlAuditLog(postgres_url) as log:
        fill(log, 3)
        with (
            psycopg.connect(postgres_url, autocommit=True) as plain,
            pytest.raises(psycopg.errors.RaiseException, match=f"append-only: {message}"),
        ):
            plain.execute(sql)
        other = Database.open(postgres_url)
        with (
            pytest.raises(StoreError, match=f"append-only: {message}"),
            other.transaction() as c,
        ):
            c.execute(sql)
        other.close()
        assert log.verify().ok and log.verify().entries == 3
        assert log.missing_triggers() == []


# -- tampering by someone with the file ------------------------------------------------------


@pytest.fixture
def chain(log: SqliteAuditLog) -> SqliteAuditLog:
    fill(log, 10)
    assert log.verify().ok
    return log


def test_edited_data_is_a_hash_mismatch_at_that_seq(chain: SqliteAuditLog, backend: str) -> None:
    before = chain.verify()
    evil = attacker(backend)
    evil.execute(
        "UPDATE audit_log SET data = ? WHERE seq = 5",
        (canonical_json({"i": 4, "note": "nothing happened"}).decode(),),
    )
    assert chain.missing_triggers() == [
        "audit_log_no_update",
        "audit_log_no_delete",
        "audit_log_append_only",
    ]
    result = chain.verify()
    assert not result.ok and result.first_bad_seq == 5 and result.reason.startswith("hash mismatch")
    assert result.entries == 4 and result.head == row(evil, 4)[7]
    assert result.summary().startswith("audit chain broken at seq 5: hash mismatch")
    assert before.ok


@pytest.mark.parametrize(
    ("column", "value"), [("actor", "someone.else"), ("at", 0), ("subject", "alert:9")]
)
def test_any_edited_column_is_detected(
    chain: SqliteAuditLog, backend: str, column: str, value: Any
) -> None:
    attacker(backend).execute(f"UPDATE audit_log SET {column} = ? WHERE seq = 7", (value,))
    result = chain.verify()
    assert (result.ok, result.first_bad_seq) == (False, 7) and "hash mismatch" in result.reason


def test_rewritten_hash_of_an_edited_row_breaks_the_next_link(
    chain: SqliteAuditLog, backend: str
) -> None:
    evil = attacker(backend)
    r = row(evil, 5)
    data = {"i": 4, "note": "edited"}
    forged = entry_hash(r[6], hashed_fields(5, ms_to_at(r[1]), r[2], r[3], r[4], data))
    evil.execute(
        "UPDATE audit_log SET data = ?, hash = ? WHERE seq = 5",
        (canonical_json(data).decode(), forged),
    )
    result = chain.verify()
    assert (result.ok, result.first_bad_seq) == (False, 6) and result.reason.startswith("prev_hash")


def test_non_canonical_data_text_is_detected(chain: SqliteAuditLog, backend: str) -> None:
    # Same meaning, different bytes: still not what Farsight wrote.
    attacker(backend).execute(
        "UPDATE audit_log SET data = ? WHERE seq = 3", ('{"note": "第2条", "i": 2}',)
    )
    result = chain.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3) and "canonical" in result.reason


def test_deleted_middle_row_is_a_seq_gap(chain: SqliteAuditLog, backend: str) -> None:
    attacker(backend).execute("DELETE FROM audit_log WHERE seq = 5")
    result = chain.verify()
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 6, 4)
    assert result.reason.startswith("seq gap: seq 5 missing")


def test_deleted_row_with_renumbered_successors_breaks_the_link(
    chain: SqliteAuditLog, backend: str
) -> None:
    evil = attacker(backend)
    evil.execute("DELETE FROM audit_log WHERE seq = 5")
    evil.execute(
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq > 5"
    )  # two steps: the key never collides
    evil.execute("UPDATE audit_log SET seq = seq - 1001 WHERE seq > 1005")
    result = chain.verify()
    assert (result.ok, result.first_bad_seq) == (False, 5) and result.reason.startswith("prev_hash")


def test_swapped_rows_are_detected(chain: SqliteAuditLog, backend: str) -> None:
    evil = attacker(backend)
    r3, r4 = row(evil, 3), row(evil, 4)
    update = (
        "UPDATE audit_log SET at = ?, actor = ?, action = ?, subject = ?, data = ?, prev_hash = ?,"
        " hash = ? WHERE seq = ?"
    )
    evil.execute(update, (*r4[1:], 3))
    evil.execute(update, (*r3[1:], 4))
    result = chain.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3) and result.reason.startswith("prev_hash")


def test_forged_row_inserted_in_the_middle_is_detected(chain: SqliteAuditLog, backend: str) -> None:
    evil = attacker(backend)
    r4 = row(evil, 4)
    # Make room at seq 5 (two steps, so the primary key never collides), then a well-formed,
    # correctly hashed forgery linked to seq 4: the attacker knows the algorithm.
    evil.execute("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5")
    evil.execute("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1005")
    data = {"note": "alert closed after site visit"}
    at = ms_to_at(r4[1]) + timedelta(milliseconds=1)
    forged = entry_hash(r4[7], hashed_fields(5, at, "zhang.san", "close", "alert:0", data))
    evil.execute(
        "INSERT INTO audit_log VALUES (5, ?, 'zhang.san', 'close', 'alert:0', ?, ?, ?)",
        (r4[1] + 1, canonical_json(data).decode(), r4[7], forged),
    )
    result = chain.verify()
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 6, 5)
    assert result.reason.startswith("prev_hash")


def test_truncated_tail_after_an_anchor_is_detected(
    chain: SqliteAuditLog, backend: str, tmp_path: Path
) -> None:
    anchor_file = tmp_path / "anchors" / "2026-11-25.json"
    anchor = chain.export_anchor(anchor_file, at=datetime(2026, 11, 25, 23, 59, tzinfo=UTC))
    assert json.loads(anchor_file.read_text()) == {
        "seq": 10,
        "hash": chain.head()[1],
        "at": "2026-11-25T23:59:00.000Z",
        "entries": 10,
    }
    assert read_anchor(anchor_file) == anchor
    fill(chain, 2)  # the chain grows past the anchor: still fine
    assert chain.verify(anchor=anchor_file).ok

    attacker(backend).execute("DELETE FROM audit_log WHERE seq >= 8")
    assert chain.verify().ok  # the links alone cannot see a clean cut at the tail
    result = chain.verify(anchor=anchor_file)
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 8, 7)
    assert "removed from the tail" in result.reason


def test_tail_rewritten_with_recomputed_hashes_fails_against_the_anchor(
    chain: SqliteAuditLog, backend: str, tmp_path: Path
) -> None:
    anchor = chain.export_anchor(tmp_path / "anchor.json")
    evil = attacker(backend)
    prev = row(evil, 6)[7]
    for seq in range(7, 11):
        r = row(evil, seq)
        data = {"i": seq, "note": "rewritten"}
        h = entry_hash(prev, hashed_fields(seq, ms_to_at(r[1]), r[2], r[3], r[4], data))
        evil.execute(
            "UPDATE audit_log SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (canonical_json(data).decode(), prev, h, seq),
        )
        prev = h
    assert chain.verify().ok
    result = chain.verify(anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 10) and result.reason.startswith(
        "anchor mismatch"
    )


def test_dropped_table_fails_against_the_anchor(
    chain: SqliteAuditLog, backend: str, tmp_path: Path
) -> None:
    anchor = chain.export_anchor(tmp_path / "anchor.json")
    evil = attacker(backend)
    evil.execute("DROP TABLE audit_log")
    with pytest.raises(AuditError, match="no audit_log table"):
        SqlAuditLog(backend, create=False)
    # The schema is current, so nothing makes the table again behind the operator's back: a
    # writer refuses to start a fresh chain.
    with pytest.raises(AuditError, match="no audit_log table; its schema is current"):
        SqlAuditLog(backend)
    # With the version row gone too, the database is adopted like one from before migrations:
    # the table is made again, empty, and the anchor tells that the chain was removed.
    evil.execute("DELETE FROM alembic_version")
    with SqlAuditLog(backend) as fresh:
        result = fresh.verify(anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (
        False,
        1,
    ) and "removed from the tail" in result.reason


def test_a_broken_chain_is_not_anchored(
    chain: SqliteAuditLog, backend: str, tmp_path: Path
) -> None:
    attacker(backend).execute("DELETE FROM audit_log WHERE seq = 2")
    with pytest.raises(AuditError, match="not anchoring a broken chain"):
        chain.export_anchor(tmp_path / "anchor.json")
    assert not (tmp_path / "anchor.json").exists()


def test_invalid_anchor_files_are_refused(chain: SqliteAuditLog, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    for text in (
        "not json",
        "[]",
        '{"seq": 1}',
        '{"seq": "1", "hash": "00", "at": "x", "entries": 1}',
        json.dumps({"seq": 1, "hash": "xyz", "at": "2026-11-25T00:00:00.000Z", "entries": 1}),
    ):
        bad.write_text(text)
        with pytest.raises(AuditError):
            chain.verify(anchor=bad)
    with pytest.raises(AuditError, match="cannot read anchor"):
        chain.verify(anchor=tmp_path / "missing.json")


def test_verify_chain_is_pure_and_reports_out_of_order_rows() -> None:
    at = datetime(2026, 11, 25, tzinfo=UTC)
    h1 = entry_hash(GENESIS, hashed_fields(1, at, "a", "b", "c", {}))
    good = (1, 1_795_564_800_000, "a", "b", "c", "{}", GENESIS, h1)
    assert verify_chain([good]).ok
    result = verify_chain([good, good])
    assert (result.ok, result.first_bad_seq) == (False, 1) and "out of order" in result.reason
    anchor = Anchor(seq=1, hash=h1, at=at, entries=1)
    assert verify_chain([good], anchor).ok
    assert not verify_chain([], anchor).ok
