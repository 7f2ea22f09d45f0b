"""The ``json`` codec: the payload of ``fs/v1/{dept}/{site}/{device}/reading``.

``{"ts": ISO 8601 with offset | epoch ms, "metrics": {name: number}, "flags": {name: flag},
"seq": int, "units": {name: unit}}``; ``flags``, ``seq`` and ``units`` are optional.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from farsight.errors import DecodeError
from farsight.metrics import unit_of
from farsight.types import ID_RE, Reading
from ingest.codecs.base import Decoded, check_target, irregularity, parse_flag, unique

MAX_PAYLOAD = 256 * 1024
KNOWN_KEYS = frozenset({"ts", "metrics", "flags", "seq", "units", "attrs"})
MAX_ATTRS = 16
MAX_ATTR_CHARS = 128
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch milliseconds must fall in 2000..2100: outside it the sender most likely sent seconds
# (1.7e9 read as ms is January 1970), and a wrong unit is a guess we refuse to make.
_EPOCH_MS_RANGE = (946_684_800_000, 4_102_444_800_000)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys silently; which one the sender meant is a guess.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


# One decoder for every payload: json.loads with a hook would build a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


class JsonCodec:
    """Decodes one JSON reading payload."""

    name = "json"

    def decode(self, payload: bytes, *, site: str, device: str) -> Decoded:
        check_target(site, device)
        irregular: list[str] = []
        doc = _load(payload, irregular)
        for key in doc:
            if key not in KNOWN_KEYS:
                irregular.append(irregularity("unknown key", repr(key)))
        ts = _timestamp(doc)
        metrics = _metrics(doc)
        flags = _flags(doc, metrics, irregular)
        units = _units(doc, metrics, irregular)
        seq = _seq(doc)
        readings = tuple(
            Reading(
                site=site,
                device=device,
                metric=name,
                value=value,
                unit=units.get(name, unit_of(name, "")),
                ts=ts,
                flag=flags.get(name, "N"),
                seq=seq,
            )
            for name, value in metrics.items()
        )
        return Decoded(readings=readings, irregularities=unique(irregular), meta=_attrs(doc))


def _load(payload: bytes, irregular: list[str]) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise DecodeError("too_large", f"{len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("not_utf8", str(exc)) from None
    if text.startswith("\ufeff"):
        irregular.append("utf-8 byte order mark")
        text = text[1:]
    try:
        doc = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise DecodeError("duplicate_key", f"key {exc.args[0]!r} appears twice") from None
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers past the int-to-str digit limit.
        raise DecodeError("not_json", str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise DecodeError("not_object", f"top level is {type(doc).__name__}, not an object")
    return doc


def _timestamp(doc: dict[str, Any]) -> datetime:
    if "ts" not in doc:
        raise DecodeError("missing_ts", "no 'ts'")
    raw = doc["ts"]
    if isinstance(raw, int) and not isinstance(raw, bool):
        lo, hi = _EPOCH_MS_RANGE
        if not lo <= raw < hi:
            raise DecodeError("bad_ts", f"epoch ms {raw} is outside 2000..2100 (seconds sent?)")
        return _EPOCH + timedelta(milliseconds=raw)
    if not isinstance(raw, str):
        raise DecodeError(
            "bad_ts", f"ts must be an ISO 8601 string or epoch ms integer, got {raw!r}"
        )
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise DecodeError("bad_ts", f"ts {raw[:64]!r} is not ISO 8601") from None
    if ts.tzinfo is None:
        raise DecodeError("naive_ts", f"ts {raw!r} has no UTC offset; its zone would be a guess")
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        raise DecodeError("bad_ts", f"ts {raw!r} is out of range") from None


def _metrics(doc: dict[str, Any]) -> dict[str, float]:
    if "metrics" not in doc:
        raise DecodeError("missing_metrics", "no 'metrics'")
    raw = doc["metrics"]
    if not isinstance(raw, dict):
        raise DecodeError("bad_metrics", f"metrics must be an object, got {type(raw).__name__}")
    if not raw:
        raise DecodeError("empty_metrics", "metrics has no entries")
    out: dict[str, float] = {}
    for name, value in raw.items():
        if not ID_RE.match(name):
            raise DecodeError("bad_metric_name", f"metric {name[:80]!r} must match {ID_RE.pattern}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DecodeError("bad_value", f"{name}: {value!r} is not a number")
        try:
            number = float(value)
        except OverflowError:
            raise DecodeError("bad_value", f"{name}: integer too large") from None
        if not math.isfinite(number):
            raise DecodeError("bad_value", f"{name}: {value!r} is not finite")
        out[name] = number
    return out


def _flags(doc: dict[str, Any], metrics: dict[str, float], irregular: list[str]) -> dict[str, str]:
    raw = doc.get("flags")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DecodeError("bad_flag", f"flags must be an object, got {type(raw).__name__}")
    flags = {name: parse_flag(flag, name, irregular) for name, flag in raw.items()}
    for name in (n for n in flags if n not in metrics):
        irregular.append(irregularity("flag for absent metric", repr(name)))
    return flags


def _units(doc: dict[str, Any], metrics: dict[str, float], irregular: list[str]) -> dict[str, str]:
    raw = doc.get("units")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(u, str) for u in raw.values()):
        raise DecodeError("bad_units", "units must be an object of strings")
    for name in (n for n in raw if n not in metrics):
        irregular.append(irregularity("unit for absent metric", repr(name)))
    return raw


def _attrs(doc: dict[str, Any]) -> dict[str, str]:
    """Descriptive strings that travel with the readings (a truck's plate at a weigh station),
    returned as ``attr.<name>`` in the decoded meta."""
    raw = doc.get("attrs")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_ATTRS:
        raise DecodeError("bad_attrs", f"attrs must be an object of at most {MAX_ATTRS} strings")
    for name, value in raw.items():
        if not isinstance(value, str) or len(value) > MAX_ATTR_CHARS or len(name) > 64:
            raise DecodeError(
                "bad_attrs",
                f"attrs[{name[:64]!r}] must be a string of at most {MAX_ATTR_CHARS} characters",
            )
    return {f"attr.{k}": v for k, v in raw.items()}


def _seq(doc: dict[str, Any]) -> int | None:
    raw = doc.get("seq")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise DecodeError("bad_seq", f"seq must be a non-negative integer, got {raw!r}")
    return raw
