"""The ``detection`` codec: the payload of ``fs/v1/{dept}/{site}/{camera}/detection``.

``{"ts": ISO 8601 with offset | epoch ms, "kind": "smoke", "confidence": 0.87,
"bbox": [x, y, w, h], "zone": "gate", "evidence": ["<sha256>", ...], "state": "active",
"detail": {...}}``; only ``ts``, ``kind`` and ``confidence`` are required (``null`` is absent).
``site``, ``camera`` and ``offset_s`` (``video.pipeline`` writes them) are accepted; a ``site`` or
``camera`` that is not the topic's is refused as misrouted.

One finding becomes one reading ``video_{kind}`` (value the confidence, unit ``1``) of the camera
named by the topic, so threshold rules judge video like any other sensor. A finding whose
``state`` (top level or in ``detail``) is ``cleared`` reads 0, so those rules resolve; the video
analysers mark the end of a condition that way. A ``vehicle_crossing`` is a count, not a
condition: it becomes ``video_count_forward`` and ``video_count_backward``, the counting line's
running totals from ``detail``. Black smoke with a Ringelmann grade in
``detail.ringelmann`` (0..5) adds a second reading ``video_ringelmann``: a grade and a confidence
are different quantities and never share a metric. The zone and the evidence hashes travel as
``attr.zone`` and ``attr.evidence`` (comma-joined) in the decoded meta, so they reach the labels
of the alert the finding fires.
"""

from __future__ import annotations

import math
import re
from typing import Any

from farsight.errors import DecodeError
from farsight.types import ID_RE, Reading
from ingest.codecs.base import Decoded, check_target, irregularity, unique
from ingest.codecs.json_codec import _load, _timestamp

DETECTION_KINDS = frozenset(
    {
        "smoke",
        "fire",
        "black_smoke",
        "motion",
        "camera_covered",
        "camera_defocused",
        "camera_moved",
        "stopped_vehicle",
        "stream_lost",
        "intrusion",
        "vehicle_crossing",
    }
)
"""Finding kinds ingest accepts; each is the metric ``video_{kind}``."""

KNOWN_KEYS = frozenset(
    {
        "ts",
        "kind",
        "confidence",
        "bbox",
        "zone",
        "evidence",
        "state",
        "detail",
        "seq",
        "site",
        "camera",
        "offset_s",  # video.pipeline's as_dict(); site and camera must match the topic
    }
)
STATES = frozenset({"active", "cleared"})
MAX_EVIDENCE = 8
MAX_BBOX = 100_000
MAX_RINGELMANN = 5
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DetectionCodec:
    """Decodes one JSON video finding into readings."""

    name = "detection"

    def decode(self, payload: bytes, *, site: str, device: str) -> Decoded:
        check_target(site, device)
        irregular: list[str] = []
        doc = _load(payload, irregular)
        for key in doc:
            if key not in KNOWN_KEYS:
                irregular.append(irregularity("unknown key", repr(key)))
        for key, expected in (("site", site), ("camera", device)):
            if key in doc and doc[key] != expected:
                raise DecodeError(
                    "target_mismatch",
                    f"payload {key} {str(doc[key])[:64]!r} is not the topic's {expected!r}",
                )
        ts = _timestamp(doc)
        kind = _kind(doc)
        confidence = _confidence(doc)
        _bbox(doc)
        detail = _detail(doc)
        cleared = _state(doc, detail) == "cleared"
        seq = _seq(doc)
        meta: dict[str, str] = {}
        zone = _zone(doc)
        if zone is not None:
            meta["attr.zone"] = zone
        evidence = _evidence(doc)
        if evidence:
            meta["attr.evidence"] = ",".join(evidence)

        def reading(metric: str, value: float, unit: str) -> Reading:
            return Reading(
                site=site, device=device, metric=metric, value=value, unit=unit, ts=ts, seq=seq
            )

        if kind == "vehicle_crossing":
            # A count, not a condition: the running totals per direction of the counting line.
            counts = [(d, _count(detail, f"count_{d}")) for d in ("forward", "backward")]
            readings = [reading(f"video_count_{d}", n, "1") for d, n in counts if n is not None]
            if not readings:
                raise DecodeError(
                    "missing_count",
                    "a vehicle_crossing needs detail.count_forward or detail.count_backward",
                )
            return Decoded(readings=tuple(readings), irregularities=unique(irregular), meta=meta)
        readings = [reading(f"video_{kind}", 0.0 if cleared else confidence, "1")]
        if kind == "black_smoke":
            grade = _ringelmann(detail)
            if cleared:
                readings.append(reading("video_ringelmann", 0.0, "Ringelmann"))
            elif grade is not None:
                readings.append(reading("video_ringelmann", grade, "Ringelmann"))
        return Decoded(readings=tuple(readings), irregularities=unique(irregular), meta=meta)


