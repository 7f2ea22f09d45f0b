"""Risk-queue throughput and latency: rule signals per second through dedup into the queue
(target >= 2,000/s on SQLite), and the p95 latency of a filtered list page with 1,000,000
alerts stored (target < 50 ms).

1. History: ``--alerts`` alerts are bulk-loaded straight into the ``alerts`` table (SQLite:
   executemany in big transactions with the secondary indexes built afterwards; PostgreSQL:
   COPY), with a year of history: ~95 % closed, the rest new, acknowledged, dispatched or
   verified (recent ones mostly), 4 departments, 2,000 sites (a few noisy ones raise most
   alerts), 800 operators, info/warning/major/critical, then ``ANALYZE``. The history has no
   alert_events or audit rows: listing never reads them.
2. List: 200 ``AlertStore.page`` requests (limit 50, with the total) over a mix of duty-officer
   filters; p50 and p95 per filter and overall.
3. Signals: ``--signals`` rule signals applied to the same (populated) queue with
   ``store.apply`` in batches of 100, one transaction per batch as ingest does: ~10,000
   fingerprints over 500 sites and 2 departments, 70 % repeats of open alerts (dedup updates),
   20 % new alerts, 10 % resolves. Between batches, untimed, a duty officer closes the alerts
   resolved earlier, so fingerprints come free for new alerts. The baseline is the same number
   of bare INSERTs of the signal rows, batched alike, into a plain table in the same database.

Then the outbox the signals filled (every alert event is queued for the provincial hub) is
drained by one sender to a local HTTP receiver, against bare POSTs of the same payloads.
The last line printed is the figure.

    .venv/bin/python benchmarks/queue.py [--backend sqlite|postgres] [--alerts 1000000] [--signals
    50000] [--seed 7]
"""

from __future__ import annotations

import os
import sys

# This file shares its name with the standard library's queue module, which psycopg and others
# import: run as a script, its folder must not be first on the import path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import http.server
import json
import random
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.pipeline import AlertPipeline, build_alert_pipeline
from alerts.store import COLUMNS as STORE_COLUMNS
from alerts.store import AlertFilter, AlertStore
from farsight.clock import ManualClock, to_epoch_ms
from farsight.settings import AlertsSettings
from farsight.types import AlertSignal

NOW = datetime.now(UTC).replace(microsecond=0)
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
DEVICES = (
    4  # every rule of a site watches 4 devices (lines, lanes, outfalls): 12 to 20 series per site
)
NOT_CLOSED = ("new", "acknowledged", "dispatched", "verified")
DEPARTMENTS = (("env", 0.55), ("transport", 0.25), ("water", 0.12), ("safety", 0.08))
SEVERITIES = (("info", 0.30), ("warning", 0.45), ("major", 0.20), ("critical", 0.05))
OPEN_STATES = (("new", 0.40), ("acknowledged", 0.25), ("dispatched", 0.20), ("verified", 0.15))
# department -> (site kind, name stem, [(rule, device, metric, unit, limit)])
KINDS = {
    "env": (
        "stack",
        "power plant stack",
        [
            ("so2-high", "cems1", "so2", "mg/m3", 35),
            ("nox-high", "cems1", "nox", "mg/m3", 50),
            ("dust-high", "cems1", "particulate", "mg/m3", 10),
            ("pm25-high", "aq1", "pm25", "ug/m3", 75),
            ("cems-offline", "cems1", "status", "", 0),
        ],
    ),
    "transport": (
        "wim",
        "weigh station",
        [
            ("overweight", "wim1", "gross_weight", "t", 49),
            ("axle-overload", "wim1", "axle_load", "t", 11.5),
            ("wim-offline", "wim1", "status", "", 0),
        ],
    ),
    "water": (
        "outfall",
        "outfall",
        [
            ("cod-high", "wq1", "cod", "mg/l", 50),
            ("nh3n-high", "wq1", "nh3n", "mg/l", 5),
            ("ph-range", "wq1", "ph", "", 9),
        ],
    ),
    "safety": (
        "site",
        "construction site",
        [("noise-high", "noise1", "leq", "dB", 70), ("intrusion", "cam1", "person", "", 0)],
    ),
}
PLACES = (
    "Xiling",
    "Wujiagang",
    "Dianjun",
    "Xiaoting",
    "Yiling",
    "Zhijiang",
    "Dangyang",
    "Yidu",
    "Xingshan",
    "Zigui",
    "Changyang",
    "Wufeng",
    "Xiaonan",
    "Hanchuan",
    "Yingcheng",
    "Anlu",
    "Yunmeng",
    "Dawu",
    "Xiaochang",
    "Jingshan",
)
# The loaded rows fill every column of the queue but previous_id (a history has no reopened
# series), in the store's column order.
COLUMNS = tuple(c for c in STORE_COLUMNS if c != "previous_id")


def pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


class World:
    """2,000 sites of 4 departments owned by 800 operators; site popularity is skewed."""

    def __init__(self, rng: random.Random, n_sites: int = 2000, n_entities: int = 800) -> None:
        self.entities = [f"9142{i:06d}MA49X{i % 97:02d}Y"[:18] for i in range(n_entities)]
        self.grades = [rng.choices("ABCD", [0.3, 0.45, 0.17, 0.08])[0] for _ in range(n_entities)]
        self.sites = []
        for i in range(n_sites):
            dept = pick(rng, DEPARTMENTS)
            kind, stem, _ = KINDS[dept]
            ent = rng.randrange(n_entities)
            self.sites.append(
                {
                    "id": f"{dept[:3]}-{kind}-{i:04d}",
                    "dept": dept,
                    "entity": ent,
                    "name": f"{PLACES[i % len(PLACES)]} {stem} {i}",
                }
            )
        # Zipf-like: a few noisy sites raise most alerts.
        self.site_weights = [1 / (r + 1) ** 0.8 for r in range(n_sites)]
        rng.shuffle(self.site_weights)


def history_rows(world: World, n: int, rng: random.Random, now_ms: int):
    """``n`` alert rows (tuples in COLUMNS order), ids 1..n."""
    n_open = max(1, round(n * 0.05))
    open_ids = set(rng.sample(range(1, n + 1), n_open)) if n_open < n else set(range(1, n + 1))
    used: set[str] = set()
    sites, weights = world.sites, world.site_weights
    cum = list(__import__("itertools").accumulate(weights))
    for aid in range(1, n + 1):
        s = rng.choices(sites, cum_weights=cum)[0]
        rules = KINDS[s["dept"]][2]
        rule, device, metric, unit, limit = rules[rng.randrange(len(rules))]
        device = f"{device[:-1]}{rng.randrange(1, DEVICES + 1)}"
        fp = f"{rule}|{s['id']}|{device}|{metric}"
        is_open = aid in open_ids
        if is_open:
            if fp in used:  # one open alert per fingerprint: a sibling series of the same site
                fp = f"{fp}|{aid}"
            used.add(fp)
            state = pick(rng, OPEN_STATES)
            age = {"new": 0.5, "acknowledged": 2, "dispatched": 6, "verified": 10}[state] * DAY_MS
            created = now_ms - int(min(rng.expovariate(1 / age), YEAR_MS))
        else:
            state = "closed"
            created = now_ms - rng.randrange(YEAR_MS)
        sev = pick(rng, SEVERITIES)
        value = round(limit * rng.uniform(1.05, 3.0), 1) if limit else None
        summary = (
            f"{metric} at {s['name']} is {value} {unit} (limit {limit})"
            if limit
            else f"{rule} at {s['name']}: {device} {metric}"
        )
        last_seen = created + rng.randrange(3_600_000)
        resolved = last_seen if state == "closed" or rng.random() < 0.3 else None
        ev = rng.choices((0, 1, 2, 3), (0.6, 0.25, 0.1, 0.05))[0]
        evidence = "[" + ",".join(f'"{rng.getrandbits(256):064x}"' for _ in range(ev)) + "]"
        handling = (
            '{"closed": {"by": "officer", "result": "rectified"}}' if state == "closed" else "{}"
        )
        ent = s["entity"]
        yield (
            aid,
            fp,
            rule,
            s["id"],
            device,
            metric,
            s["dept"],
            world.entities[ent],
            f"{s['dept']}-{rule}",
            sev,
            summary,
            "resolved" if resolved else "firing",
            state,
            value,
            limit or None,
            created,
            last_seen,
            resolved,
            rng.randint(1, 12),
            created,
            last_seen + rng.randrange(DAY_MS),
            '{"city": "Yichang"}',
            handling,
            world.grades[ent],
            rng.randrange(12),
            evidence,
            ev,
            "{}",
            0,
            created + DAY_MS if state in ("new", "dispatched") else None,
        )


