"""Dead letters read back, filtered, and replayed through the current decoders and registry.

A replay hands each letter's topic, payload and first arrival time to
:meth:`IngestPipeline.process`, the path live messages take (decode, registry, device
passwords, admission checks), so a letter refused before a registry or codec fix stores what now
decodes. The readings a replay stores keep that first arrival as their receive time: the device
delivered them then, and timeliness is the device's, not how long a repair took (the measure-time
checks judge against the same time, so a replay refuses what live ingest would have refused).
Readings go through :meth:`ReadingStore.write_batch`, whose key
(site, device, metric, ts) makes a replay idempotent: a reading stored already (by a replay or
by a redelivery) is not stored again.

A gateway's batch (``fs/v1/gw/{gateway}/batch``) is verified again as live batches are, with
the current keys and the registry's site assignment (MAC, gateway, size, each message's site), but
not against the gateway's sequence: a refused batch was never applied, and later batches moving
the sequence past it is no reason to refuse it now (the MAC proves the gateway sent it; readings
are keyed, so nothing is stored twice). A batch whose MAC does not verify under the current key
(tampered, or signed with a key since rotated) is not replayed, and its outcome says why. A
message an accepted batch carried for a site not its gateway's is replayed only once the registry
assigns the site to that gateway.

Letters are marked, not deleted (``replayed_at``, ``replay_outcome``, ``replay_detail``,
``replays``; migration 0005): the refusal stays counted where quality figures count refusals,
the raw payload stays evidence of what the device sent until retention removes it, and a
second replay skips what was stored. Replayed readings are not evaluated by the rule engine:
the engine's state lives in the ingest process, and readings hours old must not move its live
state; ``farsight rules backtest`` evaluates a period again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from farsight.clock import from_epoch_ms, to_epoch_ms
from farsight.db import Connection, Database
from ingest.audit import AuditTrail
from ingest.edge_batches import BatchError, EdgeMessage, batch_gateway
from ingest.message import Message
from ingest.pipeline import IngestPipeline
from ingest.store import DeadLetter

OUTCOMES = ("stored", "duplicate", "failed", "unreplayable")
"""What a replay of one letter came to (the ``replay_outcome`` column)."""

PENDING = "pending"
"""Filter word for letters never replayed or whose last replay failed: what a replay takes."""

MAX_LIMIT = 100_000
"""Most letters one command lists or replays."""

EDGE_CODEC = "edge-batch"
"""The codec of letters :mod:`ingest.edge_batches` wrote: refused batches, and messages of an
accepted batch that its gateway may not forward."""

GATEWAY_REFUSALS = ("foreign_site", "nested_batch")
"""Reasons of a message refused because of the gateway that forwarded it."""

_FORWARDED_BY = re.compile(r"gateway (\S+) batch (\d+)")


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which dead letters a list or replay takes; every field narrows, ``None`` is any."""

    reason: str | None = None
    topic: str | None = None
    site: str | None = None
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[int, ...] = ()
    outcome: str | None = None
    """A replay outcome, ``pending`` (never replayed, or failed), or ``None`` (any)."""
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.outcome is not None and self.outcome not in (*OUTCOMES, PENDING):
            raise ValueError(
                f"outcome must be one of {', '.join((*OUTCOMES, PENDING))}, got {self.outcome!r}"
            )


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """A dead letter as stored, with what its replays found."""

    letter: DeadLetter
    id: int
    replayed_at: datetime | None = None
    replay_outcome: str | None = None
    replay_detail: str | None = None
    replays: int = 0
    truncated: bool = False
    """The payload kept is only the first bytes of what arrived (retention cut it)."""
    payload_sha256: str | None = None
    """The hash of the whole payload as it arrived, when retention recorded one."""

    def to_json(self, payload: bool = False) -> dict[str, Any]:
        """JSON-ready data; the payload (UTF-8 text, else hex) only when asked for."""
        d = self.letter
        doc: dict[str, Any] = {
            "id": self.id,
            "received": d.received.isoformat(),
            "topic": d.topic,
            "codec": d.codec,
            "reason": d.reason,
            "detail": d.detail,
            "size": len(d.payload),
            "sha256": self.payload_sha256 or hashlib.sha256(d.payload).hexdigest(),
            "truncated": self.truncated,
            "replays": self.replays,
            "replayed_at": None if self.replayed_at is None else self.replayed_at.isoformat(),
            "replay_outcome": self.replay_outcome,
            "replay_detail": self.replay_detail,
        }
        if payload:
            try:
                doc["payload"] = d.payload.decode("utf-8")
            except UnicodeDecodeError:
                doc["payload_hex"] = d.payload.hex()
        return doc


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying one letter came to."""

    id: int
    topic: str
    outcome: str
    stored: int = 0
    duplicates: int = 0
    reason: str = ""
    """The refusal's reason when the outcome is ``failed`` or ``unreplayable``."""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "outcome": self.outcome,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "reason": self.reason,
            "detail": self.detail,
        }


