"""Silences: people mute matching alerts for a time window, with a reason (Alertmanager's silences).

A silence has matchers (:mod:`alerts.matchers`), a start, an end, a reason and a creator. It is
*pending* before its start, *active* from its start until its end, and *expired* after its end
or once someone expires it early. It expires by itself: nothing has to run for that; the mute
stage (:mod:`alerts.mute`) unmutes its alerts on its next tick. Silences are never deleted;
creating and expiring each append an audit entry in the same transaction (全程留痕).

Muting an alert does not remove it: the alert stays in the queue, flagged ``suppressed``.

A silence's matchers are compiled once (RE2, :mod:`alerts.matchers`) when it is created or
first read, and kept by their stored text. A stored silence whose pattern RE2 refuses (written
before matchers ran on RE2, with a lookahead say) mutes nothing: it is listed with the reason,
and logged, rather than stopping every reader of the table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from alerts.audit import AuditLog
from alerts.audit_store import open_audit_log
from alerts.matchers import MatcherError, MatcherInput, Matchers, parse_matchers, pinned, to_dict
from farsight.clock import Clock, SystemClock, from_epoch_ms, to_epoch_ms, utc
from farsight.db import Database
from farsight.errors import NotFoundError, SilenceError
from farsight.logs import kv
from farsight.migrate import ensure_schema

log = logging.getLogger(__name__)

MAX_DURATION = timedelta(days=90)
"""Longest silence: a mute that outlives a season is a rule to fix, not a silence."""

MAX_REASON = 2000
STATUSES = ("pending", "active", "expired")


class _SilenceMatcherError(SilenceError, MatcherError):
    """A silence refused for its matchers (both a SilenceError and a MatcherError)."""


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence; ``matchers`` is the compiled set, ``to_dict`` gives the stored form."""

    id: int
    matchers: Matchers
    starts_at: datetime
    ends_at: datetime
    reason: str
    creator: str
    created: datetime
    expired_at: datetime | None = None
    expired_by: str | None = None
    refused: str = ""
    """Why the stored matchers do not compile (then ``matchers`` is empty and the silence mutes
    nothing); empty for every silence created through :class:`SilenceStore`."""
    stored: tuple[tuple[str, str], ...] = ()
    """The matchers as stored, when ``refused``."""

    def status(self, now: datetime) -> str:
        """``pending``, ``active`` or ``expired`` at ``now``."""
        if self.expired_at is not None or self.ends_at <= now:
            return "expired"
        if self.starts_at > now:
            return "pending"
        return "active"

    def is_active(self, now: datetime) -> bool:
        return not self.refused and self.status(now) == "active"

    @property
    def department(self) -> str | None:
        """The department the matchers pin (equality), or ``None``."""
        if self.refused:
            dept = dict(self.stored).get("department")
            return dept if dept is not None and not dept.startswith("~") else None
        return pinned(self.matchers, "department")

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "matchers": dict(self.stored) if self.refused else to_dict(self.matchers),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "reason": self.reason,
            "creator": self.creator,
            "created": self.created.isoformat(),
            "expired_at": self.expired_at.isoformat() if self.expired_at else None,
            "expired_by": self.expired_by,
        }
        if self.refused:
            d["refused"] = self.refused
        if now is not None:
            d["status"] = self.status(now)
        return d


