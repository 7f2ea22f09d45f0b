"""Embedded SQLite stores of ingest: readings (time series), dead letters and irregularities."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from farsight.clock import from_epoch_ms, to_epoch_ms
from farsight.db import Database, connect
from farsight.errors import StoreError
from farsight.migrate import ensure_schema
from farsight.types import Reading

DEAD_LETTER_KEEP_BYTES = 64 * 1024
"""Default of ``ingest.dead_letters.keep_bytes``: payload bytes a dead letter keeps."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message, kept so it can be repaired and replayed.

    A payload longer than the store's ``keep_bytes`` is stored cut to its first bytes; ``size``
    and ``sha256`` then say what the whole was (:attr:`truncated`)."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    received: datetime
    codec: str | None = None
    id: int | None = None
    size: int | None = None
    """Length of the payload as received; ``None``: ``len(payload)`` (not stored yet)."""
    sha256: str | None = None
    """Hex SHA-256 of the whole payload as received (``None`` on letters from before 0003)."""

    @property
    def truncated(self) -> bool:
        """True when :attr:`payload` holds only the first bytes of what was received."""
        return self.size is not None and self.size > len(self.payload)


@dataclass(frozen=True, slots=True)
class Pruned:
    """Dead letters one retention run deleted, by cause."""

    by_age: int = 0
    by_size: int = 0

    @property
    def total(self) -> int:
        return self.by_age + self.by_size


PRUNED_COUNTER = "dead_letters_removed"
"""Counter (label: ``age`` or ``size``) of dead letters retention deleted, exported at /metrics."""


_INSERT_HEAD = (
    "INSERT INTO readings (site, device, metric, ts, value, unit, flag, seq, received) VALUES "
)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_TAIL = " ON CONFLICT DO NOTHING RETURNING site, device, metric, ts"
_CHUNK = 3000
"""Rows per INSERT: 9 parameters each stays under SQLite's limit of 32,766 variables."""


def _epoch_ms_each(times: Sequence[datetime]) -> list[int]:
    """Epoch milliseconds of each time; a message's readings share one datetime object, so a
    run of the same object is converted once."""
    out: list[int] = []
    last: datetime | None = None
    ms = 0
    for t in times:
        if t is not last:
            last, ms = t, to_epoch_ms(t)
        out.append(ms)
    return out


def row_to_reading(row: sqlite3.Row) -> Reading:
    return Reading(
        site=row["site"],
        device=row["device"],
        metric=row["metric"],
        value=row["value"],
        unit=row["unit"],
        ts=from_epoch_ms(row["ts"]),
        flag=row["flag"],
        seq=row["seq"],
    )


