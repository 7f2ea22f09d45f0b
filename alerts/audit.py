"""The audit log: every change to the risk queue, hash-chained and append-only (全程留痕).

Each entry's hash covers the previous entry's hash and the entry itself, so editing, deleting,
reordering or inserting any entry breaks every link after it (a hash chain, the linear case of
the hash trees of RFC 6962 section 2.1). A chain alone cannot reveal a rewrite of its whole tail
by someone who recomputes the hashes, so the head is exported as a small *anchor* file that is
signed and kept outside the database; :meth:`~alerts.audit_store.SqlAuditLog.verify` checks
a chain against it.

Layout: this module holds the hashing, the entries, the anchors and the chain walk, pure
functions over values, and the :class:`AuditLog` protocol the stores write through;
:mod:`alerts.audit_store` holds all SQL (:class:`~alerts.audit_store.SqlAuditLog`, SQLite and
PostgreSQL). The table and the triggers that refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL) come with the hub schema (``farsight/migrations``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from farsight.db import Connection
from farsight.errors import AuditError

log = logging.getLogger("farsight.alerts.audit")

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry: no predecessor."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


# -- pure part: canonical form and hashing ---------------------------------------------------


def canonical_json(entry: Mapping[str, Any]) -> bytes:
    """Serialise a JSON object to its canonical bytes, the input of :func:`entry_hash`.

    The form follows RFC 8785 (JSON Canonicalization Scheme) where it matters for hashing:
    object keys sorted by their UTF-16 code units, no insignificant whitespace, strings as
    UTF-8 with only ``"``, ``\\`` and control characters escaped (``ensure_ascii=False``).

    Parameters
    ----------
    entry : Mapping
        A JSON object: string keys; values ``None``, ``bool``, ``int``, finite ``float``,
        ``str``, sequences (``list``/``tuple``) and mappings of these, nested to any depth.

    Returns
    -------
    bytes
        UTF-8. Equal inputs give equal bytes whatever the insertion order of their keys, and
        ``canonical_json(json.loads(canonical_json(x))) == canonical_json(x)``, which is what
        lets :func:`verify_chain` recompute hashes from stored text.

    Raises
    ------
    TypeError
        A key is not a string, or a value is not one of the types above (``Decimal``,
        ``datetime``, numpy scalars: convert them first).
    ValueError
        A float is NaN or infinite, a string holds a lone surrogate (not encodable as UTF-8),
        or a container refers to itself.

    Notes
    -----
    Floats are written as Python's ``json`` writes them (``float.__repr__``), not as
    RFC 8785's ECMAScript number form (``1e+16`` here, ``10000000000000000`` there), and
    integers above 2**53 are kept exactly where JavaScript would round them. For hashes that
    another language must reproduce, give numbers as ints within +-2**53 or as decimal strings
    (``"35.20"``), which also keeps the unit's precision a reading was reported with.
    """
    if not isinstance(entry, Mapping):
        raise TypeError(f"an audit entry must be a mapping, not {type(entry).__name__}")
    if _plain(entry, 0):
        # Fast path, same bytes: for plain values with keys below U+D800 (where code-point order
        # is UTF-16 order) the standard encoder sorts and writes exactly as _encode does.
        try:
            text = json.dumps(
                entry, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            )
        except ValueError:
            pass  # NaN or infinity: _encode raises with the reason
        else:
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"string is not valid Unicode (lone surrogate at {exc.start})"
                ) from None
    out: list[str] = []
    _encode(entry, out, set())
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"string is not valid Unicode (lone surrogate at {exc.start})") from None


_PLAIN_SCALARS = (str, int, float, bool, type(None))
_PLAIN_DEPTH = 64


def _plain(value: Any, depth: int) -> bool:
    """Only exact dicts, lists, tuples and JSON scalars, string keys below U+D800, not deep
    (a deep or cyclic value takes the careful path)."""
    t = type(value)
    if t is dict:
        if depth > _PLAIN_DEPTH:
            return False
        for k, v in value.items():
            if (
                type(k) is not str
                or not (k.isascii() or max(k) < "\ud800")
                or not _plain(v, depth + 1)
            ):
                return False
        return True
    if t is list or t is tuple:
        return depth <= _PLAIN_DEPTH and all(_plain(v, depth + 1) for v in value)
    return t in _PLAIN_SCALARS


def _encode(value: Any, out: list[str], stack: set[int]) -> None:
    # bool before int: True is an int in Python but ``true`` in JSON.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))  # IntEnum and friends as their number, like json does
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        out.append(float.__repr__(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        _enter(value, stack)
        keys = list(value)
        for k in keys:
            if not isinstance(k, str):
                # json.dumps would turn 1 into "1", making {1: x} and {"1": x} hash alike.
                raise TypeError(f"object keys must be strings, got {type(k).__name__} {k!r}")
        out.append("{")
        for i, k in enumerate(sorted(keys, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _encode(value[k], out, stack)
        out.append("}")
        stack.discard(id(value))
    elif isinstance(value, (list, tuple)):
        _enter(value, stack)
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, stack)
        out.append("]")
        stack.discard(id(value))
    else:
        raise TypeError(
            f"{type(value).__name__} is not JSON; give numbers as int, float or a decimal string"
        )


def _enter(container: object, stack: set[int]) -> None:
    if id(container) in stack:
        raise ValueError("circular reference in audit data")
    stack.add(id(container))


def _utf16_key(key: str) -> bytes:
    # RFC 8785 section 3.2.3 sorts by UTF-16 code units; big-endian bytes compare the same way.
    # It differs from Python's code-point order only for astral characters against U+E000-U+FFFF.
    try:
        return key.encode("utf-16-be")
    except UnicodeEncodeError:
        raise ValueError(f"object key {key!r} is not valid Unicode (lone surrogate)") from None


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """Hash one link of the chain.

    Parameters
    ----------
    prev_hash : str
        The previous entry's hash, 64 lower-case hex digits (:data:`GENESIS` for the first).
    entry : Mapping
        The hashed fields of the entry (see :func:`hashed_fields`).

    Returns
    -------
    str
        ``SHA-256(prev_hash as ASCII || "\\n" || canonical_json(entry))`` as 64 lower-case hex
        digits. The separator cannot occur in a hex digest, so the split between the two parts
        is unambiguous.

    Raises
    ------
    ValueError
        ``prev_hash`` is not 64 lower-case hex digits, or ``entry`` cannot be canonicalised.
    TypeError
        ``entry`` holds a value that is not JSON.
    """
    if not isinstance(prev_hash, str) or not _HEX64.match(prev_hash):
        raise ValueError(f"prev_hash must be 64 lower-case hex digits, got {prev_hash!r}")
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(b"\n")
    h.update(canonical_json(entry))
    return h.hexdigest()


def format_at(at: datetime) -> str:
    """UTC time as hashed: ``2026-11-25T08:00:00.123Z`` (milliseconds, the storage unit)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()} has no timezone")
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{at.microsecond // 1000:03d}Z"


def at_to_ms(at: datetime) -> int:
    """UTC-aware datetime to epoch milliseconds, truncated, in exact integer arithmetic."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()} has no timezone")
    return (at - _EPOCH) // _MS


def ms_to_at(ms: int) -> datetime:
    """Epoch milliseconds to a UTC datetime, exactly (no float on the way)."""
    return _EPOCH + timedelta(milliseconds=ms)


def hashed_fields(
    seq: int, at: datetime, actor: str, action: str, subject: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    """The fields an entry's hash covers, in the form they are hashed."""
    return {
        "seq": seq,
        "at": format_at(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data,
    }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the chain: who did what to which subject, when, and its place in the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError(f"seq starts at 1, got {self.seq}")
        if self.at.tzinfo is None:
            raise ValueError("at must be timezone-aware (UTC)")

    def hashed(self) -> dict[str, Any]:
        """The fields this entry's hash covers."""
        return hashed_fields(self.seq, self.at, self.actor, self.action, self.subject, self.data)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the hashed fields plus both hashes)."""
        return {**self.hashed(), "prev_hash": self.prev_hash, "hash": self.hash}


def make_entry(
    prev_seq: int,
    prev_hash: str,
    actor: str,
    action: str,
    subject: str,
    data: Mapping[str, Any] | None,
    at: datetime,
) -> AuditEntry:
    """Build the entry that follows ``(prev_seq, prev_hash)``; validates every argument.

    ``at`` is cut to milliseconds and ``data`` normalised through its canonical JSON, so the
    returned entry is exactly what a reader of the stored row will rebuild and re-hash.
    """
    for name, v in (("actor", actor), ("action", action), ("subject", subject)):
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{name} must be a non-empty string, got {v!r}")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a mapping, not {type(data).__name__}")
    at = ms_to_at(at_to_ms(at))
    norm = json.loads(canonical_json(data))
    seq = prev_seq + 1
    h = entry_hash(prev_hash, hashed_fields(seq, at, actor, action, subject, norm))
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=norm,
        prev_hash=prev_hash,
        hash=h,
    )


# -- pure part: walking a chain --------------------------------------------------------------


ANCHOR_KIND = "audit.anchor"
"""``kind`` of the upstream message that carries an anchor (:func:`upstream_message`)."""

SIGNATURE_ALG = "Ed25519"


@dataclass(frozen=True, slots=True)
class Anchor:
    """The chain's head at a moment, kept outside the database: ``entries`` rows up to ``seq``.

    ``source`` names the installation (``alerts.upstream.source``) in anchors made on a
    schedule; ``key_id`` and ``signature`` (base64) are the Ed25519 signature over
    :meth:`signed_bytes` (:mod:`alerts.anchor_sign`), empty on an unsigned anchor.
    """

    seq: int
    hash: str
    at: datetime
    entries: int
    source: str = ""
    key_id: str = ""
    signature: str = ""

    def __post_init__(self) -> None:
        if self.seq < 0 or self.entries < 0:
            raise ValueError("anchor seq and entries must not be negative")
        if not _HEX64.match(self.hash):
            raise ValueError(f"anchor hash must be 64 lower-case hex digits, got {self.hash!r}")
        if self.at.tzinfo is None:
            raise ValueError("anchor at must be timezone-aware")

    @property
    def signed(self) -> bool:
        return bool(self.signature)

    def fields(self) -> dict[str, Any]:
        """What the signature covers (every field but the signature)."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "hash": self.hash,
            "at": format_at(self.at),
            "entries": self.entries,
        }
        if self.source:
            out["source"] = self.source
        return out

    def signed_bytes(self) -> bytes:
        """The bytes an anchor's signature is made over: a fixed prefix (so the key signs
        nothing else by mistake) and the canonical JSON of :meth:`fields`."""
        return b"farsight-audit-anchor-v1\n" + canonical_json(self.fields())

    def to_json(self) -> dict[str, Any]:
        out = self.fields()
        if self.signature:
            out["signature"] = {
                "alg": SIGNATURE_ALG,
                "key_id": self.key_id,
                "value": self.signature,
            }
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Anchor:
        """Parse an anchor object, or the upstream message that carries one (an anchor as it
        came back from the provincial hub); raises AuditError naming what is wrong."""
        try:
            if not isinstance(obj, Mapping):
                raise ValueError("not a JSON object")
            if obj.get("kind") == ANCHOR_KIND and "anchor" in obj:
                obj = obj["anchor"]
                if not isinstance(obj, Mapping):
                    raise ValueError("the message's anchor is not a JSON object")
            seq, h, at, n = obj["seq"], obj["hash"], obj["at"], obj["entries"]
            if (
                type(seq) is not int
                or type(n) is not int
                or not isinstance(h, str)
                or not isinstance(at, str)
            ):
                raise ValueError("seq and entries must be integers, hash and at strings")
            source = obj.get("source", "")
            if not isinstance(source, str):
                raise ValueError("source must be a string")
            key_id = signature = ""
            sig = obj.get("signature")
            if sig is not None:
                if (
                    not isinstance(sig, Mapping)
                    or sig.get("alg") != SIGNATURE_ALG
                    or not isinstance(sig.get("key_id"), str)
                    or not isinstance(sig.get("value"), str)
                    or not sig["value"]
                ):
                    raise ValueError(
                        f"signature must be an object with alg {SIGNATURE_ALG!r}, key_id and value"
                    )
                key_id, signature = sig["key_id"], sig["value"]
            when = datetime.fromisoformat(at)
            return cls(
                seq=seq,
                hash=h,
                at=when,
                entries=n,
                source=source,
                key_id=key_id,
                signature=signature,
            )
        except (KeyError, ValueError) as exc:
            raise AuditError(f"invalid anchor: {exc}") from None


