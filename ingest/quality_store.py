"""The inputs of data quality from the readings database (SQLite or PostgreSQL): readings counted
per stream, hour and flag, dead letters per device and reason, irregularities per device.

The counting happens in SQL (one row per stream, hour and flag instead of one per reading: a
month of a department is some hundred thousand rows, not millions); the figures are
:mod:`farsight.quality`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from farsight.clock import from_epoch_ms, to_epoch_ms
from farsight.db import Database
from farsight.quality import HOUR_MS, Cell
from ingest.store import ReadingStore

LATE_AFTER_S = 300.0
"""Default bound of timeliness: a reading received more than this after its measure time is
late (5 minutes: a real-time HJ 212 value is sent as it is measured; a minute value within the
next minutes)."""


@dataclass(frozen=True, slots=True)
class Refusals:
    """What went wrong at one device over a period: dead letters by reason, and the irregularities
    (tolerated quirks) ingest counted since it started, by what."""

    site: str
    device: str
    dead_letters: dict[str, int]
    irregularities: dict[str, int]

    @property
    def dead_letter_total(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def irregularity_total(self) -> int:
        return sum(self.irregularities.values())


def _in(column: str, values: Iterable[str]) -> tuple[str, list[str]]:
    vals = list(values)
    return f" AND {column} IN ({', '.join('?' * len(vals))})", vals


def _site_device(topic: str) -> tuple[str, str] | None:
    """Site and device of a device topic ``fs/v1/{dept}/{site}/{device}/{kind}``; ``None`` for
    any other (a gateway's batch, a malformed topic)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "fs" or parts[1] != "v1" or parts[2] == "gw":
        return None
    return parts[3], parts[4]


class QualityStore:
    """Reads the counts data quality is computed from; shares the readings store's database."""

    def __init__(self, store: ReadingStore | Database) -> None:
        self.db: Database = store.db if isinstance(store, ReadingStore) else store

    def cells(
        self,
        start: datetime,
        end: datetime,
        sites: Iterable[str] | None = None,
        late_after_s: float = LATE_AFTER_S,
        exclude: Sequence[tuple[str, str, int, int]] = (),
    ) -> list[Cell]:
        """Readings with ``start <= ts < end`` counted per (site, device, metric, UTC hour, flag),
        with their latency (receive minus measure time) sum, maximum and count over
        ``late_after_s``; only ``sites`` when given (an empty list: none). Readings of a
        (site, device, start ms, end ms) in ``exclude`` are left out (declared stoppages,
        :func:`farsight.quality.declared_stops`)."""
        sql = (
            f"SELECT site, device, metric, ts / {HOUR_MS} AS h, flag, count(*) AS n,"
            " sum(received - ts) AS lat_sum, max(received - ts) AS lat_max,"
            " sum(CASE WHEN received - ts > ? THEN 1 ELSE 0 END) AS late"
            " FROM readings WHERE ts >= ? AND ts < ?"
        )
        params: list[object] = [int(late_after_s * 1000), to_epoch_ms(start), to_epoch_ms(end)]
        if sites is not None:
            wanted = sorted(set(sites))
            if not wanted:
                return []
            clause, vals = _in("site", wanted)
            sql += clause
            params += vals
        lo, hi = to_epoch_ms(start), to_epoch_ms(end)
        stops = [x for x in exclude if x[2] < hi and x[3] > lo]
        if stops:
            sql += (
                " AND NOT ("
                + " OR ".join(["(site = ? AND device = ? AND ts >= ? AND ts < ?)"] * len(stops))
                + ")"
            )
            params += [v for x in stops for v in x]
        sql += " GROUP BY site, device, metric, ts / " + str(HOUR_MS) + ", flag"
        return [
            Cell(
                site=r["site"],
                device=r["device"],
                metric=r["metric"],
                hour=int(r["h"]) * HOUR_MS,
                flag=r["flag"],
                count=int(r["n"]),
                latency_sum_ms=float(r["lat_sum"] or 0),
                latency_max_ms=float(r["lat_max"] or 0),
                late=int(r["late"] or 0),
            )
            for r in self.db.query(sql, tuple(params))
        ]

    def refusals(
        self, start: datetime, end: datetime, sites: Iterable[str] | None = None
    ) -> dict[tuple[str, str], Refusals]:
        """Per (site, device): dead letters received in ``[start, end)`` by reason (site and
        device from the topic), and the irregularity counts ingest keeps (totals since they
        were first counted: the table keeps no times but the last one)."""
        wanted = None if sites is None else set(sites)
        dead: dict[tuple[str, str], dict[str, int]] = {}
        rows = self.db.query(
            "SELECT topic, reason, count(*) AS n FROM dead_letters"
            " WHERE received >= ? AND received < ? GROUP BY topic, reason",
            (to_epoch_ms(start), to_epoch_ms(end)),
        )
        for r in rows:
            key = _site_device(r["topic"])
            if key is None or (wanted is not None and key[0] not in wanted):
                continue
            reasons = dead.setdefault(key, {})
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + int(r["n"])
        irregular: dict[tuple[str, str], dict[str, int]] = {}
        sql = "SELECT site, device, what, count FROM irregularities WHERE 1=1"
        params: list[str] = []
        if wanted is not None:
            if not wanted:
                return {}
            clause, params = _in("site", sorted(wanted))
            sql += clause
        for r in self.db.query(sql, tuple(params)):
            irregular.setdefault((r["site"], r["device"]), {})[r["what"]] = int(r["count"])
        return {
            key: Refusals(key[0], key[1], dead.get(key, {}), irregular.get(key, {}))
            for key in sorted(set(dead) | set(irregular))
        }

    def newest_reading(self) -> datetime | None:
        """Measure time of the newest reading stored, or ``None``."""
        rows = self.db.query("SELECT max(ts) FROM readings")
        return from_epoch_ms(int(rows[0][0])) if rows and rows[0][0] is not None else None
