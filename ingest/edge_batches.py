"""Hub side of the edge gateway: verify store-and-forward batches and unpack them for ingest.

A batch on ``fs/v1/gw/{gateway}/batch`` (format in :mod:`edge.batch`) is checked in this order:
a key is on file for the gateway (``unknown_gateway``), the payload parses and its HMAC matches
(``bad_batch``, ``bad_hmac``: tampered, or signed with another key), the gateway it names is the
topic's (``gateway_mismatch``), its size is within bounds (``too_large``), and its sequence number
is above the last one accepted from that gateway (``replayed_batch``). A batch whose sequence
number was already accepted *with the same MAC* is the same batch delivered again (the broker
redelivers what the hub had not acknowledged): it is ignored, not dead-lettered. Every rejected
batch is dead-lettered whole with its reason.

A gateway speaks only for the sites the hub assigns to it (the registry's ``gateways`` section):
each message of an accepted batch on a device topic of any other site is dead-lettered on its own
(``foreign_site``), so a stolen gateway key cannot forge another site's data.

Accepted batches become the original messages, each an :class:`EdgeMessage` carrying the
gateway and its back-filled mark, and flow through the normal pipeline; the gateway's sequence
state is written in the same transaction as their readings, so a crash between the two cannot
turn a redelivered batch into a "replay".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farsight.clock import to_epoch_ms
from farsight.db import Database
from farsight.errors import ConfigError, ConfigProblem, DecodeError
from farsight.migrate import ensure_schema
from farsight.settings import EdgeHubSettings, read_yaml
from farsight.types import AlertSignal
from ingest.edge_health import GatewayMonitor, status_kind
from ingest.message import Message
from ingest.store import DeadLetter

log = logging.getLogger("farsight.ingest.edge")

BATCH_PREFIX = "fs/v1/gw/"


# -- the batch format (the gateway's side, signing, is edge/batch.py) ---------------------------


class BatchError(DecodeError):
    """Raised when a forwarded batch is malformed, forged, tampered with or replayed.

    ``reason`` names which.
    """


VERSION = 1
DOMAIN_TAG = b"farsight-edge-batch-v1\n"
"""Prefixed to the canonical bytes so a key used elsewhere cannot authenticate a batch."""
MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """One original message inside a batch."""

    topic: str
    payload: bytes
    ts_ms: int
    backfilled: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """A verified batch."""

    gateway: str
    seq: int
    sent_ms: int
    messages: tuple[BatchMessage, ...]
    loss: Mapping[str, int]
    mac: str


def canonical(doc: Mapping[str, Any]) -> bytes:
    """The bytes the MAC covers: sorted keys, compact separators, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sign(doc: Mapping[str, Any], key: bytes) -> str:
    """Hex HMAC-SHA256 of ``doc`` (without its ``mac``) under ``key``."""
    return hmac.new(key, DOMAIN_TAG + canonical(doc), hashlib.sha256).hexdigest()


def peek_gateway(payload: bytes) -> str | None:
    """The gateway a batch claims to come from, without verifying it (to pick the key)."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    g = doc.get("gateway") if isinstance(doc, dict) else None
    return g if isinstance(g, str) else None


def decode_batch(payload: bytes, key: bytes) -> Batch:
    """Parse and verify a batch.

    Raises :class:`BatchError` with reason ``bad_batch`` or ``bad_hmac``.
    """
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError("bad_batch", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BatchError("bad_batch", "a batch is a JSON object")
    mac = doc.pop("mac", None)
    if not isinstance(mac, str):
        raise BatchError("bad_hmac", "the batch carries no mac")
    # Verify before reading any field: nothing unauthenticated is interpreted.
    if not hmac.compare_digest(mac, sign(doc, key)):
        raise BatchError(
            "bad_hmac", "the MAC does not match the content: tampered, or signed with another key"
        )
    if doc.get("v") != VERSION:
        raise BatchError("bad_batch", f"version {doc.get('v')!r} is not {VERSION}")
    gateway, seq, sent = doc.get("gateway"), doc.get("seq"), doc.get("sent")
    if (
        not isinstance(gateway, str)
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 0
        or not isinstance(sent, int)
    ):
        raise BatchError(
            "bad_batch", "gateway, seq and sent must be a string and non-negative integers"
        )
    raw_msgs = doc.get("messages")
    if not isinstance(raw_msgs, list):
        raise BatchError("bad_batch", "messages must be a list")
    out: list[BatchMessage] = []
    for i, m in enumerate(raw_msgs):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("topic"), str)
            or not isinstance(m.get("ts"), int)
        ):
            raise BatchError("bad_batch", f"message {i} needs a topic and an integer ts")
        if isinstance(m.get("text"), str):
            body = m["text"].encode("utf-8")
        elif isinstance(m.get("b64"), str):
            try:
                body = base64.b64decode(m["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise BatchError("bad_batch", f"message {i}: b64 is not base64") from None
        else:
            raise BatchError("bad_batch", f"message {i} has neither text nor b64")
        out.append(BatchMessage(m["topic"], body, m["ts"], bool(m.get("backfilled", False))))
    loss = doc.get("loss") or {}
    if not isinstance(loss, dict) or not all(isinstance(v, int) for v in loss.values()):
        raise BatchError("bad_batch", "loss must map kinds to integers")
    return Batch(gateway, seq, sent, tuple(out), loss, mac)


def parse_key(text: str, where: str = "key") -> bytes:
    """A hex key of at least 16 bytes; anything else raises ``ValueError`` naming ``where``."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"{where} is not hex") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"{where} has {len(key)} bytes; use at least {MIN_KEY_BYTES} "
            "(e.g. `openssl rand -hex 32`)"
        )
    return key