# -- reading ---------------------------------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _topic_like(f: LetterFilter) -> str | None:
    """A LIKE pattern for the topic parts the filter names (``fs/v1/dept/site/device/kind``)."""
    if f.site is None and f.device is None:
        return None
    site = "%" if f.site is None else _like_escape(f.site)
    device = "%" if f.device is None else _like_escape(f.device)
    return f"fs/v1/%/{site}/{device}/%"


def _topic_parts_match(topic: str, f: LetterFilter) -> bool:
    # LIKE's % spans slashes: check the parts themselves.
    parts = topic.split("/")
    if f.site is None and f.device is None:
        return True
    if len(parts) != 6:
        return False
    return (f.site is None or parts[3] == f.site) and (f.device is None or parts[4] == f.device)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching: ``+`` is one level, a final ``#`` the rest."""
    pat, top = pattern.split("/"), topic.split("/")
    for i, p in enumerate(pat):
        if p == "#" and i == len(pat) - 1:
            return True
        if i >= len(top) or (p != "+" and p != top[i]):
            return False
    return len(pat) == len(top)


def _where(f: LetterFilter) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if f.ids:
        where.append(f"id IN ({','.join('?' * len(f.ids))})")
        params.extend(f.ids)
    if f.reason is not None:
        where.append("reason = ?")
        params.append(f.reason)
    if f.topic is not None and not any(c in f.topic for c in "+#"):
        where.append("topic = ?")
        params.append(f.topic)
    like = _topic_like(f)
    if like is not None:
        where.append("topic LIKE ? ESCAPE '\\'")
        params.append(like)
    if f.since is not None:
        where.append("received >= ?")
        params.append(to_epoch_ms(f.since))
    if f.until is not None:
        where.append("received <= ?")
        params.append(to_epoch_ms(f.until))
    if f.outcome == PENDING:
        where.append("(replay_outcome IS NULL OR replay_outcome = 'failed')")
    elif f.outcome is not None:
        where.append("replay_outcome = ?")
        params.append(f.outcome)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def _truncation(row: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether retention cut the payload, and the whole payload's hash if it kept one.

    Read tolerantly: retention's columns (a truncation flag, the original size, the hash) may be
    named ``truncated``/``payload_truncated``, ``payload_size``/``size`` and
    ``payload_sha256``/``sha256``, or be absent on a database without retention.
    """
    sha = row.get("payload_sha256") or row.get("sha256")
    flag = bool(row.get("truncated") or row.get("payload_truncated"))
    size = row.get("payload_size") or row.get("size")
    kept = row.get("payload")
    if not flag and size is not None and kept is not None:
        flag = int(size) > len(bytes(kept))
    return flag, (str(sha) if sha else None)


def _stored(r: Any) -> StoredLetter:
    row = dict(zip(r.keys(), r, strict=True))
    truncated, sha = _truncation(row)
    at = row.get("replayed_at")
    return StoredLetter(
        letter=DeadLetter(
            topic=row["topic"],
            payload=bytes(row["payload"]),
            reason=row["reason"],
            detail=row["detail"] or "",
            received=from_epoch_ms(row["received"]),
            codec=row.get("codec"),
            id=int(row["id"]),
        ),
        id=int(row["id"]),
        replayed_at=None if at is None else from_epoch_ms(at),
        replay_outcome=row.get("replay_outcome"),
        replay_detail=row.get("replay_detail"),
        replays=int(row.get("replays") or 0),
        truncated=truncated,
        payload_sha256=sha,
    )


def select_letters(db: Database, f: LetterFilter) -> list[StoredLetter]:
    """Letters matching ``f``, oldest first (replays go in arrival order), at most ``f.limit``."""
    where, params = _where(f)
    wildcard_topic = f.topic is not None and any(c in f.topic for c in "+#")
    out: list[StoredLetter] = []
    after = 0
    # Pages, so a wildcard topic that the database cannot filter still returns up to limit.
    while len(out) < f.limit:
        page_where = (where + " AND" if where else " WHERE") + " id > ?"
        rows = db.query(
            f"SELECT * FROM dead_letters{page_where} ORDER BY id LIMIT ?",
            (*params, after, f.limit),
        )
        if not rows:
            break
        for r in rows:
            letter = _stored(r)
            after = letter.id
            if not _topic_parts_match(letter.letter.topic, f):
                continue
            if wildcard_topic and not topic_matches(str(f.topic), letter.letter.topic):
                continue
            out.append(letter)
            if len(out) == f.limit:
                break
        if len(rows) < f.limit:
            break
    return out


def get_letter(db: Database, letter_id: int) -> StoredLetter | None:
    rows = db.query("SELECT * FROM dead_letters WHERE id = ?", (letter_id,))
    return _stored(rows[0]) if rows else None


# -- replaying -------------------------------------------------------------------------------------


def _unreplayable(letter: StoredLetter) -> ReplayResult:
    d = letter.letter
    sha = f" (sha256 {letter.payload_sha256})" if letter.payload_sha256 else ""
    detail = f"payload truncated by retention to {len(d.payload)} bytes{sha}; cannot replay"
    return ReplayResult(letter.id, d.topic, "unreplayable", 0, 0, "truncated", detail)


def _replay_in(pipeline: IngestPipeline, c: Connection, letter: StoredLetter) -> ReplayResult:
    """Run one letter through :meth:`IngestPipeline.process` inside the caller's transaction.

    The letter goes the whole way live messages go (decode, registry, device passwords, and
    every admission check the pipeline makes), arriving at the time it first arrived. A gateway
    batch is verified first as live batches are (:func:`_replay_batch`); a message a gateway
    forwarded for a site not its own only once the registry assigns the site
    (:func:`_replay_forwarded`).
    """
    d = letter.letter
    if batch_gateway(d.topic) is not None:
        return _replay_batch(pipeline, c, letter)
    if d.codec == EDGE_CODEC and d.reason in GATEWAY_REFUSALS:
        return _replay_forwarded(pipeline, c, letter)
    return _run(pipeline, c, letter, [Message(d.topic, d.payload, d.received)], expand=True)


def _run(
    pipeline: IngestPipeline,
    c: Connection,
    letter: StoredLetter,
    messages: Sequence[Message],
    *,
    expand: bool,
    refused: Sequence[tuple[str, str]] = (),
) -> ReplayResult:
    """Process ``messages`` (what ``letter`` carries) and say what came of them.

    A refusal makes the pipeline write a new dead letter: its reason is taken for the replay's
    outcome and the new letter removed, since the refused message is (in) the letter being
    replayed. ``refused``: (reason, detail) of messages refused before processing (a gateway
    batch's foreign messages). Any refusal makes the outcome ``failed``, so that a replay of
    what is pending takes the letter again after the next fix; what was stored stays stored
    once.
    """
    d = letter.letter
    before = int(c.execute("SELECT coalesce(max(id), 0) FROM dead_letters").fetchone()[0])
    result = pipeline.process(messages, expand=expand) if messages else None
    stored = result.stored if result else 0
    duplicates = result.duplicates if result else 0
    refusals = list(refused)
    if result is not None and result.rejected:
        # The ones this call wrote: after `before`, on the letter's topics, at its first arrival
        # time (a live message arrives now, not then).
        topics = sorted({m.topic for m in messages})
        marks = ",".join("?" * len(topics))
        match = f"id > ? AND received = ? AND topic IN ({marks})"
        args = (before, to_epoch_ms(d.received), *topics)
        rows = c.execute(
            f"SELECT reason, detail FROM dead_letters WHERE {match} ORDER BY id", args
        ).fetchall()
        c.execute(f"DELETE FROM dead_letters WHERE {match}", args)
        refusals += [(row[0], row[1] or "") for row in rows] or [("rejected", "")]
    if refusals:
        reason, detail = refusals[0]
        if len(messages) + len(refused) > 1:
            detail = (
                f"{stored} new readings, {duplicates} stored already; {len(refusals)} refusals"
                f" of {len(messages) + len(refused)} messages, the first: {reason}: {detail}"
            )
        return ReplayResult(letter.id, d.topic, "failed", stored, duplicates, reason, detail)
    if stored:
        detail = f"{stored} new readings, {duplicates} stored already"
        return ReplayResult(letter.id, d.topic, "stored", stored, duplicates, "", detail)
    if duplicates:
        detail = f"every reading ({duplicates}) was stored already"
        return ReplayResult(letter.id, d.topic, "duplicate", 0, duplicates, "", detail)
    detail = "decodes, but carries no readings"
    return ReplayResult(letter.id, d.topic, "failed", 0, 0, "no_readings", detail)


def _no_keys(letter: StoredLetter) -> ReplayResult:
    return ReplayResult(
        letter.id,
        letter.letter.topic,
        "failed",
        reason="no_gateway_keys",
        detail="the hub has no gateway keys (edge.keys_file): a gateway's batch is replayed only"
        " once its MAC verifies",
    )


def _replay_batch(pipeline: IngestPipeline, c: Connection, letter: StoredLetter) -> ReplayResult:
    """A dead-lettered gateway batch: verified with the current keys and site assignment (MAC,
    gateway, size, each message's site; not the sequence, see
    :meth:`EdgeBatchDecoder.unpack_for_replay`), then its messages processed as one. A batch
    that does not verify now (a key since rotated) is ``failed`` with that said."""
    d = letter.letter
    if pipeline.edge is None:
        return _no_keys(letter)
    try:
        unpacked = pipeline.edge.unpack_for_replay(Message(d.topic, d.payload, d.received))
    except BatchError as exc:
        return ReplayResult(letter.id, d.topic, "failed", 0, 0, exc.reason, exc.detail)
    return _run(pipeline, c, letter, unpacked.messages, expand=False, refused=unpacked.refused)


def _replay_forwarded(
    pipeline: IngestPipeline, c: Connection, letter: StoredLetter
) -> ReplayResult:
    """A message a verified batch carried but its gateway may not forward: replayed only when
    the gateway may forward it now (the registry assigns it the site), else still refused.
    Replaying it as if the device had sent it would let a gateway's stolen key write any site.
    """
    d = letter.letter
    if d.reason == "nested_batch":
        detail = "a batch inside a gateway's batch is never unpacked"
        return ReplayResult(letter.id, d.topic, "unreplayable", 0, 0, d.reason, detail)
    m = _FORWARDED_BY.match(d.detail)
    if m is None:
        detail = f"the letter does not name the gateway that forwarded it ({d.detail[:80]!r})"
        return ReplayResult(letter.id, d.topic, "unreplayable", 0, 0, d.reason, detail)
    if pipeline.edge is None:
        return _no_keys(letter)
    gateway = m.group(1)
    refusal = pipeline.edge.may_forward(gateway, d.topic)
    if refusal is not None:
        detail = f"gateway {gateway} batch {m.group(2)}: {refusal}"
        return ReplayResult(letter.id, d.topic, "failed", 0, 0, d.reason, detail)
    message = EdgeMessage(d.topic, d.payload, d.received, gateway=gateway)
    return _run(pipeline, c, letter, [message], expand=False)


def replay_letters(
    pipeline: IngestPipeline,
    letters: Iterable[StoredLetter],
    *,
    now: datetime,
    actor: str,
    audit: AuditTrail | None = None,
) -> list[ReplayResult]:
    """Replay ``letters`` one transaction each: new readings and the letter's mark commit
    together, so an interrupted replay leaves every letter either replayed or untouched.

    ``pipeline`` should have no rule engine (see the module docstring). One audit entry
    (``deadletters.replay``, subject ``deadletters``) records who replayed which letters and
    what each came to.
    """
    store = pipeline.store
    now_ms = to_epoch_ms(now)
    results: list[ReplayResult] = []
    for letter in letters:
        with store.db.transaction() as c:
            result = _unreplayable(letter) if letter.truncated else _replay_in(pipeline, c, letter)
            detail = result.detail if not result.reason else f"{result.reason}: {result.detail}"
            c.execute(
                "UPDATE dead_letters SET replayed_at = ?, replay_outcome = ?, replay_detail = ?,"
                " replays = replays + 1 WHERE id = ?",
                (now_ms, result.outcome, detail[:500], letter.id),
            )
        results.append(result)
    if audit is not None and results:
        audit.append(actor, "deadletters.replay", "deadletters", replay_summary(results))
    return results


def replay_summary(results: Sequence[ReplayResult]) -> dict[str, Any]:
    """Counts per outcome, readings stored, and the letter ids per outcome (the audit's data)."""
    by: dict[str, list[int]] = {}
    for r in results:
        by.setdefault(r.outcome, []).append(r.id)
    return {
        "letters": len(results),
        "stored_readings": sum(r.stored for r in results),
        "outcomes": {k: len(v) for k, v in sorted(by.items())},
        "ids": {k: v for k, v in sorted(by.items())},
    }
