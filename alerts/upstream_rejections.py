"""Records the provincial hub refused with quality errors: kept, shown, corrected, pushed again.

The receiver answers a record it will not take for its content with HTTP 422 and a body
``{"errors": [{"field": "/alert/item_code", "message": "...", "code": "..."}]}`` (documented by
``alerts/schemas/upstream-rejection.schema.json``; ``field`` is a JSON Pointer, RFC 6901, into the
record as sent, ``""`` for the record as a whole). Such an answer is not retried blindly: the
outbox row is set aside (``dead``; ``farsight outbox redrive`` skips it while its rejection is
open) and an ``upstream_rejections`` row keeps the record as sent and the errors
(:func:`record_rejection`, in the sender's transaction).

A supervisor of the alert's department corrects it (:func:`correct`): the corrected fields
replace values of the record, the rejection keeps the original and the correction, the outbox
row gets the corrected record and goes back to pending (same Idempotency-Key: the receiver kept
nothing under it), and the audit chain records who changed which field from what to what, in the
same transaction.

A correction fixes the report, not the alert: the local alert row is evidence of what the rules
saw and is never rewritten by the provincial hub's opinion of it. Every record of the alert
carries a snapshot of that row, so each ``/alert/...`` change also stands for the alert's other
records (``upstream_corrections``, :class:`StandingCorrection`): the records already queued
behind the rejected one are changed in the correction's transaction, and every record the outbox
builds later gets them as it is built (:func:`with_standing_corrections`), so one correction is
made once. A standing correction replaces a value only where the record still holds the value
the hub refused (:func:`overlay`): an alert whose own value moved on (a refire with a new
reading, a registry that now knows the operator's credit code) reports its new value.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerts.audit import AuditLog
from farsight.clock import from_epoch_ms, to_epoch_ms
from farsight.db import Connection, Database
from farsight.errors import AlertError, NotFoundError

MAX_ERRORS = 100
"""Most errors kept of one answer (a receiver listing thousands is cut)."""

FIELD_CHARS = 200
MESSAGE_CHARS = 500

IMMUTABLE = ("/schema_version", "/source", "/event/id", "/event/key", "/alert/id")
"""Pointers a correction may not touch (nor anything below them): the record's identity."""

MAX_FIELDS = 50
"""Most fields one correction changes."""


class CorrectionError(AlertError, ValueError):
    """A correction that cannot be applied (a bad pointer, an identity field, a wrong type)."""


class RejectionStateError(AlertError):
    """The rejection was corrected already, or its outbox row is no longer set aside."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One quality error of a rejected record."""

    field: str
    message: str
    code: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.code is not None:
            doc["code"] = self.code
        return doc


def parse_rejection(status: int, body: bytes) -> tuple[FieldError, ...] | None:
    """The quality errors of an answer, or None when it is not a rejection of this shape.

    Pure. Only a 422 whose body is ``{"errors": [...]}`` with at least one ``{field, message}``
    object is a rejection; any other refusal stays an ordinary dead letter of the outbox.
    """
    if status != 422:
        return None
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    items = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return None
    out: list[FieldError] = []
    for item in items[:MAX_ERRORS]:
        if not isinstance(item, dict):
            continue
        field, message, code = item.get("field"), item.get("message"), item.get("code")
        if not isinstance(field, str) or not isinstance(message, str):
            continue
        out.append(
            FieldError(
                field[:FIELD_CHARS],
                message[:MESSAGE_CHARS],
                code[:FIELD_CHARS] if isinstance(code, str) else None,
            )
        )
    return tuple(out) or None


def describe(errors: tuple[FieldError, ...]) -> str:
    """One line for the outbox row's ``last_error``."""
    return "rejected by upstream: " + "; ".join(f"{e.field or '/'}: {e.message}" for e in errors)