@dataclass(frozen=True, slots=True)
class EdgeMessage(Message):
    """An original message unpacked from a gateway batch."""

    gateway: str = ""
    backfilled: bool = False


@dataclass(slots=True)
class Expansion:
    """What :meth:`EdgeBatchDecoder.expand` made of a list of messages."""

    messages: list[Message]
    dead: list[DeadLetter]
    accepted: list[tuple[Batch, int]] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    signals: list[AlertSignal] = field(default_factory=list)
    status_rows: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)


def batch_gateway(topic: str) -> str | None:
    """The gateway of a batch topic ``fs/v1/gw/{gateway}/batch``, else ``None``."""
    if not topic.startswith(BATCH_PREFIX) or not topic.endswith("/batch"):
        return None
    parts = topic.split("/")
    return parts[3] if len(parts) == 5 else None


def load_keys(path: Path) -> dict[str, bytes]:
    """Gateway keys from a YAML mapping ``{gateway_id: hex key}``.

    Problems raise :class:`ConfigError`.
    """
    raw = read_yaml(Path(path))
    if not isinstance(raw, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    "", type(raw).__name__, "the keys file must map gateway ids to hex keys"
                )
            ],
            source=str(path),
        )
    keys: dict[str, bytes] = {}
    problems: list[ConfigProblem] = []
    for gw, text in raw.items():
        try:
            keys[str(gw)] = parse_key(str(text), f"key of {gw}")
        except ValueError as exc:
            problems.append(ConfigProblem(str(gw), "<hidden>", str(exc)))
    if problems:
        raise ConfigError(problems, source=str(path))
    return keys


