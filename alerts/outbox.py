"""Transactional outbox to the provincial supervision hub (省级非现场监管平台).

Every alert event (rules' opened/resolved/refired, people's handling steps, escalations...)
is written to the ``outbox`` table by :meth:`Outbox.listener`, inside the transaction of the
change itself: the change and its upstream message commit or roll back together, so a crash
never loses one nor sends a message for a change that did not happen.

:class:`OutboxSender` workers then claim rows and POST them to ``settings.alerts.upstream.url``
with an ``Idempotency-Key`` header (``source:alert_id:event_id``), so a resend after a lost
answer is recognised by the receiver. Delivery is at least once; with the key, exactly once
after the receiver's dedup.

- Order per alert: a row is claimable only when every earlier row of its alert is sent (a
  dead row holds its alert until ``farsight outbox redrive``); other alerts are not held up.
- Retries: exponential backoff with full jitter, ``uniform(0, min(cap, base * 2**(n-1)))``
  after the n-th failed attempt (AWS Architecture Blog, "Exponential Backoff And Jitter",
  2015); ``Retry-After`` seconds win when given, bounded by the cap.
- Dead letters: after ``max_attempts`` failures, or at once for a 4xx refusal (a payload the
  receiver rejects does not get better by waiting).
- Quality rejections: a 422 answer with ``{"errors": [{"field", "message"}]}``
  (``alerts/schemas/upstream-rejection.schema.json``) sets the row aside too, and keeps the
  record and its errors in ``upstream_rejections`` (:mod:`alerts.upstream_rejections`) until a
  supervisor corrects it; ``redrive`` leaves such rows alone, since resending an unchanged
  record would be refused again. A correction's ``/alert/...`` fields stand for the alert's
  later records: :meth:`Outbox.listener` applies them to each record it builds.
- Several workers (threads or processes) share the table: a claim is one statement that leases
  rows (``claimed_by``/``claimed_until``); on PostgreSQL it locks with ``FOR UPDATE SKIP
  LOCKED``, on SQLite ``BEGIN IMMEDIATE`` already serialises writers.

The payload is :func:`build_payload` (pure), documented by
``alerts/schemas/upstream-event.schema.json``. The same table also carries the audit chain's
signed anchors (:func:`enqueue_anchor`, ``alerts/schemas/upstream-anchor.schema.json``), in a
lane of their own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from alerts.audit import Anchor, upstream_message
from alerts.model import Alert, AlertEvent
from alerts.store import AlertStore
from alerts.upstream_rejections import (
    FieldError,
    describe,
    parse_rejection,
    record_rejection,
    with_standing_corrections,
)
from farsight import __version__
from farsight.clock import Clock, SystemClock, to_epoch_ms
from farsight.db import Connection, Database
from farsight.logs import kv
from farsight.migrate import ensure_schema
from farsight.settings import UpstreamSettings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the upstream payload (``schema_version`` in every message)."""

SCHEMA_FILE = Path(__file__).parent / "schemas" / "upstream-event.schema.json"
"""The JSON Schema (draft 2020-12) of the payload."""

STATUSES = ("pending", "sent", "dead")

RETRY_STATUSES = frozenset({408, 425, 429})
"""Client-error answers that mean "later" rather than "never" (plus every 5xx)."""

ERROR_CHARS = 500
"""Longest error text kept on a row (an HTML error page is cut)."""


# -- payload (pure) ------------------------------------------------------------------------------


def idempotency_key(source: str, alert_id: int, event_id: int) -> str:
    """The key the receiver deduplicates by: one per alert event and installation."""
    return f"{source}:{alert_id}:{event_id}"


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat()


def _jsonable(value: Any) -> Any:
    """JSON-ready copy: non-finite floats become null (JSON has no NaN), dates ISO strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def evidence_link(sha256: str) -> str:
    """Relative link to an evidence file on this installation's hub."""
    return f"/api/evidence/{sha256}"