def check_silence(
    matchers: MatcherInput,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    creator: str,
    now: datetime,
) -> Matchers:
    """Validate a new silence; return its compiled matchers. Pure.

    Raises
    ------
    SilenceError
        Naive times, an end not after the start or not in the future, longer than
        :data:`MAX_DURATION`, an empty reason or creator, or bad matchers (also a
        :class:`MatcherError`: the message names the label and value), or matchers that would
        all match an alert without those labels (the silence would mute far too much).
    """
    try:
        ms = parse_matchers(matchers)
    except MatcherError as exc:
        raise _SilenceMatcherError(str(exc)) from None
    if all(m.matches_empty() for m in ms):
        raise _SilenceMatcherError(
            "at least one matcher must need a non-empty value (these match alerts without the"
            " labels: nearly everything)"
        )
    for name, t in (("starts_at", starts_at), ("ends_at", ends_at)):
        if t.tzinfo is None:
            raise SilenceError(f"{name} {t.isoformat()} has no UTC offset")
    if ends_at <= starts_at:
        raise SilenceError(
            f"ends_at {ends_at.isoformat()} must be after starts_at {starts_at.isoformat()}"
        )
    if ends_at <= now:
        raise SilenceError(f"ends_at {ends_at.isoformat()} is in the past (now {now.isoformat()})")
    if ends_at - starts_at > MAX_DURATION:
        raise SilenceError(
            f"a silence lasts at most {MAX_DURATION.days} days; this one lasts"
            f" {ends_at - starts_at}"
        )
    if not isinstance(reason, str) or not reason.strip():
        raise SilenceError("a silence needs a reason (why these alerts may be muted)")
    if len(reason) > MAX_REASON:
        raise SilenceError(f"reason is longer than {MAX_REASON} characters")
    if not isinstance(creator, str) or not creator.strip():
        raise SilenceError("a silence needs its creator")
    return ms


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Matchers | str:
    """The stored matchers compiled, or why they cannot be; once per distinct text (silences
    never change their matchers, so the text is the key)."""
    try:
        return parse_matchers(json.loads(text))
    except (MatcherError, ValueError) as exc:
        log.warning("stored silence matchers refused; it mutes nothing", extra=kv(reason=exc))
        return str(exc)


def _stored(text: str) -> tuple[tuple[str, str], ...]:
    try:
        doc = json.loads(text)
    except ValueError:
        return ()
    return tuple((str(k), str(v)) for k, v in sorted(doc.items())) if isinstance(doc, dict) else ()


def _row(r: Any) -> Silence:
    text = r["matchers"]
    compiled = _compiled(text)
    refused = ""
    stored: tuple[tuple[str, str], ...] = ()
    matchers: Matchers = ()
    if isinstance(compiled, str):
        refused, stored = compiled, _stored(text)
    else:
        matchers = compiled
    return Silence(
        id=int(r["id"]),
        matchers=matchers,
        refused=refused,
        stored=stored,
        starts_at=from_epoch_ms(r["starts_at"]),
        ends_at=from_epoch_ms(r["ends_at"]),
        reason=r["reason"],
        creator=r["creator"],
        created=from_epoch_ms(r["created"]),
        expired_at=from_epoch_ms(r["expired_at"]) if r["expired_at"] is not None else None,
        expired_by=r["expired_by"],
    )