@dataclass(slots=True)
class Unpacked:
    """A dead-lettered batch verified again for replay
    (:meth:`EdgeBatchDecoder.unpack_for_replay`)."""

    batch: Batch
    applied: bool
    """The hub accepted this very batch (same gateway, sequence and MAC) before."""
    messages: list[Message] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(reason, detail) of each message the gateway may not forward."""


class EdgeBatchDecoder:
    """Verifies batches and records each gateway's sequence state; see the module docstring."""

    def __init__(
        self,
        db: Database | Path | str,
        keys: Mapping[str, bytes],
        settings: EdgeHubSettings | None = None,
        monitor: GatewayMonitor | None = None,
        assigned_sites: Callable[[str], frozenset[str]] | None = None,
    ) -> None:
        self.db = ensure_schema(Database.of(db))
        # The site ids each gateway may forward for; None: not checked (unit tests of batches).
        self.assigned_sites = assigned_sites
        self.keys = dict(keys)
        self.settings = settings or EdgeHubSettings()
        # Heartbeats and config acks (ingest/edge_health.py); None: batches only.
        self.monitor = monitor
        self.accepted_batches = 0
        self.duplicate_batches = 0
        self._commits = 0

    def _state(self, gateway: str) -> int:
        rows = self.db.query("SELECT last_seq FROM edge_gateways WHERE gateway = ?", (gateway,))
        return int(rows[0][0]) if rows else -1

    def _seen_mac(self, gateway: str, seq: int) -> str | None:
        rows = self.db.query(
            "SELECT mac FROM edge_batches WHERE gateway = ? AND seq = ?", (gateway, seq)
        )
        return rows[0][0] if rows else None

    def expand(self, messages: Sequence[Message]) -> Expansion:
        """Replace every batch message by the messages it carries (or a dead letter)."""
        out = Expansion([], [])
        last: dict[str, int] = {}
        seen: dict[tuple[str, int], str] = {}
        for msg in messages:
            gateway = batch_gateway(msg.topic)
            if gateway is None:
                monitor = self.monitor
                kind = status_kind(msg.topic) if monitor is not None else None
                if monitor is None or kind is None:
                    out.messages.append(msg)
                    continue
                signals, row, ack = monitor.observe(kind[0], kind[1], msg.payload)
                out.signals += signals
                if row is not None:
                    out.status_rows.append(row)
                if ack is not None:
                    out.acks.append(ack)
                continue
            try:
                batch = self._verify(msg, gateway, last, seen)
            except BatchError as exc:
                out.dead.append(
                    DeadLetter(
                        msg.topic,
                        msg.payload,
                        exc.reason,
                        exc.detail,
                        msg.received,
                        codec="edge-batch",
                    )
                )
                continue
            if batch is None:
                out.duplicates[gateway] = out.duplicates.get(gateway, 0) + 1
                continue
            last[gateway] = batch.seq
            seen[(gateway, batch.seq)] = batch.mac
            backfilled = 0
            for m in batch.messages:
                refusal = self._message_refusal(gateway, batch.seq, m.topic)
                if refusal is not None:
                    out.dead.append(
                        DeadLetter(m.topic, m.payload, *refusal, msg.received, codec="edge-batch")
                    )
                    continue
                backfilled += m.backfilled
                out.messages.append(
                    EdgeMessage(
                        m.topic, m.payload, msg.received, gateway=gateway, backfilled=m.backfilled
                    )
                )
            out.accepted.append((batch, backfilled))
        return out

    def unpack_for_replay(self, letter: Message) -> Unpacked:
        """Verify a dead-lettered batch as live batches are verified, bar the sequence, and
        unpack it (``farsight deadletters replay``).

        Checked with the current keys, settings and site assignment: a key on file for the
        topic's gateway, the MAC, the gateway the batch names, its size; each message on a
        gateway topic (``nested_batch``) or of a site not assigned to the gateway
        (``foreign_site``) is refused on its own. The sequence is not checked, since the batch
        was refused and never applied: later batches may have moved the gateway's sequence past
        it, which is no reason to refuse it now. What the MAC proves is that the gateway sent it;
        replaying it twice stores nothing twice (readings are keyed). Nothing here writes the
        gateway's sequence state, which stays the live path's.

        Raises
        ------
        BatchError
            ``unknown_gateway``, ``bad_batch``, ``bad_hmac`` (with a detail saying that a batch
            signed with a key since rotated cannot be told from a forged one and is not
            replayed), ``gateway_mismatch`` or ``too_large``.
        """
        gateway = batch_gateway(letter.topic)
        if gateway is None:
            raise BatchError("bad_batch", f"{letter.topic!r} is not a gateway batch topic")
        key = self.keys.get(gateway)
        if key is None:
            raise BatchError(
                "unknown_gateway", f"no key on file for gateway {gateway!r} (edge.keys_file)"
            )
        try:
            batch = decode_batch(letter.payload, key)
        except BatchError as exc:
            if exc.reason != "bad_hmac":
                raise
            raise BatchError(
                "bad_hmac",
                f"the MAC does not verify under gateway {gateway!r}'s current key: the batch was"
                " tampered with, or signed with a key since rotated. It cannot be authenticated,"
                " so it is not replayed (put the key it was signed with back on file to replay"
                " it).",
            ) from None
        if batch.gateway != gateway:
            raise BatchError(
                "gateway_mismatch", f"batch of {batch.gateway!r} on the topic of {gateway!r}"
            )
        if len(batch.messages) > self.settings.max_messages:
            raise BatchError(
                "too_large", f"{len(batch.messages)} messages exceeds {self.settings.max_messages}"
            )
        applied = self._seen_mac(gateway, batch.seq)
        out = Unpacked(batch, applied == batch.mac)
        for m in batch.messages:
            refusal = self._message_refusal(gateway, batch.seq, m.topic)
            if refusal is not None:
                out.refused.append(refusal)
                continue
            out.messages.append(
                EdgeMessage(
                    m.topic, m.payload, letter.received, gateway=gateway, backfilled=m.backfilled
                )
            )
        return out

    def _message_refusal(self, gateway: str, seq: int, topic: str) -> tuple[str, str] | None:
        """(reason, detail) when ``gateway`` may not forward a message on ``topic``."""
        if batch_gateway(topic) is not None or topic.startswith(BATCH_PREFIX):
            return "nested_batch", f"gateway {gateway} batch {seq} carries a gateway topic"
        refusal = self._foreign(gateway, topic)
        if refusal is not None:
            return "foreign_site", f"gateway {gateway} batch {seq}: {refusal}"
        return None

    def may_forward(self, gateway: str, topic: str) -> str | None:
        """Why ``gateway`` may not forward a message on ``topic`` now, or ``None`` if it may
        (a ``foreign_site`` letter is replayed only once the registry assigns the site)."""
        return self._foreign(gateway, topic)

    def _foreign(self, gateway: str, topic: str) -> str | None:
        """Why ``gateway`` may not forward a message on ``topic``; None when it may."""
        if self.assigned_sites is None:
            return None
        parts = topic.split("/")
        if len(parts) != 6 or "/".join(parts[:2]) != "fs/v1":
            return None  # not a device topic: decoding dead-letters it with its own reason
        sites = self.assigned_sites(gateway)
        if parts[3] in sites:
            return None
        if not sites:
            return f"no sites are assigned to gateway {gateway} (registry: gateways)"
        return (
            f"site {parts[3][:64]!r} is not one of the gateway's sites ({', '.join(sorted(sites))})"
        )

    def _verify(
        self, msg: Message, gateway: str, last: dict[str, int], seen: dict[tuple[str, int], str]
    ) -> Batch | None:
        key = self.keys.get(gateway)
        if key is None:
            raise BatchError("unknown_gateway", f"no key on file for gateway {gateway!r}")
        batch = decode_batch(msg.payload, key)
        if batch.gateway != gateway:
            raise BatchError(
                "gateway_mismatch", f"batch of {batch.gateway!r} on the topic of {gateway!r}"
            )
        if len(batch.messages) > self.settings.max_messages:
            raise BatchError(
                "too_large", f"{len(batch.messages)} messages exceeds {self.settings.max_messages}"
            )
        top = last.get(gateway)
        if top is None:
            top = self._state(gateway)
        if batch.seq > top:
            return batch
        mac = seen.get((gateway, batch.seq)) or self._seen_mac(gateway, batch.seq)
        if mac == batch.mac:
            return None  # the batch already stored, delivered again
        raise BatchError(
            "replayed_batch",
            f"sequence {batch.seq} is not above {top}, the last accepted from {gateway}",
        )

    def commit(self, expansion: Expansion) -> None:
        """Record accepted batches (call inside the transaction that stores their readings)."""
        if self.monitor is not None:
            self.monitor.commit(expansion.status_rows, expansion.acks)
        if not expansion.accepted and not expansion.duplicates:
            return
        now = to_epoch_ms(datetime.now(UTC))
        with self.db.transaction() as c:
            for batch, backfilled in expansion.accepted:
                c.execute(
                    "INSERT INTO edge_batches (gateway, seq, mac, received, messages)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (batch.gateway, batch.seq, batch.mac, now, len(batch.messages)),
                )
                loss = batch.loss
                c.execute(
                    "INSERT INTO edge_gateways (gateway, last_seq, batches, messages, backfilled,"
                    " lost_dropped, lost_refused, lost_expired, last_sent, last_received)"
                    " VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (gateway) DO UPDATE SET last_seq = excluded.last_seq,"
                    " batches = edge_gateways.batches + 1,"
                    " messages = edge_gateways.messages + excluded.messages,"
                    " backfilled = edge_gateways.backfilled + excluded.backfilled,"
                    " lost_dropped = excluded.lost_dropped, lost_refused = excluded.lost_refused,"
                    " lost_expired = excluded.lost_expired,"
                    " last_sent = excluded.last_sent, last_received = excluded.last_received",
                    (
                        batch.gateway,
                        batch.seq,
                        len(batch.messages),
                        backfilled,
                        loss.get("dropped", 0),
                        loss.get("refused", 0),
                        loss.get("expired", 0),
                        batch.sent_ms,
                        now,
                    ),
                )
                self.accepted_batches += 1
            for gateway, n in expansion.duplicates.items():
                c.execute(
                    "UPDATE edge_gateways SET duplicates = duplicates + ? WHERE gateway = ?",
                    (n, gateway),
                )
                self.duplicate_batches += n
            self._commits += 1
            if self._commits % 1000 == 0:
                # Remember a bounded history: a batch older than that is refused as a replay.
                for batch, _ in expansion.accepted[-1:]:
                    c.execute(
                        "DELETE FROM edge_batches WHERE gateway = ? AND seq < ?",
                        (batch.gateway, batch.seq - self.settings.keep_sequences),
                    )

    @property
    def topics(self) -> tuple[str, ...]:
        """What ingest subscribes to for the gateways."""
        return (self.settings.topic, *(self.monitor.topics if self.monitor is not None else ()))

    def gateways(self) -> list[dict[str, Any]]:
        """Per gateway: last sequence, counts, reported loss and clock skew.

        The skew is the gateway's clock minus the hub's, in ms, latency included.
        """
        rows = self.db.query("SELECT * FROM edge_gateways ORDER BY gateway")
        out = []
        for r in rows:
            d = dict(r)
            d["lost"] = d["lost_dropped"] + d["lost_refused"] + d["lost_expired"]
            d["skew_ms"] = None if d["last_sent"] is None else d["last_sent"] - d["last_received"]
            out.append(d)
        return out
