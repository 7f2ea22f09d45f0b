"""What the audit chain says the risk queue is, and where ``alerts`` and ``alert_events`` differ.

Every alert event is written with its audit entry in one transaction
(:meth:`~alerts.store.AlertStore.record` and the store's handling steps), so a verified chain
is the history of the queue: replaying an alert's entries gives what its row must hold, and
each of its events must be one of them. An edit made to the tables directly (an alert closed,
who acted changed, an escalation deleted, an event added) leaves the two apart, and the chain's
hashes keep the edit from being carried into the chain as well.

Entries written since this module exist carry the ``alert_events`` id (``event_id``) and the
row's checked columns after the change (``after``: :func:`after_snapshot`), so each event pairs
with its entry exactly and the row is compared with the last entry. Older entries have neither:
their events are paired by content in order (:class:`difflib.SequenceMatcher`) and the row is
replayed from what each action records (``to`` of a handling step, the silence of
``silenced``, the level of ``escalated``, ...), so an old chain still verifies, and is still
checked for state, handling, mutes and escalation.

Pure: rows and entries in, findings out. The reads are :mod:`alerts.store_replay`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.audit import AuditEntry, at_to_ms, canonical_json
from alerts.model import JOINT_VISIT, TRANSITIONS

EVENT_ID = "event_id"
AFTER = "after"
RESERVED = (EVENT_ID, AFTER)
"""Keys the store adds to an alert event's audit data; an event's own data may not use them."""

IDENTITY = ("fingerprint", "rule_id", "site", "device", "metric", "department", "entity_id")
"""Columns fixed when an alert is opened (its ``opened`` entry carries them)."""

STATE = ("state", "activity", "suppressed", "escalation", "handling", "evidence")
"""Columns that alert events change (every entry's ``after`` carries them)."""


def after_snapshot(row: Any, *, opened: bool = False, strict: bool = True) -> dict[str, Any]:
    """The checked columns of an alert row as the chain records them (:data:`STATE`, and
    :data:`IDENTITY` when ``opened``); ``row`` reads by column name.

    ``strict=False`` (reading a queue that may have been edited by hand) keeps a JSON column
    that does not parse as its raw text, so the comparison reports it instead of failing.
    """

    def parsed(column: str) -> Any:
        try:
            return json.loads(row[column])
        except (ValueError, TypeError):
            if strict:
                raise
            return row[column]

    try:
        escalation: Any = int(row["escalation"])
    except (ValueError, TypeError):
        if strict:
            raise
        escalation = row["escalation"]
    out: dict[str, Any] = {
        "state": row["state"],
        "activity": row["activity"],
        "suppressed": parsed("suppressed"),
        "escalation": escalation,
        "handling": parsed("handling"),
        "evidence": parsed("evidence"),
    }
    if opened:
        out.update((k, row[k]) for k in IDENTITY)
    return out


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert as the queue holds it: its id and :func:`after_snapshot` of its row."""

    id: int
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EventRow:
    """One ``alert_events`` row."""

    id: int
    alert_id: int
    at_ms: int
    actor: str
    action: str
    note: str
    data: Mapping[str, Any]

    def audited(self) -> dict[str, Any]:
        """The data its audit entry carries (the store's rule: the note, then the data)."""
        return {"note": self.note, **self.data}


@dataclass(frozen=True, slots=True)
class QueueFinding:
    """Where the queue differs from its chain: the alert, the entry that says otherwise
    (``None`` when none covers it), and what differs."""

    alert_id: int
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"audit entry seq {self.seq}" if self.seq is not None else "no audit entry"
        return f"alert {self.alert_id} ({where}): {self.what}"


@dataclass(frozen=True, slots=True)
class Expected:
    """What the chain says an alert's row holds: per column, the value and the seq of the
    entry that set it; for a column that holds an object (``handling``), per key too."""

    values: Mapping[str, Any]
    seqs: Mapping[str, int]
    key_seqs: Mapping[tuple[str, str], int]


def replay(entries: Sequence[AuditEntry]) -> Expected:
    """Replay one alert's entries (oldest first) into what its row must hold.

    A column no entry speaks of is absent (a chain that began after the alert was opened says
    nothing of its handling before).
    """
    values: dict[str, Any] = {}
    seqs: dict[str, int] = {}
    key_seqs: dict[tuple[str, str], int] = {}

    def put(column: str, value: Any, seq: int) -> None:
        old = values.get(column)
        if column not in values or old != value:
            seqs[column] = seq
            if isinstance(value, Mapping):
                before = old if isinstance(old, Mapping) else {}
                for k in set(value) | set(before):
                    if value.get(k) != before.get(k):
                        key_seqs[(column, k)] = seq
        values[column] = value

    for e in entries:
        d = e.data
        after = d.get(AFTER)
        if isinstance(after, Mapping):
            for column, value in after.items():
                put(column, value, e.seq)
            continue
        action = e.action
        if action == "opened":
            for column, value in (
                ("state", "new"),
                ("activity", "firing"),
                ("suppressed", {}),
                ("escalation", 0),
                ("handling", {}),
            ):
                put(column, value, e.seq)
        elif action == "resolved":
            put("activity", "resolved", e.seq)
        elif action == "refired":
            put("activity", "firing", e.seq)
        elif action in TRANSITIONS:
            if "to" in d:
                put("state", d["to"], e.seq)
            fields = {k: v for k, v in d.items() if k not in ("note", "from", "to", *RESERVED)}
            if fields and "handling" in values:
                put("handling", {**values["handling"], **fields}, e.seq)
        elif action == "silenced" and "silence" in d:
            put("suppressed", {"silence": d["silence"]}, e.seq)
        elif action == "inhibited" and "inhibited_by" in d:
            put("suppressed", {"inhibited_by": d["inhibited_by"]}, e.seq)
        elif action in ("unsilenced", "uninhibited"):
            put("suppressed", {}, e.seq)
        elif action == "escalated" and "level" in d:
            put("escalation", d["level"], e.seq)
        elif action == JOINT_VISIT and "visit" in d and "handling" in values:
            handling = dict(values["handling"])
            handling["dispatch"] = {**dict(handling.get("dispatch") or {}), "visit": d["visit"]}
            put("handling", handling, e.seq)
    return Expected(values, seqs, key_seqs)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _entry_event(e: AuditEntry) -> tuple[int, str, str, bytes]:
    data = {k: v for k, v in e.data.items() if k not in RESERVED}
    return at_to_ms(e.at), e.actor, e.action, canonical_json(data)


def _row_event(ev: EventRow) -> tuple[int, str, str, bytes]:
    return ev.at_ms, ev.actor, ev.action, canonical_json(ev.audited())


def _describe(ev: EventRow) -> str:
    return f"event {ev.id} ({ev.action} by {ev.actor!r})"


def _differences(e: AuditEntry, ev: EventRow) -> str:
    chain = {k: v for k, v in e.data.items() if k not in RESERVED}
    table = ev.audited()
    parts = []
    for name, mine, theirs in (
        ("time", ev.at_ms, at_to_ms(e.at)),
        ("actor", ev.actor, e.actor),
        ("action", ev.action, e.action),
    ):
        if mine != theirs:
            parts.append(f"{name} is {_short(mine)}, the chain says {_short(theirs)}")
    for key in sorted(set(chain) | set(table)):
        if canonical_json({"v": chain.get(key)}) != canonical_json({"v": table.get(key)}):
            parts.append(
                f"{key} is {_short(table.get(key))}, the chain says {_short(chain.get(key))}"
            )
    return "; ".join(parts) or "differs from the chain"


def compare_events(
    alert_id: int, events: Sequence[EventRow], entries: Sequence[AuditEntry]
) -> list[QueueFinding]:
    """Each event of the alert against its audit entry: changed, deleted (an entry without its
    event) or added (an event without an entry)."""
    findings: list[QueueFinding] = []
    by_id = {ev.id: ev for ev in events}
    paired: set[int] = set()
    unpaired_entries: list[AuditEntry] = []
    for e in entries:
        eid = e.data.get(EVENT_ID)
        if type(eid) is not int:
            unpaired_entries.append(e)
            continue
        ev = by_id.get(eid)
        if ev is None:
            findings.append(
                QueueFinding(
                    alert_id,
                    e.seq,
                    f"event {eid} ({e.action} by {e.actor!r}) is missing from alert_events",
                )
            )
            continue
        paired.add(eid)
        if _row_event(ev) != _entry_event(e):
            findings.append(
                QueueFinding(alert_id, e.seq, f"{_describe(ev)}: {_differences(e, ev)}")
            )
    rest = [ev for ev in events if ev.id not in paired]
    matcher = difflib.SequenceMatcher(
        a=[_entry_event(e) for e in unpaired_entries],
        b=[_row_event(ev) for ev in rest],
        autojunk=False,
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        olds, news = unpaired_entries[i1:i2], rest[j1:j2]
        for e, ev in zip(olds, news, strict=False):
            findings.append(
                QueueFinding(alert_id, e.seq, f"{_describe(ev)}: {_differences(e, ev)}")
            )
        for e in olds[len(news) :]:
            findings.append(
                QueueFinding(
                    alert_id,
                    e.seq,
                    f"the {e.action} by {e.actor!r} at {e.at.isoformat()} is missing from"
                    " alert_events",
                )
            )
        for ev in news[len(olds) :]:
            findings.append(QueueFinding(alert_id, None, f"{_describe(ev)} has no audit entry"))
    return findings


def _same(a: Any, b: Any) -> bool:
    return canonical_json({"v": a}) == canonical_json({"v": b})


def _column_findings(
    alert_id: int, column: str, have: Any, want: Any, expected: Expected
) -> list[QueueFinding]:
    """A differing column; an object column key by key, each with the entry that set it."""
    if _same(have, want):
        return []
    if isinstance(have, Mapping) and isinstance(want, Mapping):
        return [
            QueueFinding(
                alert_id,
                expected.key_seqs.get((column, k), expected.seqs[column]),
                f"{column}.{k} is {_short(have.get(k))}, the chain says {_short(want.get(k))}",
            )
            for k in sorted(set(have) | set(want))
            if not _same(have.get(k), want.get(k))
        ]
    return [
        QueueFinding(
            alert_id,
            expected.seqs[column],
            f"{column} is {_short(have)}, the chain says {_short(want)}",
        )
    ]


def compare_alert(
    alert_id: int,
    row: AlertRow | None,
    events: Sequence[EventRow],
    entries: Sequence[AuditEntry],
) -> list[QueueFinding]:
    """One alert's row and events against its entries (oldest first). Pure.

    Returns
    -------
    list of QueueFinding
        Empty when the row holds what the chain replays to and every event is one of the
        entries.
    """
    findings: list[QueueFinding] = []
    if not entries:
        if row is not None:
            findings.append(
                QueueFinding(
                    alert_id,
                    None,
                    "the alert is in the queue but the chain never recorded it (added outside"
                    " Farsight)",
                )
            )
        findings.extend(
            QueueFinding(alert_id, None, f"{_describe(ev)} has no audit entry") for ev in events
        )
        return findings
    if row is None:
        first = entries[0]
        findings.append(
            QueueFinding(
                alert_id,
                first.seq,
                f"the chain records the alert ({first.action} by {first.actor!r}) but it is not"
                " in the queue (deleted)",
            )
        )
        if not events:
            return findings  # its events went with it: one finding says it
    else:
        expected = replay(entries)
        for column, value in expected.values.items():
            findings.extend(
                _column_findings(alert_id, column, row.values.get(column), value, expected)
            )
    findings.extend(compare_events(alert_id, events, entries))
    return findings


def check_alerts(
    ids: Iterable[int],
    rows: Mapping[int, AlertRow],
    events: Mapping[int, Sequence[EventRow]],
    entries: Mapping[int, Sequence[AuditEntry]],
) -> list[QueueFinding]:
    """:func:`compare_alert` for each of ``ids`` (a batch the caller read together)."""
    out: list[QueueFinding] = []
    for aid in sorted(set(ids)):
        out.extend(compare_alert(aid, rows.get(aid), events.get(aid, ()), entries.get(aid, ())))
    return out


def alert_subject(alert_id: int) -> str:
    """The audit subject of an alert's entries."""
    return f"alert:{alert_id}"


def subject_alert(subject: str) -> int | None:
    """The alert id of an ``alert:N`` subject, else ``None``."""
    head, _, rest = subject.partition(":")
    if head != "alert" or not (rest.isascii() and rest.isdigit()) or len(rest) > 18:
        return None
    return int(rest)


__all__ = [
    "AFTER",
    "EVENT_ID",
    "IDENTITY",
    "RESERVED",
    "STATE",
    "AlertRow",
    "EventRow",
    "Expected",
    "QueueFinding",
    "after_snapshot",
    "alert_subject",
    "check_alerts",
    "compare_alert",
    "compare_events",
    "replay",
    "subject_alert",
]