def build_payload(alert: Alert, event: AlertEvent, source: str) -> dict[str, Any]:
    """The upstream message of one alert event: the event, and the alert as it stands after it.

    Pure; the shape is ``alerts/schemas/upstream-event.schema.json``.
    """
    risk = alert.risk or None
    handling = dict(alert.handling or {})
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "event": {
            "id": event.id,
            "key": idempotency_key(source, alert.id, event.id),
            "action": event.action,
            "actor": event.actor,
            "at": _iso(event.at),
            "note": event.note,
            "data": _jsonable(event.data or {}),
        },
        "alert": {
            "id": alert.id,
            "fingerprint": alert.fingerprint,
            "previous_id": alert.previous_id,
            "item_code": alert.item_code,
            "entity_credit_code": alert.entity_id,
            "credit_grade": alert.credit_grade,
            "site": alert.site,
            "device": alert.device,
            "metric": alert.metric,
            "department": alert.department,
            "rule_id": alert.rule_id,
            "severity": alert.severity,
            "risk": None
            if risk is None
            else {
                "score": _jsonable(float(risk.get("score", 0.0))),
                "factors": _jsonable(list(risk.get("factors", []))),
            },
            "summary": alert.summary,
            "value": _jsonable(alert.value),
            "threshold": _jsonable(alert.threshold),
            "activity": alert.activity,
            "state": alert.state,
            "count": alert.count,
            "starts_at": _iso(alert.starts_at),
            "last_seen": _iso(alert.last_seen),
            "resolved_at": _iso(alert.resolved_at),
            "created": _iso(alert.created),
            "updated": _iso(alert.updated),
            "due_at": _iso(alert.due_at),
            "escalation": alert.escalation,
            "suppressed": bool(alert.suppressed),
            "handling": _jsonable(handling),
            "evidence": [{"sha256": h, "href": evidence_link(h)} for h in alert.evidence],
            "links": {"alert": f"/api/alerts/{alert.id}"},
        },
    }


