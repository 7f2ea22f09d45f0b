"""The durable store-and-forward buffer: an SQLite (WAL) queue with group commit.

Collectors :meth:`Buffer.submit` messages and acknowledge them to their source (PUBACK to the
local broker, the HJ 212 data response) only in the callback, which runs after the commit that
holds them was fsynced: a crash or power cut after the acknowledgement cannot lose them. One
writer thread commits whatever accumulated while the previous fsync ran (group commit), so the
cost of an fsync is shared by every message that arrived meanwhile.

The uplink reads rows in id order (which is arrival order, so every stream keeps its order),
publishes them and calls :meth:`Buffer.ack` with the id range once the broker's PUBACK arrives;
only then are the rows deleted. Rows at or below :attr:`Buffer.protect_upto` have been published
and may have reached the hub, so the full policy never drops them: what it reports as lost is
exactly what the hub will never see.

Bounds: ``max_bytes`` (topic plus payload bytes) with the policy ``refuse`` (new messages are
turned away) or ``drop_oldest`` (the oldest unsent messages make room), and ``max_age_s`` (older
unsent messages expire). Every loss is counted by kind, persisted with the rows it concerns, and
reported to the hub in each batch and heartbeat.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import BufferSettings
from edge.errors import BufferFullError, EdgeError
from farsight.logs import kv

log = logging.getLogger("farsight.edge.buffer")

SCHEMA = """
CREATE TABLE IF NOT EXISTS buffer (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id is never reused, so the
                                                -- uplink's cursor and protect_upto stay valid
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    ts      INTEGER NOT NULL,                   -- received at the gateway, epoch ms
    offline INTEGER NOT NULL DEFAULT 0,         -- received while the uplink was down
    size    INTEGER NOT NULL                    -- bytes counted against max_bytes
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

LOSS_KINDS = ("dropped", "refused", "expired")
SEQ_BLOCK = 1000
"""Batch sequence numbers are reserved durably this many at a time; a crash skips the rest of a
block, and the hub accepts gaps (it only refuses going back)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One buffered message."""

    id: int
    topic: str
    payload: bytes
    ts_ms: int
    offline: bool


@dataclass(frozen=True, slots=True)
class BufferStats:
    """What the heartbeat reports about the buffer."""

    depth: int
    bytes: int
    oldest_ts_ms: int | None
    loss: dict[str, int]
    appended: int
    acked: int


Done = Callable[[list[bool]], object]


def _size(topic: str, payload: bytes) -> int:
    return len(topic.encode("utf-8")) + len(payload)


class Buffer:
    """A durable FIFO of (topic, payload) messages with group commit, bounds and a full policy."""

    def __init__(
        self,
        path: Path | str,
        settings: BufferSettings,
        online: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.online = online
        # Wall time of arrival and of the age bound (epoch seconds); a test moves it by hand.
        self.clock = clock
        try:
            self._w = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._w.execute("PRAGMA journal_mode=WAL")
            self._w.execute(f"PRAGMA synchronous={settings.synchronous}")
            self._w.executescript(SCHEMA)
            # Reads (the uplink, the heartbeat) use their own connection: WAL lets them run while
            # the writer fsyncs.
            self._r = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._r.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            raise EdgeError(f"cannot open buffer {self.path}: {exc}") from None
        self._rlock = threading.Lock()
        n, b = self._w.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM buffer").fetchone()
        self.depth, self.bytes = int(n), int(b)
        meta = dict(self._w.execute("SELECT key, value FROM meta").fetchall())
        self.loss = {k: int(meta.get(f"loss.{k}", 0)) for k in LOSS_KINDS}
        self._seq = int(meta.get("seq.reserved", 0))
        self._seq_reserved = self._seq
        self.protect_upto = 0
        self.appended = 0
        self.acked = 0
        # Called on the writer thread with the (topic, payload) pairs each commit stored.
        self.listeners: list[Callable[[list[tuple[str, bytes]]], object]] = []
        # Writer operations, in order: ["append", rows, done] (the flags are added when written),
        # ("ack", lo, hi), ("reserve", seq, event).
        self._ops: deque[Any] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._idle = threading.Event()
        self._idle.set()
        self._next_sweep = 0.0
        self._thread = threading.Thread(target=self._writer, name="edge-buffer", daemon=True)
        self._thread.start()

    # -- producers -------------------------------------------------------------------------------

    def submit(self, items: Sequence[tuple[str, bytes]], done: Done | None = None) -> None:
        """Queue messages for the next group commit; ``done(stored_flags)`` runs after the fsync.

        A ``False`` flag means the full policy turned the message away (and counted it).
        """
        if not items:
            if done is not None:
                done([])
            return
        offline = not self.online()
        now = int(self.clock() * 1000)
        with self._cond:
            if self._stop:
                raise EdgeError("buffer is closed")
            self._ops.append(["append", [(t, bytes(p), now, offline) for t, p in items], done])
            self._idle.clear()
            self._cond.notify()

    def append(self, items: Sequence[tuple[str, bytes]], timeout: float = 30.0) -> list[bool]:
        """Submit and wait until durable; returns per message whether it was stored."""
        ev = threading.Event()
        out: list[list[bool]] = []

        def done(flags: list[bool]) -> None:
            out.append(flags)
            ev.set()

        self.submit(items, done)
        if not ev.wait(timeout):
            raise EdgeError(f"buffer commit took more than {timeout:.0f} s")
        return out[0]

    def append_one(self, topic: str, payload: bytes) -> None:
        """Store one message durably or raise :class:`BufferFullError`."""
        if not self.append([(topic, payload)])[0]:
            raise BufferFullError(
                f"buffer full ({self.bytes} of {self.settings.max_bytes} bytes); message refused"
            )

    # -- the uplink ----------------------------------------------------------------------------

    def read(self, after_id: int, limit: int, max_bytes: int | None = None) -> list[Row]:
        """Up to ``limit`` rows after ``after_id`` in id order, at most ``max_bytes`` in all (at
        least one)."""
        try:
            with self._rlock:
                rows = self._r.execute(
                    "SELECT id, topic, payload, ts, offline, size FROM buffer WHERE id > ? ORDER"
                    " BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
        except sqlite3.Error as exc:
            raise EdgeError(f"cannot read buffer {self.path}: {exc}") from None
        out: list[Row] = []
        total = 0
        for id_, topic, payload, ts, offline, size in rows:
            total += size
            if out and max_bytes is not None and total > max_bytes:
                break
            out.append(Row(id_, topic, bytes(payload), ts, bool(offline)))
        return out

    def ack(self, lo: int, hi: int) -> None:
        """The broker acknowledged rows ``lo``..``hi``: delete them (in the next group commit)."""
        with self._cond:
            self._ops.append(("ack", lo, hi))
            self._idle.clear()
            self._cond.notify()

    def next_seq(self) -> int:
        """The next batch sequence number; blocks are reserved durably before use."""
        if self._seq >= self._seq_reserved:
            ev = threading.Event()
            with self._cond:
                self._ops.append(("reserve", self._seq + SEQ_BLOCK, ev))
                self._idle.clear()
                self._cond.notify()
            if not ev.wait(30):
                raise EdgeError("could not reserve batch sequence numbers")
        self._seq += 1
        return self._seq

    # -- reporting -------------------------------------------------------------------------------

    def stats(self) -> BufferStats:
        with self._rlock:
            row = self._r.execute("SELECT ts FROM buffer ORDER BY id LIMIT 1").fetchone()
        return BufferStats(
            self.depth,
            self.bytes,
            row[0] if row else None,
            dict(self.loss),
            self.appended,
            self.acked,
        )

    @property
    def lost(self) -> int:
        """Messages lost by the full and age policies, all kinds together."""
        return sum(self.loss.values())

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued operation is committed."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Commit what is queued, then close."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=30)
        for c in (self._w, self._r):
            try:
                c.close()
            except sqlite3.Error:
                pass

    # -- the writer thread -------------------------------------------------------------------------

    def _writer(self) -> None:
        wait_s = self.settings.commit_interval_ms / 1000
        while True:
            with self._cond:
                while not self._ops and not self._stop:
                    self._cond.wait(timeout=1.0)
                    if not self._ops and time.monotonic() >= self._next_sweep:
                        break
                if self._stop and not self._ops:
                    return
            if wait_s and self._ops:
                # The group commit window: appends that arrive within it share the fsync.
                time.sleep(wait_s)
            with self._cond:
                ops = list(self._ops)
                self._ops.clear()
            try:
                callbacks = self._commit(ops)
            except Exception as exc:
                # A failed commit acknowledges nothing: the collectors' sources send again.
                log.error(
                    "buffer commit failed",
                    extra=kv(error=exc, ops=len(ops)),
                    exc_info=not isinstance(exc, sqlite3.Error),
                )
                callbacks = [
                    (op[2], [False] * len(op[1]))
                    for op in ops
                    if op[0] == "append" and op[2] is not None
                ]
                for op in ops:
                    if op[0] == "append":
                        op[3:] = [[False] * len(op[1])]
                self._reload()
            for done, flags in callbacks:
                try:
                    done(flags)
                except Exception:
                    log.exception("buffer callback failed")
            if self.listeners:
                stored = [
                    (t, p)
                    for op in ops
                    if op[0] == "append"
                    for (t, p, _, _), ok in zip(op[1], op[3])
                    if ok
                ]
                for listener in self.listeners:
                    try:
                        listener(stored)
                    except Exception:
                        log.exception("buffer listener failed")
            with self._cond:
                if not self._ops:
                    self._idle.set()

    def _reload(self) -> None:
        n, b = self._w.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM buffer").fetchone()
        self.depth, self.bytes = int(n), int(b)

    def _commit(self, ops: list[Any]) -> list[tuple[Done, list[bool]]]:
        c = self._w
        callbacks: list[tuple[Done, list[bool]]] = []
        events: list[threading.Event] = []
        loss_before = dict(self.loss)
        depth, nbytes = self.depth, self.bytes
        c.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                if op[0] == "append":
                    flags, d, b = self._append(c, op[1], depth, nbytes)
                    depth, nbytes = d, b
                    op.append(flags)
                    if op[2] is not None:
                        callbacks.append((op[2], flags))
                elif op[0] == "ack":
                    n, b = c.execute(
                        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM buffer WHERE id BETWEEN ?"
                        " AND ?",
                        (op[1], op[2]),
                    ).fetchone()
                    c.execute("DELETE FROM buffer WHERE id BETWEEN ? AND ?", (op[1], op[2]))
                    depth, nbytes = depth - n, nbytes - b
                    self.acked += n
                elif op[0] == "reserve":
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES ('seq.reserved', ?) ON CONFLICT"
                        " (key) DO UPDATE SET value = excluded.value",
                        (op[1],),
                    )
                    events.append(op[2])
                    self._seq_reserved = op[1]
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + 1.0
                depth, nbytes = self._expire(c, depth, nbytes)
            for k in LOSS_KINDS:
                if self.loss[k] != loss_before[k]:
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                        " SET value = excluded.value",
                        (f"loss.{k}", self.loss[k]),
                    )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            self.loss = loss_before
            raise
        self.depth, self.bytes = depth, nbytes
        for ev in events:
            ev.set()
        return callbacks

    def _append(
        self,
        c: sqlite3.Connection,
        rows: list[tuple[str, bytes, int, bool]],
        depth: int,
        nbytes: int,
    ) -> tuple[list[bool], int, int]:
        limit = self.settings.max_bytes
        sized = [(t, p, ts, int(off), _size(t, p)) for t, p, ts, off in rows]
        total = sum(s[4] for s in sized)
        if nbytes + total <= limit:
            c.executemany(
                "INSERT INTO buffer (topic, payload, ts, offline, size) VALUES (?, ?, ?, ?, ?)",
                sized,
            )
            self.appended += len(sized)
            return [True] * len(sized), depth + len(sized), nbytes + total
        # Full: decide message by message, in order, so the loss count is exact.
        flags: list[bool] = []
        for row in sized:
            size = row[4]
            if nbytes + size > limit and self.settings.policy == "drop_oldest":
                n, b = self._drop_oldest(c, nbytes + size - limit)
                depth, nbytes = depth - n, nbytes - b
            if nbytes + size > limit:
                self.loss["refused"] += 1
                flags.append(False)
                continue
            c.execute(
                "INSERT INTO buffer (topic, payload, ts, offline, size) VALUES (?, ?, ?, ?, ?)", row
            )
            self.appended += 1
            depth, nbytes = depth + 1, nbytes + size
            flags.append(True)
        if not all(flags):
            log.warning(
                "buffer full",
                extra=kv(
                    policy=self.settings.policy,
                    refused=flags.count(False),
                    loss=self.loss,
                    bytes=nbytes,
                ),
            )
        return flags, depth, nbytes

    def _drop_oldest(self, c: sqlite3.Connection, need: int) -> tuple[int, int]:
        """Delete the oldest unsent rows until ``need`` bytes are free; returns (rows, bytes)."""
        freed = n = 0
        last = None
        for id_, size in c.execute(
            "SELECT id, size FROM buffer WHERE id > ? ORDER BY id LIMIT 10000", (self.protect_upto,)
        ):
            freed += size
            n += 1
            last = id_
            if freed >= need:
                break
        if last is not None:
            c.execute("DELETE FROM buffer WHERE id > ? AND id <= ?", (self.protect_upto, last))
            self.loss["dropped"] += n
        return n, freed

    def _expire(self, c: sqlite3.Connection, depth: int, nbytes: int) -> tuple[int, int]:
        """Delete unsent rows older than ``max_age_s``. Rows arrive in time order, so the scan
        walks from the oldest and stops at the first young one (no index on ts needed)."""
        cutoff = int((self.clock() - self.settings.max_age_s) * 1000)
        n = b = 0
        last = None
        for id_, ts, size in c.execute(
            "SELECT id, ts, size FROM buffer WHERE id > ? ORDER BY id LIMIT 100000",
            (self.protect_upto,),
        ):
            if ts >= cutoff:
                break
            n, b, last = n + 1, b + size, id_
        if last is not None:
            c.execute("DELETE FROM buffer WHERE id > ? AND id <= ?", (self.protect_upto, last))
            self.loss["expired"] += n
            log.warning(
                "buffered messages expired", extra=kv(count=n, max_age_s=self.settings.max_age_s)
            )
        return depth - n, nbytes - b