def bulk_load(store: AlertStore, world: World, n: int, rng: random.Random, now_ms: int) -> None:
    db = store.db
    rows = history_rows(world, n, rng, now_ms)
    if db.dialect == "sqlite":
        # Secondary indexes are built once after the load (much faster than row by row), from
        # their definitions as the schema's migrations made them.
        idx = db.query(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = 'alerts' AND sql IS NOT NULL"
        )
        db.executescript(
            "".join(f"DROP INDEX {i};" for i, _ in idx) + "PRAGMA cache_size = -400000;"
        )
        sql = f"INSERT INTO alerts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        while True:
            chunk = list(__import__("itertools").islice(rows, 100_000))
            if not chunk:
                break
            with db.transaction() as c:
                c.executemany(sql, chunk)
        db.executescript("".join(f"{ddl};" for _, ddl in idx))
        store.index_text(limit=n)
        db.executescript("ANALYZE;")
    else:
        conn = db._conn  # psycopg connection: COPY is the bulk path
        idx = db.query(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'alerts' AND indexname != 'alerts_pkey'"
        )
        db.executescript("".join(f"DROP INDEX {i};" for i, _ in idx))
        copy = f"COPY alerts ({', '.join(COLUMNS)}) FROM STDIN"
        with conn.transaction(), conn.cursor().copy(copy) as cp:
            for r in rows:
                cp.write_row(r)
        db.executescript(
            "SET maintenance_work_mem = '512MB';" + "".join(f"{ddl};" for _, ddl in idx)
        )
        db.executescript(
            "SELECT setval(pg_get_serial_sequence('alerts', 'id'), (SELECT max(id) FROM alerts))"
        )
        db.executescript(
            "VACUUM ANALYZE alerts"
        )  # alone: VACUUM refuses to run inside a multi-statement batch


def list_requests(
    world: World, rng: random.Random, n: int
) -> list[tuple[str, AlertFilter, str, bool]]:
    """``n`` (name, filter, sort, second page?) requests of the duty officers' usual views."""
    depts = [d for d, _ in DEPARTMENTS]
    words = list(PLACES) + ["so2", "overweight", "stack 1", "cod"]
    since = NOW - timedelta(days=1)
    kinds = [
        (
            "dept queue (not closed, risk)",
            lambda: (
                AlertFilter(state=NOT_CLOSED, department=pick(rng, DEPARTMENTS)),
                "risk",
                False,
            ),
        ),
        (
            "dept queue page 2 (cursor)",
            lambda: (
                AlertFilter(state=NOT_CLOSED, department=pick(rng, DEPARTMENTS)),
                "risk",
                True,
            ),
        ),
        (
            "dept critical open (severity)",
            lambda: (
                AlertFilter(state=NOT_CLOSED, department=rng.choice(depts), severity="critical"),
                "severity",
                False,
            ),
        ),
        (
            "site history (newest)",
            lambda: (
                AlertFilter(site=rng.choices(world.sites, world.site_weights)[0]["id"]),
                "newest",
                False,
            ),
        ),
        (
            "operator open (risk)",
            lambda: (
                AlertFilter(entity_id=rng.choice(world.entities), state=NOT_CLOSED),
                "risk",
                False,
            ),
        ),
        (
            "operator history (newest)",
            lambda: (AlertFilter(entity_id=rng.choice(world.entities)), "newest", False),
        ),
        (
            "text + dept (newest)",
            lambda: (
                AlertFilter(department=pick(rng, DEPARTMENTS), text=rng.choice(words)),
                "newest",
                False,
            ),
        ),
        ("last day (newest)", lambda: (AlertFilter(since=since), "newest", False)),
    ]
    out = []
    for i in range(n):
        name, make = kinds[i % len(kinds)]
        f, sort, second = make()
        out.append((name, f, sort, second))
    rng.shuffle(out)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def measure_list(store: AlertStore, reqs: list, limit: int = 50) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for name, f, sort, second in reqs:
        cursor = None
        if second:  # the first page is the officer's previous request, not timed here
            cursor = store.page(f, limit=limit, sort=sort).next_cursor
        t = time.perf_counter()
        store.page(f, limit=limit, sort=sort, cursor=cursor)
        times.setdefault(name, []).append((time.perf_counter() - t) * 1000)
    return times