def canonical_json(doc: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text kept (Chinese stays readable): the bytes sent."""
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def load_schema() -> dict[str, Any]:
    """The payload's JSON Schema as a dict."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


# -- enqueue (in the change's transaction) --------------------------------------------------------


class Outbox:
    """The ``outbox`` table on one database; :meth:`listener` enqueues in the caller's
    transaction."""

    def __init__(
        self,
        db: Database | Path | str,
        source: str = "farsight",
        clock: Clock | None = None,
        lock_row: Callable[[Any, int], object] | None = None,
    ) -> None:
        self.db = ensure_schema(Database.open(db))
        self.source = source
        self.clock = clock or SystemClock()
        self.lock_row = lock_row

    def listener(self, conn: Connection, alert: Alert, event: AlertEvent) -> None:
        """An ``alerts.stages.EventListener``: one outbox row per alert event, on ``conn``."""
        if self.db.dialect == "postgres" and self.lock_row is not None:
            # Rows of one alert must get ids in commit order (the sender sends them by id):
            # holding the alert's row lock until commit makes a concurrent event of the same
            # alert take its id after this one commits. Most writers hold it already (they
            # updated the alert); this covers those that only record an event.
            self.lock_row(conn, alert.id)
        # The provincial hub's corrections of this alert's earlier records stand for this one
        # too; the alert row itself keeps what the rules saw.
        payload = canonical_json(
            with_standing_corrections(conn, alert.id, build_payload(alert, event, self.source))
        )
        conn.execute(
            "INSERT INTO outbox (key, alert_id, event_id, payload, status, attempts, next_at, "
            "created)"
            " VALUES (?, ?, ?, ?, 'pending', 0, 0, ?) ON CONFLICT (key) DO NOTHING",
            (
                idempotency_key(self.source, alert.id, event.id),
                alert.id,
                event.id,
                payload,
                to_epoch_ms(self.clock.now()),
            ),
        )

    def rows(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        """Outbox rows in id order (for tests and the CLI)."""
        sql = "SELECT * FROM outbox"
        params: tuple[Any, ...] = ()
        if alert_id is not None:
            sql, params = sql + " WHERE alert_id = ?", (alert_id,)
        return [_row_dict(r) for r in self.db.query(sql + " ORDER BY id", params)]


ANCHOR_LANE = 0
"""The ``alert_id`` of anchor rows: no alert has id 0, so anchors are sent in order among
themselves (the per-alert order of the claim) and hold no alert's events back."""


def anchor_key(source: str, seq: int) -> str:
    """The idempotency key of the anchor of the chain at ``seq``."""
    return f"{source}:anchor:{seq}"


def enqueue_anchor(db: Database, anchor: Anchor, source: str, now_ms: int) -> bool:
    """Queue a signed anchor for the upstream hub (the message of
    :func:`alerts.audit.upstream_message`, documented by
    ``alerts/schemas/upstream-anchor.schema.json``), so a copy of the chain's head is kept where
    the operator cannot reach it. Returns False when this head was queued before."""
    payload = canonical_json(upstream_message(anchor))
    with db.transaction() as c:
        n = c.execute(
            "INSERT INTO outbox (key, alert_id, event_id, payload, status, attempts, next_at, "
            "created) VALUES (?, ?, ?, ?, 'pending', 0, 0, ?) ON CONFLICT (key) DO NOTHING",
            (anchor_key(source, anchor.seq), ANCHOR_LANE, anchor.seq, payload, now_ms),
        ).rowcount
    return n == 1


def attach_outbox(store: AlertStore, source: str = "farsight") -> Outbox:
    """Register the outbox listener on an ``AlertStore`` (once: a store shared by ingest and
    the hub in ``farsight demo`` is not given two) and return the outbox."""
    for listener in store.listeners:
        owner = getattr(listener, "__self__", None)
        if isinstance(owner, Outbox):
            return owner
    outbox = Outbox(store.db, source, clock=store.clock, lock_row=store.lock_in)
    store.listeners.append(outbox.listener)
    return outbox


# -- backoff (pure) --------------------------------------------------------------------------------


def backoff_bound(attempts: int, base_s: float, cap_s: float) -> float:
    """Upper bound of the wait after the ``attempts``-th failed attempt: ``min(cap, base *
    2**(attempts-1))``."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    # 2**1100 overflows a float: past the cap the exponent no longer matters.
    exp = min(attempts - 1, 1023)
    return min(cap_s, base_s * 2.0**exp)


def backoff_delay(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter: a uniform wait in ``[0, backoff_bound(attempts, base_s, cap_s)]`` seconds."""
    return rng.uniform(0.0, backoff_bound(attempts, base_s, cap_s))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date, RFC 9110 10.2.3); None
    if absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# -- claiming, outcomes, dead letters --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """One leased outbox row."""

    id: int
    key: str
    alert_id: int
    event_id: int
    payload: str
    attempts: int


def claim(db: Database, worker: str, batch: int, now_ms: int, lease_ms: int) -> list[Claimed]:
    """Lease up to ``batch`` due rows to ``worker``: pending, due, not leased by a live worker,
    and first of their alert not yet sent (strict order per alert). One statement."""
    lock = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgres" else ""
    # MATERIALIZED: the CTE runs once, so the LIMIT and the row locks apply to one set of
    # rows (an inlined IN-subquery may be re-run by PostgreSQL's planner).
    sql = (
        "WITH c AS MATERIALIZED ("
        " SELECT o.id FROM outbox o"
        " WHERE o.status = 'pending' AND o.next_at <= ?"
        " AND (o.claimed_until IS NULL OR o.claimed_until <= ?)"
        " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.alert_id = o.alert_id AND p.id < o.id "
        "AND p.status != 'sent')"
        f" ORDER BY o.id LIMIT ?{lock})"
        " UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN (SELECT id FROM c)"
        " RETURNING id, key, alert_id, event_id, payload, attempts"
    )
    with db.transaction() as c:
        rows = c.execute(sql, (now_ms, now_ms, batch, worker, now_ms + lease_ms)).fetchall()
    return sorted(
        (
            Claimed(
                int(r["id"]),
                r["key"],
                int(r["alert_id"]),
                int(r["event_id"]),
                r["payload"],
                int(r["attempts"]),
            )
            for r in rows
        ),
        key=lambda x: x.id,
    )


def release(db: Database, worker: str, ids: Iterable[int]) -> None:
    """Give back leased rows not attempted (the worker stops or its lease runs short)."""
    ids = list(ids)
    if not ids:
        return
    with db.transaction() as c:
        c.execute(
            f"UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ? AND "
            f"id IN ({','.join('?' * len(ids))})",
            (worker, *ids),
        )


@contextmanager
def _opened(db: Database | Path | str) -> Iterator[Database]:
    """``db`` itself, or a connection opened for the call and closed after it; the table exists."""
    database = Database.open(db)
    try:
        yield ensure_schema(database)
    finally:
        if not isinstance(db, Database):
            database.close()


def _row_dict(r: Any) -> dict[str, Any]:
    # Rows of both backends read like sqlite3.Row: keys() and positions, not a mapping.
    return dict(zip(r.keys(), r, strict=True))


def redrive(db: Database | Path | str, alert_id: int | None = None, key: str | None = None) -> int:
    """Put dead rows (all, one alert's, or one key's) back to pending with attempts reset; returns
    how many."""
    where: list[str] = ["status = 'dead'"]
    params: list[Any] = []
    if alert_id is not None:
        where.append("alert_id = ?")
        params.append(alert_id)
    if key is not None:
        where.append("key = ?")
        params.append(key)
    # A record refused for its content waits for its correction, not for a resend.
    where.append(
        "NOT EXISTS (SELECT 1 FROM upstream_rejections r WHERE r.outbox_id = outbox.id"
        " AND r.status = 'open')"
    )
    with _opened(db) as database, database.transaction() as c:
        n = c.execute(
            f"UPDATE outbox SET status = 'pending', attempts = 0, next_at = 0, claimed_by = NULL, "
            f"claimed_until = NULL"
            f" WHERE {' AND '.join(where)}",
            params,
        ).rowcount
    log.info("outbox redrive", extra=kv(alert=alert_id, key=key, rows=n))
    return int(n)


def status(db: Database | Path | str, now: datetime | None = None) -> dict[str, Any]:
    """Rows per status, and the age in seconds of the oldest row not yet sent (pending), or None."""
    counts = {s: 0 for s in STATUSES}
    with _opened(db) as database:
        for r in database.query("SELECT status, count(*) FROM outbox GROUP BY status"):
            counts[r[0]] = int(r[1])
        oldest = database.query("SELECT min(created) FROM outbox WHERE status = 'pending'")[0][0]
    now_ms = to_epoch_ms(now or datetime.now(UTC))
    return {
        **counts,
        "oldest_pending_age_s": None if oldest is None else max(0.0, (now_ms - int(oldest)) / 1000),
    }


def dead_letters(db: Database | Path | str, limit: int = 50) -> list[dict[str, Any]]:
    """Dead rows, oldest first: key, alert, event, attempts, last error."""
    with _opened(db) as database:
        rows = database.query(
            "SELECT id, key, alert_id, event_id, attempts, last_error, created FROM outbox"
            " WHERE status = 'dead' ORDER BY id LIMIT ?",
            (limit,),
        )
    return [_row_dict(r) for r in rows]


class OutboxCollector:
    """A prometheus_client collector for ``/metrics``: outbox rows by status, oldest pending age.

    It reads the outbox at each scrape (:func:`status`), so it holds no state of its own.
    """

    def __init__(self, db: Database | Path | str, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def collect(self) -> Iterator[Metric]:
        st = status(self._db, self._clock.now())
        events = GaugeMetricFamily(
            "farsight_outbox_events", "Events in the upstream outbox, by status.", labels=["status"]
        )
        for s in STATUSES:
            events.add_metric([s], st[s])
        yield events
        yield GaugeMetricFamily(
            "farsight_outbox_oldest_pending_seconds",
            "Age of the oldest event not yet delivered upstream (0 when none).",
            value=st["oldest_pending_age_s"] or 0,
        )


# -- the sender -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: ``sent``, ``retry`` (with an optional Retry-After), ``dead``,
    or ``rejected`` (with the receiver's quality errors)."""

    result: str
    detail: str = ""
    retry_after_s: float | None = None
    errors: tuple[FieldError, ...] = ()


class OutboxSender:
    """One sender worker: its own database connection and HTTP client; claim, POST, record.

    ``transport`` is passed to :class:`httpx.Client` (a test seam, e.g. ``httpx.MockTransport``);
    ``clock`` and ``rng`` control time and jitter in tests.
    """

    def __init__(
        self,
        db_target: Database | Path | str,
        settings: UpstreamSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        worker_id: str | None = None,
    ) -> None:
        if not settings.url:
            raise ValueError("alerts.upstream.url is not set: there is nowhere to send the outbox")
        self.url: str = settings.url
        self._own_db = not isinstance(db_target, Database)
        self.db = ensure_schema(Database.open(db_target))
        self.settings = settings
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.worker_id = (
            worker_id
            or f"{settings.source}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self.client = httpx.Client(
            transport=transport, timeout=settings.timeout_s, follow_redirects=False
        )
        if settings.lease_s <= 2 * settings.timeout_s:
            log.warning(
                "outbox lease is short for the timeout: an attempt may outlive its lease and be "
                "sent twice",
                extra=kv(lease_s=settings.lease_s, timeout_s=settings.timeout_s),
            )
        self.totals: Counter[str] = Counter()
        """Attempts by outcome since start (``sent``, ``retry``, ``dead``), for metrics."""

    def _now_ms(self) -> int:
        return to_epoch_ms(self.clock.now())

    def _headers(self, key: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": key,
            "User-Agent": f"farsight-outbox/{__version__}",
            "X-Farsight-Source": self.settings.source,
        }
        token = os.environ.get(self.settings.token_env, "").strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def attempt(self, row: Claimed) -> Outcome:
        """POST one row; classify the answer. Never raises."""
        url = self.settings.url
        if url is None:
            return Outcome("retry", "no upstream url configured (alerts.upstream.url)")
        try:
            r = self.client.post(
                self.url, content=row.payload.encode("utf-8"), headers=self._headers(row.key)
            )
        except httpx.TimeoutException as exc:
            return Outcome(
                "retry", f"timeout after {self.settings.timeout_s:g} s ({type(exc).__name__})"
            )
        except httpx.HTTPError as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        # A bug or an odd transport must not kill the worker.
        except Exception as exc:  # noqa: BLE001
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        code = r.status_code
        body = r.text[:200].replace("\n", " ") if r.content else ""
        if 200 <= code < 300 or code == 409:  # 409: the receiver has this key already
            return Outcome("sent", f"HTTP {code}")
        detail = f"HTTP {code}" + (f": {body}" if body else "")
        if code >= 500 or code in RETRY_STATUSES:
            return Outcome(
                "retry", detail, parse_retry_after(r.headers.get("retry-after"), self.clock.now())
            )
        errors = parse_rejection(code, r.content)
        if errors is not None:
            return Outcome("rejected", describe(errors), errors=errors)
        return Outcome("dead", detail + " (refused; not retried)")

    def _record(self, row: Claimed, outcome: Outcome) -> str:
        """Write an attempt's outcome; returns the row's resulting status word."""
        s = self.settings
        now = self._now_ms()
        attempts = row.attempts + 1
        detail = outcome.detail[:ERROR_CHARS]
        with self.db.transaction() as c:
            if outcome.result == "sent":
                c.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = ?, claimed_by = "
                    "NULL, claimed_until = NULL"
                    " WHERE id = ? AND status = 'pending'",
                    (now, attempts, row.id),
                )
                return "sent"
            if outcome.result == "rejected":
                c.execute(
                    "UPDATE outbox SET status = 'dead', attempts = ?, last_error = ?, claimed_by "
                    "= NULL, claimed_until = NULL WHERE id = ? AND status = 'pending'",
                    (attempts, detail, row.id),
                )
                record_rejection(c, row.id, row.key, row.alert_id, row.payload, outcome.errors, now)
                log.error(
                    "upstream rejected a record; it waits for a correction",
                    extra=kv(key=row.key, alert=row.alert_id, error=detail),
                )
                return "rejected"
            if outcome.result == "dead" or attempts >= s.max_attempts:
                reason = (
                    detail
                    if outcome.result == "dead"
                    else f"{detail} (gave up after {attempts} attempts)"
                )
                c.execute(
                    "UPDATE outbox SET status = 'dead', attempts = ?, last_error = ?, claimed_by "
                    "= NULL, claimed_until = NULL"
                    " WHERE id = ? AND status = 'pending'",
                    (attempts, reason[:ERROR_CHARS], row.id),
                )
                log.error(
                    "upstream event dead-lettered",
                    extra=kv(key=row.key, alert=row.alert_id, attempt=attempts, error=reason),
                )
                return "dead"
            if outcome.retry_after_s is not None:
                delay = min(s.backoff_cap_s, outcome.retry_after_s)
            else:
                delay = backoff_delay(attempts, s.backoff_base_s, s.backoff_cap_s, self.rng)
            c.execute(
                "UPDATE outbox SET attempts = ?, next_at = ?, last_error = ?, claimed_by = NULL, "
                "claimed_until = NULL"
                " WHERE id = ? AND status = 'pending'",
                (attempts, now + round(delay * 1000), detail, row.id),
            )
        log.warning(
            "upstream send failed; will retry",
            extra=kv(
                key=row.key,
                alert=row.alert_id,
                attempt=attempts,
                error=detail,
                retry_in_s=round(delay, 3),
            ),
        )
        return "retry"

    def run_once(self, stop_event: threading.Event | None = None) -> dict[str, int]:
        """Claim one batch and attempt each row once; returns counts (claimed, sent, retry, dead,
        rejected, released)."""
        s = self.settings
        lease_ms = int(s.lease_s * 1000)
        counts = {"claimed": 0, "sent": 0, "retry": 0, "dead": 0, "rejected": 0, "released": 0}
        rows = claim(self.db, self.worker_id, s.batch, self._now_ms(), lease_ms)
        counts["claimed"] = len(rows)
        lease_end = self._now_ms() + lease_ms
        for i, row in enumerate(rows):
            # Stop early, giving rows back, when asked to or when the lease could end during
            # the next attempt (another worker could then claim and send the row too).
            short = i > 0 and self._now_ms() + int(s.timeout_s * 1000) * 2 > lease_end
            if (stop_event is not None and stop_event.is_set()) or short:
                rest = [r.id for r in rows[i:]]
                release(self.db, self.worker_id, rest)
                counts["released"] = len(rest)
                break
            outcome = self.attempt(row)
            result = self._record(row, outcome)
            counts[result] += 1
            self.totals[result] += 1
        return counts

    def run_forever(self, stop_event: threading.Event) -> None:
        """Send until ``stop_event`` is set; errors are logged, never raised."""
        log.info("outbox sender started", extra=kv(worker=self.worker_id, url=self.settings.url))
        while not stop_event.is_set():
            try:
                counts = self.run_once(stop_event)
                busy = counts["claimed"] > 0
            # Database down, a bug: log, wait, try again.
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "outbox sender error",
                    extra=kv(worker=self.worker_id, error=f"{type(exc).__name__}: {exc}"),
                )
                busy = False
            if not busy:
                stop_event.wait(self.settings.poll_s)
        log.info("outbox sender stopped", extra=kv(worker=self.worker_id))

    def close(self) -> None:
        self.client.close()
        if self._own_db:
            self.db.close()


class SenderPool:
    """``settings.workers`` sender threads, each with its own connection; :meth:`stop` ends them."""

    def __init__(
        self,
        db_target: Path | str,
        settings: UpstreamSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        workers: int | None = None,
    ) -> None:
        self.stop_event = threading.Event()
        self.senders = [
            OutboxSender(db_target, settings, transport=transport)
            for _ in range(workers or settings.workers)
        ]
        self.threads = [
            threading.Thread(
                target=s.run_forever,
                args=(self.stop_event,),
                name=f"outbox-sender-{i}",
                daemon=True,
            )
            for i, s in enumerate(self.senders)
        ]
        self._timeout_s = settings.timeout_s

    def start(self) -> SenderPool:
        for t in self.threads:
            t.start()
        return self

    def totals(self) -> Counter[str]:
        """Attempts by outcome across the pool's workers."""
        total: Counter[str] = Counter()
        for s in self.senders:
            total.update(s.totals)
        return total

    def stop(self) -> None:
        """Set the stop flag and wait for each worker's current attempt to end (at most its
        timeout)."""
        self.stop_event.set()
        for t in self.threads:
            t.join(self._timeout_s + 10)
            if t.is_alive():
                log.warning("outbox sender did not stop in time", extra=kv(thread=t.name))
        for s, t in zip(self.senders, self.threads):
            if not t.is_alive():
                s.close()


def start_senders(
    db_target: Path | str,
    settings: UpstreamSettings,
    *,
    transport: httpx.BaseTransport | None = None,
) -> SenderPool:
    """Start ``settings.workers`` sender threads on ``db_target``; stop them with
    :meth:`SenderPool.stop`."""
    return SenderPool(db_target, settings, transport=transport).start()