class SilenceStore:
    """Silences on a :class:`~farsight.db.Database` (give the alert store's ``db`` to share its
    transactions and audit chain)."""

    def __init__(
        self,
        target: Path | str | Database,
        clock: Clock | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.db = ensure_schema(Database.open(target))
        self.audit: AuditLog = audit or open_audit_log(self.db)
        self.clock = clock or SystemClock()

    def _now(self, now: datetime | None) -> datetime:
        return utc(now) if now is not None else self.clock.now()

    def create(
        self,
        matchers: MatcherInput,
        starts_at: datetime | None,
        ends_at: datetime,
        reason: str,
        creator: str,
        *,
        now: datetime | None = None,
    ) -> Silence:
        """Create a silence (``starts_at`` ``None``: now); audited as ``created`` by ``creator``.

        Raises
        ------
        SilenceError
            See :func:`check_silence`.
        """
        at = self._now(now)
        start = at if starts_at is None else starts_at
        ms = check_silence(matchers, start, ends_at, reason, creator, at)
        start, end = utc(start), utc(ends_at)
        doc = to_dict(ms)
        with self.db.transaction() as c:
            sid = int(
                c.execute(
                    "INSERT INTO silences (matchers, starts_at, ends_at, reason, creator, created)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        json.dumps(doc, ensure_ascii=False),
                        to_epoch_ms(start),
                        to_epoch_ms(end),
                        reason.strip(),
                        creator,
                        to_epoch_ms(at),
                    ),
                ).fetchone()[0]
            )
            self.audit.append_in(
                c,
                creator,
                "created",
                f"silence:{sid}",
                {
                    "matchers": doc,
                    "starts_at": start.isoformat(),
                    "ends_at": end.isoformat(),
                    "reason": reason.strip(),
                },
                at=at,
            )
        return self.get(sid)

    def expire(
        self, silence_id: int, actor: str, *, now: datetime | None = None, note: str = ""
    ) -> Silence:
        """End a silence early (a pending one never starts); audited as ``expired`` by ``actor``.

        Raises
        ------
        NotFoundError
            No silence has this id.
        SilenceError
            It has already expired (by itself or by someone), or ``actor`` is empty.
        """
        if not actor or not actor.strip():
            raise SilenceError("expiring a silence needs the actor")
        at = self._now(now)
        with self.db.transaction() as c:
            lock = " FOR UPDATE" if self.db.dialect == "postgres" else ""
            r = c.execute(f"SELECT * FROM silences WHERE id = ?{lock}", (silence_id,)).fetchone()
            if r is None:
                raise NotFoundError(f"no silence {silence_id}")
            s = _row(r)
            if s.status(at) == "expired":
                when = s.expired_at or s.ends_at
                raise SilenceError(
                    f"silence {silence_id} has already expired (at {when.isoformat()})"
                )
            c.execute(
                "UPDATE silences SET expired_at = ?, expired_by = ? WHERE id = ?",
                (to_epoch_ms(at), actor, silence_id),
            )
            self.audit.append_in(
                c,
                actor,
                "expired",
                f"silence:{silence_id}",
                {"note": note, "was": s.status(at), "ends_at": s.ends_at.isoformat()},
                at=at,
            )
        return self.get(silence_id)

    def get(self, silence_id: int) -> Silence:
        rows = self.db.query("SELECT * FROM silences WHERE id = ?", (silence_id,))
        if not rows:
            raise NotFoundError(f"no silence {silence_id}")
        return _row(rows[0])

    def active(self, now: datetime | None = None) -> list[Silence]:
        """Silences active at ``now`` (default: the clock's), oldest first."""
        n = to_epoch_ms(self._now(now))
        rows = self.db.query(
            "SELECT * FROM silences WHERE expired_at IS NULL AND starts_at <= ? AND ends_at > ?"
            " ORDER BY id",
            (n, n),
        )
        return [s for s in map(_row, rows) if not s.refused]

    def list(
        self,
        status: str | None = None,
        *,
        now: datetime | None = None,
        department: str | None = None,
        limit: int = 1000,
    ) -> list[Silence]:
        """Silences, newest first: all, or those ``pending``, ``active`` or ``expired`` at ``now``;
        ``department``: only those whose matchers pin that department.

        Raises
        ------
        ValueError
            Unknown status or a limit below 1.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown silence status {status!r}; known: {', '.join(STATUSES)}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        n = to_epoch_ms(self._now(now))
        where = "1=1"
        params: list[Any] = []
        if status == "expired":
            where, params = "(expired_at IS NOT NULL OR ends_at <= ?)", [n]
        elif status == "active":
            where, params = "expired_at IS NULL AND starts_at <= ? AND ends_at > ?", [n, n]
        elif status == "pending":
            where, params = "expired_at IS NULL AND starts_at > ? AND ends_at > ?", [n, n]
        out = []
        # The department is in the matchers' JSON: filtered here, not in SQL (silences are few).
        for r in self.db.query(
            f"SELECT * FROM silences WHERE {where} ORDER BY id DESC", tuple(params)
        ):
            s = _row(r)
            if department is not None and s.department != department:
                continue
            out.append(s)
            if len(out) >= limit:
                break
        return out

    def close(self) -> None:
        self.db.close()


__all__ = ["MAX_DURATION", "Silence", "SilenceError", "SilenceStore", "check_silence"]