def _count(detail: dict[str, Any], key: str) -> float | None:
    raw = detail.get(key)
    if raw is None:
        return None
    n = _number(raw, f"detail.{key}", "bad_count")
    if n < 0 or n != int(n) or n > 1e12:
        raise DecodeError("bad_count", f"detail.{key} {n} must be a whole number >= 0")
    return n


def _kind(doc: dict[str, Any]) -> str:
    if "kind" not in doc:
        raise DecodeError("missing_kind", "no 'kind'")
    raw = doc["kind"]
    if not isinstance(raw, str) or raw not in DETECTION_KINDS:
        raise DecodeError(
            "bad_kind", f"kind {str(raw)[:64]!r} is not one of {', '.join(sorted(DETECTION_KINDS))}"
        )
    return raw


def _number(raw: object, what: str, reason: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise DecodeError(reason, f"{what} {str(raw)[:64]!r} is not a number")
    try:
        value = float(raw)
    except OverflowError:
        raise DecodeError(reason, f"{what}: integer too large") from None
    if not math.isfinite(value):
        raise DecodeError(reason, f"{what} {raw!r} is not finite")
    return value


def _confidence(doc: dict[str, Any]) -> float:
    if "confidence" not in doc:
        raise DecodeError("missing_confidence", "no 'confidence'")
    value = _number(doc["confidence"], "confidence", "bad_confidence")
    if not 0.0 <= value <= 1.0:
        raise DecodeError("bad_confidence", f"confidence {value} is outside 0..1")
    return value


def _bbox(doc: dict[str, Any]) -> tuple[int, int, int, int] | None:
    raw = doc.get("bbox")
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or len(raw) != 4
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_BBOX for v in raw
        )
        or raw[2] <= 0
        or raw[3] <= 0
    ):
        raise DecodeError(
            "bad_bbox",
            f"bbox {str(raw)[:80]} must be [x, y, w, h]: integer pixels, x and y >= 0, w and h > 0",
        )
    return (raw[0], raw[1], raw[2], raw[3])


def _zone(doc: dict[str, Any]) -> str | None:
    raw = doc.get("zone")
    if raw is None:
        return None
    if not isinstance(raw, str) or not ID_RE.match(raw):
        raise DecodeError("bad_zone", f"zone {str(raw)[:64]!r} must match {ID_RE.pattern}")
    return raw


def _evidence(doc: dict[str, Any]) -> tuple[str, ...]:
    raw = doc.get("evidence")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_EVIDENCE:
        raise DecodeError(
            "bad_evidence", f"evidence must be a list of at most {MAX_EVIDENCE} sha256 hashes"
        )
    for h in raw:
        if not isinstance(h, str) or not _SHA256.fullmatch(h):
            raise DecodeError(
                "bad_evidence", f"evidence {str(h)[:80]!r} is not a lower-case hex sha256"
            )
    return tuple(dict.fromkeys(raw))


def _detail(doc: dict[str, Any]) -> dict[str, Any]:
    raw = doc.get("detail")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DecodeError("bad_detail", f"detail must be an object, got {type(raw).__name__}")
    return raw


def _state(doc: dict[str, Any], detail: dict[str, Any]) -> str:
    top, inner = doc.get("state"), detail.get("state")
    for where, raw in (("state", top), ("detail.state", inner)):
        if raw is not None and raw not in STATES:
            raise DecodeError(
                "bad_state", f"{where} {str(raw)[:64]!r} is not one of {', '.join(sorted(STATES))}"
            )
    if top is not None and inner is not None and top != inner:
        raise DecodeError("bad_state", f"state {top!r} contradicts detail.state {inner!r}")
    return top or inner or "active"


def _ringelmann(detail: dict[str, Any]) -> float | None:
    raw = detail.get("ringelmann")
    if raw is None:
        return None
    grade = _number(raw, "detail.ringelmann", "bad_ringelmann")
    if not 0 <= grade <= MAX_RINGELMANN:
        raise DecodeError(
            "bad_ringelmann", f"Ringelmann grade {grade} is outside 0..{MAX_RINGELMANN}"
        )
    return grade


def _seq(doc: dict[str, Any]) -> int | None:
    raw = doc.get("seq")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise DecodeError("bad_seq", f"seq must be a non-negative integer, got {raw!r}")
    return raw
