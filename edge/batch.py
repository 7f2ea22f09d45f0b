"""The store-and-forward batch: what a gateway publishes on ``fs/v1/gw/{gateway}/batch``.

A batch is one JSON object::

    {"v": 1, "gateway": "gw-1", "seq": 42, "sent": 1764000000000,
     "loss": {"dropped": 0, "refused": 0, "expired": 0},
     "messages": [{"topic": "fs/v1/env/s1/d1/reading", "text": "{...}", "ts": 1764..., "backfilled":
     false},
                  {"topic": "...", "b64": "...", ...}],
     "mac": "<hex HMAC-SHA256>"}

``text`` carries a UTF-8 payload as is (JSON readings, HJ 212 frames are ASCII), ``b64`` any other
bytes. ``ts`` is when the gateway received the message (epoch ms), ``backfilled`` says it waited
in the buffer (an outage) and is late data. ``loss`` is the gateway's cumulative count of messages
it lost by its full policy, so the hub can report the loss exactly.

The MAC is HMAC-SHA256 with the gateway's key over a domain tag and the canonical bytes of every
other field (sorted keys, no spaces, UTF-8), so any change to any field, including ``seq``, breaks
it. ``seq`` increases with every batch the gateway sends; the hub refuses a sequence number it has
already accepted unless the batch is byte-for-byte the one it accepted (a harmless redelivery).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from ingest.edge_batches import (  # noqa: F401 - the format's verifying half, re-exported
    DOMAIN_TAG,
    MIN_KEY_BYTES,
    VERSION,
    Batch,
    BatchError,
    BatchMessage,
    canonical,
    decode_batch,
    parse_key,
    peek_gateway,
    sign,
)


def _message_doc(m: BatchMessage) -> dict[str, Any]:
    doc: dict[str, Any] = {"topic": m.topic, "ts": m.ts_ms, "backfilled": m.backfilled}
    try:
        doc["text"] = m.payload.decode("utf-8")
    except UnicodeDecodeError:
        doc["b64"] = base64.b64encode(m.payload).decode("ascii")
    return doc


def encode_batch(
    gateway: str,
    seq: int,
    messages: Sequence[BatchMessage],
    key: bytes,
    sent_ms: int,
    loss: Mapping[str, int] | None = None,
) -> bytes:
    """Build and sign one batch; returns the payload to publish."""
    doc: dict[str, Any] = {
        "v": VERSION,
        "gateway": gateway,
        "seq": int(seq),
        "sent": int(sent_ms),
        "loss": {k: int(v) for k, v in (loss or {}).items()},
        "messages": [_message_doc(m) for m in messages],
    }
    doc["mac"] = sign(doc, key)
    return canonical(doc)


def load_gateway_key(path: Path | None) -> bytes:
    """This gateway's key: ``FARSIGHT_EDGE_KEY`` (hex), else the key file."""
    env = os.environ.get("FARSIGHT_EDGE_KEY")
    try:
        if env:
            return parse_key(env, "FARSIGHT_EDGE_KEY")
        if path is None:
            raise EdgeError(
                "no batch key: set uplink.hmac_key_file or FARSIGHT_EDGE_KEY (hex, e.g. `openssl"
                " rand -hex 32`)"
            )
        try:
            text = Path(path).read_text(encoding="ascii")
        except OSError as exc:
            raise EdgeError(f"cannot read key file {path}: {exc.strerror}") from None
        return parse_key(text, str(path))
    except ValueError as exc:
        raise EdgeError(str(exc)) from None