def upstream_message(anchor: Anchor) -> dict[str, Any]:
    """The message that sends ``anchor`` to the provincial hub through the outbox, so that a copy
    is kept where the operator cannot reach it (``alerts/schemas/upstream-anchor.schema.json``);
    ``farsight audit verify --anchor`` reads it back as it is."""
    return {
        "schema_version": 1,
        "kind": ANCHOR_KIND,
        "source": anchor.source,
        "anchor": anchor.to_json(),
    }


def write_anchor(path: Path | str, anchor: Anchor) -> None:
    """Write ``anchor`` as JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    text = json.dumps(anchor.to_json(), ensure_ascii=False, indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AuditError(f"cannot write anchor {path}: {exc.strerror or exc}") from None


def read_anchor(path: Path | str) -> Anchor:
    """Read an anchor file written by :func:`write_anchor`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"cannot read anchor {path}: {exc.strerror or exc}") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise AuditError(f"anchor {path} is not JSON: {exc}") from None
    return Anchor.from_json(obj)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a chain walk.

    ``entries`` and ``head`` describe the verified prefix: all rows when ``ok``, else the rows
    before ``first_bad_seq``. ``reason`` is empty when ``ok``.
    """

    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    reason: str = ""

    def summary(self) -> str:
        """One line for people and logs."""
        if self.ok:
            return f"audit chain ok: {self.entries} entries, head {self.head}"
        return f"audit chain broken at seq {self.first_bad_seq}: {self.reason}"


StoredRow = tuple[Any, Any, Any, Any, Any, Any, Any, Any]
"""A row as stored: ``(seq, at_ms, actor, action, subject, data_text, prev_hash, hash)``."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def verify_chain(
    rows: Iterable[StoredRow],
    anchor: Anchor | None = None,
    *,
    after: tuple[int, str] = (0, GENESIS),
) -> VerifyResult:
    """Walk stored rows in ``seq`` order and report the first broken link.

    Per row, in this order: ``seq`` follows the previous one (a gap means deleted rows);
    ``prev_hash`` equals the previous row's hash (deleted, reordered or inserted rows); the row
    is well formed and its ``data`` text is in canonical form; the recomputed hash equals the
    stored one (an edited row). With ``anchor``, the row at ``anchor.seq`` must carry
    ``anchor.hash`` and the chain must reach it (a truncated tail, or a tail rewritten with
    recomputed hashes, is invisible to the links alone).

    ``after`` continues a walk already made up to ``(seq, hash)``: ``rows`` start at the next
    seq, and the result's ``entries`` counts the whole prefix (the scheduled anchors verify
    only what was appended since the last one).
    """
    prev_seq, prev_hash = after
    n = prev_seq
    anchor_seen = anchor is None or anchor.seq <= prev_seq

    def broken(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(ok=False, entries=n, head=prev_hash, first_bad_seq=seq, reason=reason)

    if anchor is not None and anchor.seq == 0 and anchor.hash != GENESIS:
        return broken(1, f"anchor at seq 0 must carry the genesis hash, got {anchor.hash}")
    for row in rows:
        seq, at_ms, actor, action, subject, data_text, row_prev, row_hash = row
        if type(seq) is not int:
            return broken(prev_seq + 1, f"row after seq {prev_seq} has a non-integer seq {seq!r}")
        if seq != prev_seq + 1:
            if seq <= prev_seq:
                return broken(seq, f"seq out of order: {seq} after {prev_seq}")
            missing = (
                f"seq {prev_seq + 1}" if seq == prev_seq + 2 else f"seqs {prev_seq + 1}-{seq - 1}"
            )
            return broken(seq, f"seq gap: {missing} missing before seq {seq} (deleted entries)")
        if row_prev != prev_hash:
            return broken(
                seq,
                f"prev_hash {row_prev} does not match the hash of seq {prev_seq} ({prev_hash}): "
                "an entry was deleted, inserted or moved",
            )
        try:
            if type(at_ms) is not int:
                raise ValueError(f"at is {at_ms!r}, not integer milliseconds")
            for name, v in (
                ("actor", actor),
                ("action", action),
                ("subject", subject),
                ("data", data_text),
            ):
                if not isinstance(v, str):
                    raise ValueError(f"{name} is {type(v).__name__}, not text")
            data = json.loads(data_text, parse_constant=_reject_constant)
            if not isinstance(data, dict):
                raise ValueError("data is not a JSON object")
            if canonical_json(data).decode("utf-8") != data_text:
                raise ValueError("data text is not in canonical form (rewritten outside Farsight)")
            expected = entry_hash(
                prev_hash, hashed_fields(seq, ms_to_at(at_ms), actor, action, subject, data)
            )
        except (ValueError, TypeError, OverflowError) as exc:
            return broken(seq, f"malformed row: {exc}")
        if row_hash != expected:
            return broken(
                seq, f"hash mismatch: stored {row_hash}, computed {expected} (entry edited)"
            )
        if anchor is not None and seq == anchor.seq:
            if row_hash != anchor.hash:
                return broken(
                    seq,
                    f"anchor mismatch: anchor has hash {anchor.hash} for seq {seq}, chain has"
                    f" {row_hash} "
                    "(history rewritten since the anchor)",
                )
            anchor_seen = True
        n += 1
        prev_seq, prev_hash = seq, row_hash
    if not anchor_seen:
        assert anchor is not None
        return broken(
            prev_seq + 1,
            f"chain ends at seq {prev_seq} but the anchor of {format_at(anchor.at)} records "
            f"seq {anchor.seq} (hash {anchor.hash}): entries were removed from the tail",
        )
    return VerifyResult(ok=True, entries=n, head=prev_hash)


# -- the backend protocol and the SQLite backend ---------------------------------------------


class AuditLog(Protocol):
    """What the alert store and the hub need from an audit log, whatever the database."""

    def append_in(
        self,
        conn: Connection,
        actor: str,
        action: str,
        subject: str,
        data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry: ...

    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry: ...

    def verify(self, anchor: Anchor | Path | str | None = None) -> VerifyResult: ...

    def head(self) -> tuple[int, str]: ...

    def entries(
        self, subject: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]: ...

    def export_anchor(self, path: Path | str, at: datetime | None = None) -> Anchor: ...