# -- JSON Pointer (RFC 6901) -----------------------------------------------------------------------


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise CorrectionError(f"field {pointer!r}: a JSON Pointer starts with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _parent(doc: Any, pointer: str) -> tuple[Any, str | int]:
    """The container holding ``pointer``'s target, and the key or index in it."""
    tokens = _tokens(pointer)
    if not tokens:
        raise CorrectionError("field '': the record as a whole cannot be replaced")
    node = doc
    for depth, token in enumerate(tokens):
        last = depth == len(tokens) - 1
        where = "/" + "/".join(tokens[: depth + 1])
        if isinstance(node, dict):
            if token not in node:
                raise CorrectionError(f"field {pointer!r}: the record has no {where}")
            if last:
                return node, token
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                raise CorrectionError(f"field {pointer!r}: no item {where}")
            if last:
                return node, int(token)
            node = node[int(token)]
        else:
            raise CorrectionError(f"field {pointer!r}: {where} is inside a value, not an object")
    raise AssertionError("unreachable")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise CorrectionError(f"value {value!r} is not JSON")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def apply_correction(
    payload: Mapping[str, Any], fields: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The record with ``fields`` (JSON Pointer -> new value) replaced, and what changed.

    Pure. Only existing values are replaced; identity fields (:data:`IMMUTABLE`) are refused; a
    value that was not null keeps its JSON type (or becomes null).

    Raises
    ------
    CorrectionError
        Naming the field and why.
    """
    if not fields:
        raise CorrectionError("fields: name at least one field to correct")
    if len(fields) > MAX_FIELDS:
        raise CorrectionError(f"fields: at most {MAX_FIELDS} per correction, got {len(fields)}")
    doc = copy.deepcopy(dict(payload))
    changes: dict[str, dict[str, Any]] = {}
    for pointer, value in fields.items():
        for fixed in IMMUTABLE:
            if pointer == fixed or pointer.startswith(fixed + "/"):
                raise CorrectionError(f"field {pointer!r} identifies the record: not corrected")
        if not _finite(value):
            # json.loads takes NaN and Infinity; the record sent must stay JSON (RFC 8259).
            raise CorrectionError(f"field {pointer!r}: NaN and infinities are not JSON")
        parent, key = _parent(doc, pointer)
        old = parent[key]
        old_type, new_type = _json_type(old), _json_type(value)
        if old is not None and value is not None and old_type != new_type:
            raise CorrectionError(f"field {pointer!r}: was a {old_type}, got a {new_type}")
        parent[key] = value
        if old != value:
            changes[pointer] = {"from": old, "to": value}
    if not changes:
        raise CorrectionError("fields: every value given is the one the record has already")
    return doc, changes


@dataclass(frozen=True, slots=True)
class StandingCorrection:
    """One corrected ``/alert/...`` field that stands for the alert's later records."""

    pointer: str
    from_value: Any
    to_value: Any


def _same(a: Any, b: Any) -> bool:
    # JSON equality: 1 and true are different values (Python's == says they are equal).
    return _json_type(a) == _json_type(b) and a == b


def standing(changes: Mapping[str, Mapping[str, Any]]) -> list[StandingCorrection]:
    """The changes of one correction that stand for the alert's other records: those under
    ``/alert/`` (event fields belong to the one event corrected). Pure."""
    return [
        StandingCorrection(pointer, change["from"], change["to"])
        for pointer, change in changes.items()
        if pointer.startswith("/alert/")
    ]


def overlay(
    payload: Mapping[str, Any], corrections: Sequence[StandingCorrection]
) -> dict[str, Any] | None:
    """``payload`` with ``corrections`` applied in order where it still holds the refused value;
    None when none applies. Pure.

    In order, so corrections of corrections chain (5000 -> 500, then 500 -> 50 gives 50).
    """
    doc = copy.deepcopy(dict(payload))
    changed = False
    for c in corrections:
        try:
            parent, key = _parent(doc, c.pointer)
        except CorrectionError:
            continue  # a record without that field (an older schema): nothing to correct
        if _same(parent[key], c.from_value):
            parent[key] = copy.deepcopy(c.to_value)
            changed = True
    return doc if changed else None


def carry_forward(
    payload: Mapping[str, Any], changes: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """A later record of the same alert with the correction's ``/alert/...`` changes applied
    where it still holds the corrected value; None when nothing applies. Pure."""
    return overlay(payload, standing(changes))


def standing_corrections(conn: Connection, alert_id: int) -> list[StandingCorrection]:
    """The alert's standing corrections, oldest first, read on the caller's connection."""
    rows = conn.execute(
        "SELECT pointer, from_value, to_value FROM upstream_corrections WHERE alert_id = ?"
        " ORDER BY id",
        (alert_id,),
    ).fetchall()
    return [StandingCorrection(r[0], json.loads(r[1]), json.loads(r[2])) for r in rows]


def with_standing_corrections(
    conn: Connection, alert_id: int, payload: dict[str, Any]
) -> dict[str, Any]:
    """``payload`` (a record of ``alert_id`` being built) with the alert's standing corrections
    applied; itself when it has none. In the caller's transaction, which holds the alert's row
    lock on PostgreSQL, as :func:`correct` takes it: a record is built either before a
    correction commits (and then carried forward by it) or after (and then sees it)."""
    corrections = standing_corrections(conn, alert_id)
    if not corrections:
        return payload
    return overlay(payload, corrections) or payload


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(doc: Any) -> str:
    # The outbox's canonical form (alerts.outbox.canonical_json), without importing the outbox.
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """One ``upstream_rejections`` row."""

    id: int
    outbox_id: int
    key: str
    alert_id: int
    department: str | None
    rejected_at: datetime
    payload: str
    errors: tuple[FieldError, ...]
    status: str
    corrected_at: datetime | None = None
    corrected_by: str | None = None
    correction: dict[str, Any] | None = None
    corrected_payload: str | None = None
    outbox_status: str | None = None
    """The outbox row's status now: ``dead`` (set aside), ``pending`` or ``sent`` after the
    correction was pushed again."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "alert_id": self.alert_id,
            "department": self.department,
            "rejected_at": self.rejected_at.isoformat(),
            "errors": [e.to_json() for e in self.errors],
            "status": self.status,
            "record": json.loads(self.payload),
            "corrected_at": None if self.corrected_at is None else self.corrected_at.isoformat(),
            "corrected_by": self.corrected_by,
            "correction": self.correction,
            "corrected_record": None
            if self.corrected_payload is None
            else json.loads(self.corrected_payload),
            "delivery": self.outbox_status,
        }


_SELECT = (
    "SELECT r.*, o.status AS outbox_status FROM upstream_rejections r"
    " LEFT JOIN outbox o ON o.id = r.outbox_id"
)


def _rejection(r: Any) -> Rejection:
    row = dict(zip(r.keys(), r, strict=True))
    errors = tuple(
        FieldError(e["field"], e["message"], e.get("code")) for e in json.loads(row["errors"])
    )
    return Rejection(
        id=int(row["id"]),
        outbox_id=int(row["outbox_id"]),
        key=row["key"],
        alert_id=int(row["alert_id"]),
        department=row["department"],
        rejected_at=from_epoch_ms(row["rejected_at"]),
        payload=row["payload"],
        errors=errors,
        status=row["status"],
        corrected_at=None if row["corrected_at"] is None else from_epoch_ms(row["corrected_at"]),
        corrected_by=row["corrected_by"],
        correction=None if row["correction"] is None else json.loads(row["correction"]),
        corrected_payload=row["corrected_payload"],
        outbox_status=row.get("outbox_status"),
    )


def record_rejection(
    conn: Connection,
    outbox_id: int,
    key: str,
    alert_id: int,
    payload: str,
    errors: tuple[FieldError, ...],
    now_ms: int,
) -> None:
    """Keep a rejected record and its errors, inside the caller's transaction."""
    try:
        alert = json.loads(payload).get("alert") or {}
        department = alert.get("department") if isinstance(alert, dict) else None
    except (ValueError, AttributeError):
        department = None
    conn.execute(
        "INSERT INTO upstream_rejections (outbox_id, key, alert_id, department, rejected_at,"
        " payload, errors, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
        (
            outbox_id,
            key,
            alert_id,
            department if isinstance(department, str) else None,
            now_ms,
            payload,
            json.dumps([e.to_json() for e in errors], ensure_ascii=False),
        ),
    )


def list_rejections(
    db: Database, department: str | None, status: str | None = None, limit: int = 100
) -> list[Rejection]:
    """Rejections, newest first; of one department (``None``: every department's)."""
    where: list[str] = []
    params: list[Any] = []
    if department is not None:
        where.append("r.department = ?")
        params.append(department)
    if status is not None:
        where.append("r.status = ?")
        params.append(status)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    rows = db.query(sql + " ORDER BY r.id DESC LIMIT ?", (*params, limit))
    return [_rejection(r) for r in rows]


def get_rejection(db: Database, rejection_id: int) -> Rejection:
    rows = db.query(_SELECT + " WHERE r.id = ?", (rejection_id,))
    if not rows:
        raise NotFoundError(f"no upstream rejection {rejection_id}")
    return _rejection(rows[0])


def correct(
    db: Database,
    audit: AuditLog,
    rejection_id: int,
    fields: Mapping[str, Any],
    note: str,
    actor: str,
    now: datetime,
) -> Rejection:
    """Correct a rejected record and queue it again; one transaction with its audit entry.

    Raises
    ------
    NotFoundError
        No such rejection.
    RejectionStateError
        Corrected already, or the outbox row is no longer set aside.
    CorrectionError
        The fields cannot be applied.
    """
    with db.transaction() as c:
        rows = c.execute(_SELECT + " WHERE r.id = ?", (rejection_id,)).fetchall()
        if not rows:
            raise NotFoundError(f"no upstream rejection {rejection_id}")
        rej = _rejection(rows[0])
        if rej.status != "open":
            raise RejectionStateError(
                f"rejection {rejection_id} was corrected by {rej.corrected_by} already"
            )
        if rej.outbox_status != "dead":
            raise RejectionStateError(
                f"rejection {rejection_id}: its record is {rej.outbox_status or 'gone'} in the"
                " outbox, not set aside"
            )
        if rej.alert_id == 0:
            raise CorrectionError("an audit anchor is signed: it cannot be corrected")
        corrected, changes = apply_correction(json.loads(rej.payload), fields)
        text = _canonical(corrected)
        now_ms = to_epoch_ms(now)
        if db.dialect == "postgres":
            # The outbox's listener builds a record under this lock: none is built unseen by
            # the carry-forward below while the standing corrections are not yet committed.
            c.execute("SELECT id FROM alerts WHERE id = ? FOR UPDATE", (rej.alert_id,))
        stands = standing(changes)
        for sc in stands:
            c.execute(
                "INSERT INTO upstream_corrections (alert_id, pointer, from_value, to_value,"
                " rejection_id, corrected_by, corrected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rej.alert_id,
                    sc.pointer,
                    _canonical(sc.from_value),
                    _canonical(sc.to_value),
                    rejection_id,
                    actor,
                    now_ms,
                ),
            )
        correction = {"fields": dict(fields), "note": note}
        c.execute(
            "UPDATE upstream_rejections SET status = 'corrected', corrected_at = ?,"
            " corrected_by = ?, correction = ?, corrected_payload = ? WHERE id = ?",
            (now_ms, actor, json.dumps(correction, ensure_ascii=False), text, rejection_id),
        )
        # Same key: the receiver kept nothing under it, and its dedup stays one record per event.
        c.execute(
            "UPDATE outbox SET payload = ?, status = 'pending', attempts = 0, next_at = 0,"
            " claimed_by = NULL, claimed_until = NULL"
            " WHERE id = ? AND status = 'dead'",
            (text, rej.outbox_id),
        )
        carried: list[int] = []
        later = c.execute(
            "SELECT id, payload FROM outbox WHERE alert_id = ? AND id > ? AND status = 'pending'"
            " ORDER BY id",
            (rej.alert_id, rej.outbox_id),
        ).fetchall()
        for row in later:
            update = carry_forward(json.loads(row["payload"]), changes)
            if update is not None:
                c.execute(
                    "UPDATE outbox SET payload = ? WHERE id = ?", (_canonical(update), row["id"])
                )
                carried.append(int(row["id"]))
        audit.append_in(
            c,
            actor,
            "upstream.correct",
            f"upstream:{rej.key}",
            {
                "rejection": rejection_id,
                "alert": rej.alert_id,
                "errors": [e.to_json() for e in rej.errors],
                "changes": changes,
                "note": note,
                "original_sha256": _sha(rej.payload),
                "corrected_sha256": _sha(text),
                "carried_to_outbox_rows": carried,
                # Applied to every later record of the alert (upstream_corrections).
                "standing": [sc.pointer for sc in stands],
            },
        )
    return get_rejection(db, rejection_id)