def report_list(times: dict[str, list[float]], label: str = "") -> tuple[float, float]:
    allt = [x for v in times.values() for x in v]
    for name, v in times.items():
        print(
            f"  {label}{name:32s} n={len(v):3d}  p50 {statistics.median(v):8.1f} ms  p95"
            f" {pct(v, 95):8.1f} ms  max {max(v):8.1f} ms"
        )
    p50, p95 = statistics.median(allt), pct(allt, 95)
    print(f"  {label}{'all':32s} n={len(allt):3d}  p50 {p50:8.1f} ms  p95 {p95:8.1f} ms")
    # Text searches here look for city names and pollutants found in 2-10 % of a year's alerts:
    # the broadest searches there are. The other views apart, to show what the indexes give them.
    rest = [x for name, v in times.items() if not name.startswith("text") for x in v]
    if rest:
        print(
            f"  {label}{'all but text search':32s} n={len(rest):3d}  p50"
            f" {statistics.median(rest):8.1f} ms  p95 {pct(rest, 95):8.1f} ms"
        )
    return p50, p95


def explain(store: AlertStore, f: AlertFilter, sort: str) -> None:
    """The plans of the total and the page query of one filter (SQLite: EXPLAIN QUERY PLAN)."""
    from alerts.risk import sql_order

    where, params = store._where(f)
    qp = "EXPLAIN QUERY PLAN " if store.db.dialect == "sqlite" else "EXPLAIN "
    rows = store.db.query(f"{qp}SELECT count(*) FROM alerts WHERE {where}", tuple(params))
    print(
        "    count plan: "
        + " | ".join(str(r[-1]) if store.db.dialect == "sqlite" else str(r[0]) for r in rows)
    )
    if sort == "risk":
        e, a = sql_order(store.risk_params, NOW, store.db.greatest, store.db.least)
        order, args = f"({e}) DESC, id DESC", a
    else:
        order, args = (
            {"newest": "created DESC, id DESC", "severity": "severity, last_seen DESC, id DESC"}[
                sort
            ],
            [],
        )
    rows = store.db.query(
        f"{qp}SELECT * FROM alerts WHERE {where} ORDER BY {order} LIMIT 51", tuple(args + params)
    )
    print(
        "    page plan:  "
        + " | ".join(str(r[-1]) if store.db.dialect == "sqlite" else str(r[0]) for r in rows)
    )