class ReadingStore:
    """Readings, dead letters and irregularity counts in one database.

    The database is SQLite in WAL mode, or PostgreSQL.
    """

    def __init__(
        self, path: Path | str | Database, keep_bytes: int = DEAD_LETTER_KEEP_BYTES
    ) -> None:
        self.db = ensure_schema(Database.of(path))
        if keep_bytes < 1:
            raise ValueError(f"keep_bytes must be at least 1, got {keep_bytes}")
        # Dead letters keep this many payload bytes (ingest.dead_letters.keep_bytes).
        self.keep_bytes = keep_bytes

    # -- writes (one transaction per batch; the caller acknowledges after it returns) --------

    def write_batch(
        self,
        readings: Sequence[Reading],
        dead: Sequence[DeadLetter] = (),
        irregular: Iterable[tuple[str, str, str]] = (),
        received: datetime | Sequence[datetime] | None = None,
    ) -> list[bool]:
        """Store readings, dead letters and irregularities in one transaction.

        ``received`` is the time ingest received each reading's message (what timeliness counts
        from): one time for all, one per reading, or ``None`` for the time of this write.
        Irregularities are stamped with the one time given, else with the time of this write.

        Returns, per reading, whether it was new; a reading already stored under the same
        (site, device, metric, ts) is ignored, which makes redelivery harmless.
        """
        now = to_epoch_ms(datetime.now(UTC))
        if isinstance(received, datetime):
            now = to_epoch_ms(received)
            at = [now] * len(readings)
        elif received is None:
            at = [now] * len(readings)
        else:
            at = _epoch_ms_each(received)
            if len(at) != len(readings):
                raise ValueError(f"{len(at)} receive times for {len(readings)} readings")
        rows = [
            (
                r.site,
                r.device,
                r.metric,
                to_epoch_ms(r.ts),
                float(r.value),
                r.unit,
                r.flag,
                r.seq,
                t,
            )
            for r, t in zip(readings, at)
        ]
        inserted: set[tuple[str, str, str, int]] = set()
        with self.db.transaction() as c:
            # One multi-row INSERT per chunk; RETURNING names only the rows that were new, since
            # ON CONFLICT DO NOTHING returns nothing for a key already stored.
            for i in range(0, len(rows), _CHUNK):
                chunk = rows[i : i + _CHUNK]
                sql = _INSERT_HEAD + ",".join([_ROW] * len(chunk)) + _INSERT_TAIL
                params = [v for row in chunk for v in row]
                inserted.update((a, b, m, t) for a, b, m, t in c.execute(sql, params).fetchall())
            for d in dead:
                c.execute(
                    "INSERT INTO dead_letters"
                    " (received, topic, payload, codec, reason, detail, size, sha256)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        to_epoch_ms(d.received),
                        d.topic,
                        d.payload[: self.keep_bytes],
                        d.codec,
                        d.reason,
                        d.detail,
                        len(d.payload) if d.size is None else d.size,
                        d.sha256 or hashlib.sha256(d.payload).hexdigest(),
                    ),
                )
            for site, device, what in irregular:
                c.execute(
                    "INSERT INTO irregularities (site, device, what, count, last_seen)"
                    " VALUES (?, ?, ?, 1, ?)"
                    " ON CONFLICT (site, device, what) DO UPDATE"
                    " SET count = irregularities.count + 1, last_seen = excluded.last_seen",
                    (site, device, what, now),
                )
        new: list[bool] = []
        for row in rows:
            key = (row[0], row[1], row[2], row[3])
            # The same key twice in one batch (a redelivery) was inserted once: the first is new.
            new.append(key in inserted)
            inserted.discard(key)
        return new

    def write(self, readings: Sequence[Reading]) -> list[bool]:
        """Store readings; see :meth:`write_batch`."""
        return self.write_batch(readings)

    def add_counters(self, deltas: dict[tuple[str, str], int]) -> None:
        """Add to named counters (name, label) in one transaction; zero deltas are skipped."""
        rows = [(n, lbl, v) for (n, lbl), v in deltas.items() if v]
        if not rows:
            return
        with self.db.transaction() as c:
            c.executemany(
                "INSERT INTO counters (name, label, value) VALUES (?, ?, ?)"
                " ON CONFLICT (name, label) DO UPDATE SET value = counters.value + excluded.value",
                rows,
            )

    def counters(self) -> dict[tuple[str, str], int]:
        """Every counter by (name, label)."""
        return {
            (r["name"], r["label"]): int(r["value"])
            for r in self.db.query("SELECT name, label, value FROM counters")
        }

    def add_dead_letter(self, letter: DeadLetter) -> None:
        self.write_batch((), dead=(letter,))

    # -- reads ----------------------------------------------------------------------------

    def count(self, site: str | None = None, metric: str | None = None) -> int:
        """Number of stored readings, optionally for one site and metric."""
        sql, params = "SELECT count(*) FROM readings WHERE 1=1", []
        if site is not None:
            sql += " AND site = ?"
            params.append(site)
        if metric is not None:
            sql += " AND metric = ?"
            params.append(metric)
        return int(self.db.query(sql, tuple(params))[0][0])

    def series(
        self,
        site: str,
        metric: str,
        start: datetime,
        end: datetime,
        interval_s: float | None = None,
        device: str | None = None,
        limit: int = 10_000,
    ) -> list[dict]:
        """Readings of one site and metric between ``start`` and ``end`` (inclusive).

        With ``interval_s``, values are averaged into buckets of that many seconds on the
        server, each bucket with its min, max and count, so a week of data fits a chart.
        """
        params: list = [site, metric, to_epoch_ms(start), to_epoch_ms(end)]
        dev = ""
        if device is not None:
            dev = " AND device = ?"
            params.append(device)
        if interval_s:
            bucket = max(1, int(interval_s * 1000))
            rows = self.db.query(
                f"SELECT (ts / {bucket}) * {bucket} AS t, avg(value) AS value,"
                " min(value) AS min, max(value) AS max, count(*) AS n, max(unit) AS unit"
                f" FROM readings WHERE site = ? AND metric = ? AND ts BETWEEN ? AND ?{dev}"
                " GROUP BY t ORDER BY t LIMIT ?",
                tuple(params + [limit]),
            )
            return [
                {
                    "ts": from_epoch_ms(r["t"]).isoformat(),
                    "value": r["value"],
                    "min": r["min"],
                    "max": r["max"],
                    "count": r["n"],
                    "unit": r["unit"],
                }
                for r in rows
            ]
        rows = self.db.query(
            "SELECT * FROM readings WHERE site = ? AND metric = ? AND ts BETWEEN ? AND ?"
            f"{dev} ORDER BY ts LIMIT ?",
            tuple(params + [limit]),
        )
        return [reading_dict(row_to_reading(r)) for r in rows]

    def latest(self, site: str | None = None) -> list[dict]:
        """The newest reading of every (site, device, metric), optionally for one site."""
        where, params = ("WHERE site = ?", (site,)) if site else ("", ())
        rows = self.db.query(
            "SELECT r.* FROM readings r"
            " JOIN (SELECT site, device, metric, max(ts) AS ts FROM readings "
            f"{where} GROUP BY site, device, metric) m USING (site, device, metric, ts)"
            " ORDER BY r.site, r.metric",
            params,
        )
        return [reading_dict(row_to_reading(r)) for r in rows]

    def since(self, after_id: int, limit: int = 1000) -> tuple[list[dict], int]:
        """Readings stored after row ``after_id`` (for the live stream); the new high-water id."""
        rows = self.db.query(
            "SELECT * FROM readings WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        last = rows[-1]["id"] if rows else after_id
        return [reading_dict(row_to_reading(r)) for r in rows], last

    def iter_range(
        self, start: datetime, end: datetime, site: str | None = None, batch: int = 5000
    ) -> Iterator[Reading]:
        """Stream readings with ``start <= ts <= end`` (optionally of one site), by ts then id.

        For replays (``farsight rules backtest``): one query on a read-only connection of its
        own, fetched ``batch`` rows at a time, so memory stays flat, the table is sorted once
        rather than rescanned per page (there is no index on ts alone), and the store's shared
        connection and lock stay free for ingest. The read sees one consistent snapshot (WAL).
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        sql = "SELECT * FROM readings WHERE ts BETWEEN ? AND ?"
        params: list = [to_epoch_ms(start), to_epoch_ms(end)]
        if site is not None:
            sql += " AND site = ?"
            params.append(site)
        if self.db.dialect == "postgres":
            return self._iter_pages(sql, params, batch)
        path = self.db.path

        def rows() -> Iterator[Reading]:
            # A generator of its own so that bad arguments above raise at the call, not at first
            # use.
            conn = connect(path, readonly=True)
            try:
                cur = conn.execute(sql + " ORDER BY ts, id", params)
                while chunk := cur.fetchmany(batch):
                    yield from (row_to_reading(r) for r in chunk)
            except sqlite3.Error as exc:
                raise StoreError(f"{path}: {exc}") from None
            finally:
                conn.close()

        return rows()

    def _iter_pages(self, sql: str, params: list, batch: int) -> Iterator[Reading]:
        # PostgreSQL: keyset pages on (ts, id) through the shared connection, released between
        # pages.
        last: tuple[int, int] | None = None
        while True:
            extra, args = "", list(params)
            if last is not None:
                extra = " AND (ts > ? OR (ts = ? AND id > ?))"
                args += [last[0], last[0], last[1]]
            chunk = self.db.query(sql + extra + " ORDER BY ts, id LIMIT ?", (*args, batch))
            if not chunk:
                return
            yield from (row_to_reading(r) for r in chunk)
            last = (int(chunk[-1]["ts"]), int(chunk[-1]["id"]))

    def max_id(self) -> int:
        return int(self.db.query("SELECT coalesce(max(id), 0) FROM readings")[0][0])

    def dead_letters(self, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        sql = "SELECT * FROM dead_letters"
        params: list[str | int] = []
        if reason:
            sql += " WHERE reason = ?"
            params.append(reason)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [
            DeadLetter(
                topic=r["topic"],
                payload=bytes(r["payload"]),
                reason=r["reason"],
                detail=r["detail"],
                received=from_epoch_ms(r["received"]),
                codec=r["codec"],
                id=r["id"],
                size=r["size"],
                sha256=r["sha256"],
            )
            for r in self.db.query(sql, tuple(params))
        ]

    def dead_letter_count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM dead_letters")[0][0])

    def dead_letter_bytes(self) -> int:
        """Payload bytes the dead letters hold (what the size retention bounds)."""
        return int(
            self.db.query("SELECT coalesce(sum(length(payload)), 0) FROM dead_letters")[0][0]
        )

    def prune_dead_letters(
        self, max_age: timedelta, max_bytes: int, now: datetime, dry_run: bool = False
    ) -> Pruned:
        """Delete dead letters received before ``now - max_age``, then the oldest until the
        payloads kept total at most ``max_bytes``; count the deletions in the counters
        (:data:`PRUNED_COUNTER`) in the same transaction. With ``dry_run``, count what would be
        deleted and change nothing.
        """
        if max_bytes < 0 or max_age < timedelta(0):
            raise ValueError("max_age and max_bytes must not be negative")
        cutoff = to_epoch_ms(now - max_age)
        with self.db.transaction() as c:
            by_age = int(
                c.execute(
                    "SELECT count(*) FROM dead_letters WHERE received < ?", (cutoff,)
                ).fetchone()[0]
            )
            # Of the letters the age leaves, the newest whose running total (newest first)
            # passes the cap: it and all older ones go.
            row = c.execute(
                "SELECT id FROM (SELECT id, sum(length(payload)) OVER (ORDER BY id DESC) AS kept"
                " FROM dead_letters WHERE received >= ?) t WHERE kept > ? ORDER BY id DESC LIMIT 1",
                (cutoff, max_bytes),
            ).fetchone()
            by_size = 0
            if row is not None:
                by_size = int(
                    c.execute(
                        "SELECT count(*) FROM dead_letters WHERE id <= ? AND received >= ?",
                        (row[0], cutoff),
                    ).fetchone()[0]
                )
            if dry_run:
                return Pruned(by_age, by_size)
            c.execute("DELETE FROM dead_letters WHERE received < ?", (cutoff,))
            if row is not None:
                c.execute("DELETE FROM dead_letters WHERE id <= ?", (row[0],))
            counts = [(label, n) for label, n in (("age", by_age), ("size", by_size)) if n]
            c.executemany(
                "INSERT INTO counters (name, label, value) VALUES (?, ?, ?)"
                " ON CONFLICT (name, label) DO UPDATE SET value = counters.value + excluded.value",
                [(PRUNED_COUNTER, label, n) for label, n in counts],
            )
        return Pruned(by_age, by_size)

    def irregularities(self) -> list[dict]:
        return [dict(r) for r in self.db.query("SELECT * FROM irregularities ORDER BY count DESC")]

    def irregularity_counts(
        self, site: str | None = None, device: str | None = None, what: str | None = None
    ) -> dict[tuple[str, str, str], int]:
        """How often each (site, device, irregularity) was seen, optionally for one site, device
        or irregularity: e.g. a device's count of the HJ 212 field quirk "length field
        miscounts" (``ingest.codecs.hj212.QUIRKS`` names them)."""
        sql, params = "SELECT site, device, what, count FROM irregularities WHERE 1=1", []
        for column, value in (("site", site), ("device", device), ("what", what)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        return {
            (r["site"], r["device"], r["what"]): int(r["count"])
            for r in self.db.query(sql, tuple(params))
        }

    def close(self) -> None:
        self.db.close()


def reading_dict(r: Reading) -> dict:
    """A reading as JSON-ready data (API and stream)."""
    return {
        "site": r.site,
        "device": r.device,
        "metric": r.metric,
        "value": r.value,
        "unit": r.unit,
        "ts": r.ts.isoformat(),
        "flag": r.flag,
        "seq": r.seq,
    }
