"""The durable buffer: append before ack, order, delete on ack, bounds and the full policies."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge.buffer import Buffer
from edge.config import BufferSettings
from edge.errors import BufferFullError


def _buf(tmp_path: Path, **kw) -> Buffer:
    return Buffer(tmp_path / "buffer.db", BufferSettings(**kw))


def test_appended_messages_survive_reopening_in_order(tmp_path: Path) -> None:
    b = _buf(tmp_path)
    flags = b.append([(f"t/{i % 3}", f"p{i}".encode()) for i in range(100)])
    assert flags == [True] * 100
    b.close()
    b = _buf(tmp_path)
    rows = b.read(0, 1000)
    assert [r.payload for r in rows] == [f"p{i}".encode() for i in range(100)]
    assert b.depth == 100 and b.bytes == sum(len(r.topic) + len(r.payload) for r in rows)
    b.close()


def test_the_callback_runs_after_the_commit_and_many_appends_share_a_commit(tmp_path: Path) -> None:
    b = _buf(tmp_path, commit_interval_ms=20)
    done = threading.Event()
    results: list[list[bool]] = []
    for i in range(500):
        b.submit(
            [("t", str(i).encode())],
            lambda f: (results.append(f), len(results) == 500 and done.set()),
        )
    assert done.wait(10)
    assert len(results) == 500 and all(r == [True] for r in results)
    # Visible to another connection: committed, not just queued.
    other = _buf(tmp_path)
    assert other.depth == 500
    other.close()
    b.close()


def test_ack_deletes_only_the_acknowledged_range(tmp_path: Path) -> None:
    b = _buf(tmp_path)
    b.append([("t", bytes([i])) for i in range(10)])
    rows = b.read(0, 4)
    b.ack(rows[0].id, rows[-1].id)
    b.flush()
    assert [r.payload for r in b.read(0, 100)] == [bytes([i]) for i in range(4, 10)]
    assert b.depth == 6 and b.acked == 4
    b.close()


def test_read_respects_the_cursor_and_the_byte_limit(tmp_path: Path) -> None:
    b = _buf(tmp_path)
    b.append([("t", b"x" * 100) for _ in range(10)])
    first = b.read(0, 10, max_bytes=350)
    assert len(first) == 3
    rest = b.read(first[-1].id, 100)
    assert len(rest) == 7
    assert len(b.read(0, 10, max_bytes=1)) == 1  # at least one, however large
    b.close()


def test_refuse_policy_turns_new_messages_away_and_counts_them(tmp_path: Path) -> None:
    b = _buf(tmp_path, max_bytes=1024, policy="refuse")
    flags = b.append([("t", b"x" * 99) for _ in range(20)])  # 100 bytes each
    assert flags == [True] * 10 + [False] * 10
    assert b.loss["refused"] == 10
    with pytest.raises(BufferFullError):
        b.append_one("t", b"y" * 99)
    b.close()
    b = _buf(tmp_path, max_bytes=1024, policy="refuse")
    assert b.loss["refused"] == 11  # persisted
    b.close()


def test_drop_oldest_makes_room_and_never_drops_what_was_published(tmp_path: Path) -> None:
    b = _buf(tmp_path, max_bytes=1024, policy="drop_oldest")
    b.append([("t", bytes([i]) * 99) for i in range(10)])
    published = b.read(0, 3)
    b.protect_upto = published[-1].id  # in flight: may already be at the hub
    b.append([("t", bytes([100 + i]) * 99) for i in range(5)])
    kept = [r.payload[0] for r in b.read(0, 100)]
    assert kept == [0, 1, 2, 8, 9, 100, 101, 102, 103, 104]
    assert b.loss["dropped"] == 5
    b.close()


def test_drop_oldest_refuses_when_everything_left_is_in_flight(tmp_path: Path) -> None:
    b = _buf(tmp_path, max_bytes=1024, policy="drop_oldest")
    b.append([("t", b"x" * 99) for _ in range(10)])
    b.protect_upto = b.read(0, 100)[-1].id
    assert b.append([("t", b"y" * 99)]) == [False]
    assert b.loss == {"dropped": 0, "refused": 1, "expired": 0}
    b.close()


def test_messages_older_than_the_age_bound_expire(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    b = Buffer(tmp_path / "buffer.db", BufferSettings(max_age_s=60), clock=lambda: now[0])
    b.append([("t", b"old")])
    now[0] += 61  # the old message is past the age bound; the new one will not be
    b._next_sweep = 0  # sweep on the next commit
    b.append([("t", b"new")])
    assert [r.payload for r in b.read(0, 10)] == [b"new"]
    assert b.loss["expired"] == 1
    b.close()


def test_sequence_numbers_never_go_back_across_restarts(tmp_path: Path) -> None:
    b = _buf(tmp_path)
    seqs = [b.next_seq() for _ in range(5)]
    b.close()
    b = _buf(tmp_path)
    assert b.next_seq() > seqs[-1]
    b.close()