def make_signals(
    world: World, n: int, rng: random.Random, batch: int, busy: set[str]
) -> list[tuple[list[AlertSignal], list[str]]]:
    """Batches of signals, each with the fingerprints to close (untimed) before it, from a
    simulation of the fingerprints' states: 70 % repeats of open alerts, 20 % new, 10 % resolves.
    The series are those of 500 env and transport sites of the history (so most have alerts
    there already, as in a real queue)."""
    fps = []
    chosen = rng.sample([s for s in world.sites if s["dept"] in ("env", "transport")], 500)
    for s in chosen:
        for rule, device, metric, unit, limit in KINDS[s["dept"]][2]:
            for d in range(1, DEVICES + 1):
                dev = f"{device[:-1]}{d}"
                fps.append(
                    (
                        f"{rule}|{s['id']}|{dev}|{metric}",
                        rule,
                        s["id"],
                        s["dept"],
                        s["entity"],
                        dev,
                        metric,
                        unit,
                        limit,
                    )
                )
    # Leave out the series the history holds open (their "new" would be a repeat): keeps the mix
    # exact.
    fps = [f for f in fps if f[0] not in busy]
    free = list(range(len(fps)))
    rng.shuffle(free)
    firing: list[int] = []
    resolved: list[int] = []  # open but resolved: closed by an officer before the next batch

    def take(i: int) -> int:
        k = firing[i]
        firing[i] = firing[-1]
        firing.pop()
        return k

    def sig(k: int, status: str, t: datetime) -> AlertSignal:
        fp, rule, site, dept, ent, device, metric, unit, limit = fps[k]
        v = round(limit * rng.uniform(1.05, 3.0), 1) if limit else 1.0
        return AlertSignal(
            rule_id=rule,
            fingerprint=fp,
            status=status,
            site=site,
            device=device,
            metric=metric,
            severity="major" if limit else "warning",
            summary=f"{metric} at {site} is {v} {unit} (limit {limit})",
            ts=t,
            value=v,
            threshold=float(limit),
            department=dept,
            entity_id=world.entities[ent],
            item_code=f"{dept}-{rule}",
            credit_grade=world.grades[ent],
            labels=(("city", "Yichang"),),
        )

    out = []
    t = NOW
    for b in range((n + batch - 1) // batch):
        to_close = [fps[k][0] for k in resolved]
        free.extend(resolved)
        resolved = []
        sigs = []
        for _ in range(min(batch, n - b * batch)):
            t += timedelta(milliseconds=50)
            r = rng.random()
            if (r < 0.2 or not firing) and free:
                k = free.pop(rng.randrange(len(free)))
                firing.append(k)
                sigs.append(sig(k, "firing", t))
            elif r < 0.3 and firing:
                k = take(rng.randrange(len(firing)))
                resolved.append(k)
                sigs.append(sig(k, "resolved", t))
            else:
                sigs.append(sig(firing[rng.randrange(len(firing))], "firing", t))
        out.append((sigs, to_close))
    return out


def run_signals(pipeline: AlertPipeline, batches: list) -> float:
    store = pipeline.store
    db = store.db
    elapsed = 0.0
    n = 0
    for sigs, to_close in batches:
        if to_close:  # the duty officer's closures: not timed
            with db.transaction() as c:
                c.executemany(
                    "UPDATE alerts SET state = 'closed' WHERE fingerprint = ? AND state !="
                    " 'closed'",
                    [(fp,) for fp in to_close],
                )
        t = time.perf_counter()
        with db.transaction():
            pipeline.apply(sigs)
        n += len(sigs)
        if n % 2000 == 0:
            store.index_text()  # ingest's tick does this every few seconds: part of the cost
        elapsed += time.perf_counter() - t
    return n / elapsed


def run_bare(store: AlertStore, batches: list) -> float:
    db = store.db
    db.executescript(
        "CREATE TABLE IF NOT EXISTS bench_signals (id @ID@, fingerprint TEXT NOT NULL, rule_id TEXT"
        " NOT NULL, "
        "status TEXT NOT NULL, site TEXT NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL,"
        " severity TEXT NOT NULL, "
        "summary TEXT NOT NULL, ts BIGINT NOT NULL, value DOUBLE PRECISION, threshold DOUBLE"
        " PRECISION, "
        "department TEXT NOT NULL, entity_id TEXT NOT NULL)"
    )
    sql = (
        "INSERT INTO bench_signals (fingerprint, rule_id, status, site, device, metric, severity,"
        " summary, ts, value, threshold,"
        " department, entity_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    elapsed = 0.0
    n = 0
    for sigs, _ in batches:
        t = time.perf_counter()
        with db.transaction() as c:
            for s in sigs:
                c.execute(
                    sql,
                    (
                        s.fingerprint,
                        s.rule_id,
                        s.status,
                        s.site,
                        s.device,
                        s.metric,
                        s.severity,
                        s.summary,
                        to_epoch_ms(s.ts),
                        s.value,
                        s.threshold,
                        s.department,
                        s.entity_id,
                    ),
                )
        elapsed += time.perf_counter() - t
        n += len(sigs)
    return n / elapsed


class _Receiver(http.server.BaseHTTPRequestHandler):
    """The provincial hub's stand-in: reads the event, keeps its key, answers 200 at once."""

    keys: ClassVar[set[str]] = set()
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint behind a proxy would offer
    # Headers and body are two writes: with Nagle on, each answer waits 40 ms for a delayed ACK,
    # which would measure the stand-in rather than the sender.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.keys.add(self.headers.get("Idempotency-Key") or "")
        json.loads(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def run_outbox(target: str, seconds_max: float = 600.0) -> tuple[float, float, int]:
    """Drain the outbox the signals filled to a local HTTP receiver with one sender; returns
    (events/s, bare POSTs/s of the same payloads over the same kind of client, events)."""
    import httpx

    from alerts.outbox import OutboxSender, status
    from farsight.settings import UpstreamSettings

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/events"
    try:
        settings = UpstreamSettings(url=url, batch=200, timeout_s=10, lease_s=120)
        sender = OutboxSender(target, settings, rng=random.Random(1))
        n = int(status(sender.db)["pending"])
        t = time.perf_counter()
        while status(sender.db)["pending"] and time.perf_counter() - t < seconds_max:
            sender.run_once()
        rate = n / (time.perf_counter() - t)
        payloads = [
            r[0] for r in sender.db.query("SELECT payload FROM outbox ORDER BY id LIMIT 2000")
        ]
        sender.close()
        with httpx.Client(timeout=10) as client:
            t = time.perf_counter()
            for i, body in enumerate(payloads):
                client.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "Idempotency-Key": f"bare-{i}"},
                )
            bare = len(payloads) / (time.perf_counter() - t)
        return rate, bare, n
    finally:
        server.shutdown()


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows while it runs
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--alerts", type=int, default=1_000_000, help="alerts stored before listing")
    ap.add_argument(
        "--signals", type=int, default=20_000, help="rule signals applied through dedup"
    )
    ap.add_argument("--requests", type=int, default=200, help="list requests timed")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--try-index",
        action="append",
        default=[],
        metavar="SQL",
        help="an extra CREATE INDEX (or other DDL) run after the load, before measuring; compare"
        " with a run "
        "without it and the same seed (repeatable)",
    )
    ap.add_argument(
        "--explain", action="store_true", help="print the query plans of each filter kind"
    )
    args = ap.parse_args()
    rng = random.Random(args.seed)
    now_ms = to_epoch_ms(NOW)
    with tempfile.TemporaryDirectory(prefix="farsight-bench-") as tmp:
        pg = None
        if args.backend == "postgres":
            from farsight.pgserver import TempPostgres

            pg = TempPostgres()
            target: str = pg.create_database("bench")
        else:
            target = str(Path(tmp) / "queue.db")
        try:
            # A manual clock: the queue's "now" is the history's now, whatever the load took.
            store = AlertStore(target, clock=ManualClock(NOW))
            world = World(rng)
            t = time.perf_counter()
            bulk_load(store, world, args.alerts, rng, now_ms)
            load_s = time.perf_counter() - t
            open_n = store.db.query("SELECT count(*) FROM alerts WHERE state != 'closed'")[0][0]
            print(
                f"loaded {args.alerts:,} alerts ({open_n:,} not closed) in {load_s:.1f} s "
                f"({args.alerts / max(load_s, 1e-9):,.0f} rows/s, indexes and ANALYZE included,"
                f" {args.backend})"
            )

            for sql in args.try_index:
                t = time.perf_counter()
                store.db.executescript(
                    sql + (";ANALYZE;" if store.db.dialect == "sqlite" else "; ANALYZE alerts;")
                )
                print(f"extra index ({time.perf_counter() - t:.1f} s to build): {sql}")
            reqs = list_requests(world, rng, args.requests)
            measure_list(store, reqs[:16])  # warm the cache, as a running hub has it
            times = measure_list(store, reqs)
            print(
                f"list: {args.requests} page requests (limit 50, with total) over {args.alerts:,}"
                " alerts:"
            )
            p50, p95 = report_list(times)
            if args.explain:
                seen = set()
                for name, f, sort, _ in reqs:
                    if name not in seen:
                        seen.add(name)
                        print(f"  plan of {name}:")
                        explain(store, f, sort)
            # The pipeline a running installation has: mute stage, upstream outbox, deadlines.
            pipeline = build_alert_pipeline(
                store, AlertsSettings.model_validate({"upstream": {"source": "bench"}})
            )
            busy = {
                r[0]
                for r in store.db.query("SELECT fingerprint FROM alerts WHERE state != 'closed'")
            }
            batches = make_signals(world, args.signals, rng, 100, busy)
            n_fp = len({s.fingerprint for b, _ in batches for s in b})
            rate = run_signals(pipeline, batches)
            n_alerts = store.db.query("SELECT count(*) FROM alerts")[0][0]
            print(
                f"signals: {rate:,.0f} signals/s through dedup ({args.signals:,} signals, batches"
                " of 100, "
                f"{n_fp:,} fingerprints; queue now {n_alerts:,} alerts)"
            )
            bare = run_bare(store, batches)
            print(
                f"bare INSERT of the signal rows: {bare:,.0f} rows/s (batches of 100, same"
                " database)"
            )
            store.close()
            out_rate, out_bare, out_n = run_outbox(target)
            print(
                f"outbox: {out_rate:,.0f} events/s delivered to a local HTTP receiver ({out_n:,}"
                " events, one sender); "
                f"bare POSTs of the same payloads {out_bare:,.0f}/s"
            )
        finally:
            if pg is not None:
                pg.stop()
    print(
        f"queue: {rate:,.0f} signals/s through dedup (bare insert {bare:,.0f}/s, ratio"
        f" {rate / bare:.3f}); "
        f"list p95 {p95:.1f} ms (p50 {p50:.1f} ms) over {args.alerts:,} alerts; outbox"
        f" {out_rate:,.0f} events/s "
        f"(bare POST {out_bare:,.0f}/s) ({args.backend})"
    )


if __name__ == "__main__":
    main()
