"""The detection codec: one video finding -> one reading video_{kind}; strict on everything."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from farsight.errors import DecodeError
from ingest.codecs import get_codec
from ingest.codecs.base import Decoded
from ingest.codecs.detection import DETECTION_KINDS, DetectionCodec
from ingest.topics import CODEC_FOR_KIND

H1, H2 = "0123456789abcdef" * 4, "fedcba9876543210" * 4
TS = "2026-11-25T08:00:00+08:00"
CODEC = DetectionCodec()


def decode(**doc: object) -> Decoded:
    body = {"ts": TS, "kind": "smoke", "confidence": 0.87, **doc}
    return CODEC.decode(
        json.dumps({k: v for k, v in body.items() if v is not None}).encode(),
        site="yc-cs-dongzhan",
        device="cam1",
    )


def test_detection_topics_use_this_codec() -> None:
    assert CODEC_FOR_KIND["detection"] == "detection"
    assert isinstance(get_codec("detection"), DetectionCodec)


def test_a_finding_is_one_reading_with_zone_and_evidence_in_meta() -> None:
    d = decode(bbox=[10, 20, 30, 40], zone="gate", evidence=[H1, H2])
    (r,) = d.readings
    assert (r.site, r.device, r.metric, r.value, r.unit, r.flag) == (
        "yc-cs-dongzhan",
        "cam1",
        "video_smoke",
        0.87,
        "1",
        "N",
    )
    assert r.ts == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert dict(d.meta) == {"attr.zone": "gate", "attr.evidence": f"{H1},{H2}"}
    assert d.irregularities == ()


def test_epoch_ms_and_minimal_payload() -> None:
    d = CODEC.decode(
        b'{"ts": 1764028800000, "kind": "fire", "confidence": 1}', site="s1", device="cam1"
    )
    (r,) = d.readings
    assert (
        r.metric == "video_fire" and r.value == 1.0 and r.ts == datetime(2025, 11, 25, tzinfo=UTC)
    )
    assert dict(d.meta) == {}


@pytest.mark.parametrize("kind", sorted(DETECTION_KINDS - {"vehicle_crossing"}))
def test_every_kind_is_a_video_metric(kind: str) -> None:
    assert decode(kind=kind).readings[0].metric == f"video_{kind}"


def test_a_vehicle_crossing_is_the_counting_lines_running_totals() -> None:
    d = decode(
        kind="vehicle_crossing",
        detail={"direction": "forward", "count_forward": 12, "count_backward": 7},
    )
    assert [(r.metric, r.value) for r in d.readings] == [
        ("video_count_forward", 12.0),
        ("video_count_backward", 7.0),
    ]
    with pytest.raises(DecodeError) as e:
        decode(kind="vehicle_crossing", detail={"direction": "forward"})
    assert e.value.reason == "missing_count"
    with pytest.raises(DecodeError) as e:
        decode(kind="vehicle_crossing", detail={"count_forward": -1})
    assert e.value.reason == "bad_count"


@pytest.mark.parametrize(
    "doc",
    [{"state": "cleared"}, {"detail": {"state": "cleared", "until": 12.5}}, {"confidence": 0}],
)
def test_a_cleared_finding_reads_zero_so_rules_resolve(doc: dict) -> None:
    assert decode(**{"confidence": 1.0, **doc}).readings[0].value == 0.0


def test_black_smoke_carries_its_ringelmann_grade_as_a_second_metric() -> None:
    d = decode(kind="black_smoke", confidence=0.8, detail={"ringelmann": 2})
    assert [(r.metric, r.value, r.unit) for r in d.readings] == [
        ("video_black_smoke", 0.8, "1"),
        ("video_ringelmann", 2.0, "Ringelmann"),
    ]
    assert [r.metric for r in decode(kind="black_smoke").readings] == ["video_black_smoke"]
    cleared = decode(kind="black_smoke", confidence=1.0, state="cleared")
    assert [(r.metric, r.value) for r in cleared.readings] == [
        ("video_black_smoke", 0.0),
        ("video_ringelmann", 0.0),
    ]


def test_unknown_keys_are_irregular_not_rejected() -> None:
    assert decode(model="yolo-v8").irregularities == ("unknown key: 'model'",)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"kind": "unicorn"}, "bad_kind"),
        ({"kind": 3}, "bad_kind"),
        ({"confidence": 1.01}, "bad_confidence"),
        ({"confidence": -0.1}, "bad_confidence"),
        ({"confidence": "high"}, "bad_confidence"),
        ({"confidence": True}, "bad_confidence"),
        ({"evidence": ["xyz"]}, "bad_evidence"),
        ({"evidence": [H1.upper()]}, "bad_evidence"),
        ({"evidence": H1}, "bad_evidence"),
        ({"evidence": [H1] * 9}, "bad_evidence"),
        ({"bbox": [1, 2, 3]}, "bad_bbox"),
        ({"bbox": [1, 2, 0, 4]}, "bad_bbox"),
        ({"bbox": [-1, 2, 3, 4]}, "bad_bbox"),
        ({"bbox": [1.5, 2, 3, 4]}, "bad_bbox"),
        ({"bbox": "1,2,3,4"}, "bad_bbox"),
        ({"zone": "north gate!"}, "bad_zone"),
        ({"state": "maybe"}, "bad_state"),
        ({"state": "active", "detail": {"state": "cleared"}}, "bad_state"),
        ({"detail": [1]}, "bad_detail"),
        ({"kind": "black_smoke", "detail": {"ringelmann": 6}}, "bad_ringelmann"),
        ({"seq": -1}, "bad_seq"),
        ({"ts": "2026-11-25T08:00:00"}, "naive_ts"),
    ],
)
def test_bad_findings_are_rejected_with_a_reason(doc: dict, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(**doc)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"kind": "smoke", "confidence": 0.5}', "missing_ts"),
        (b'{"ts": "2026-11-25T08:00:00+08:00", "confidence": 0.5}', "missing_kind"),
        (b'{"ts": "2026-11-25T08:00:00+08:00", "kind": "smoke"}', "missing_confidence"),
        (b"[1]", "not_object"),
        (b"\xff", "not_utf8"),
    ],
)
def test_malformed_payloads_are_rejected(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        CODEC.decode(payload, site="s1", device="cam1")
    assert exc.value.reason == reason


def test_the_video_pipelines_own_json_form_decodes_cleanly() -> None:
    body = {
        "kind": "smoke",
        "offset_s": 12.5,
        "site": "yc-cs-dongzhan",
        "camera": "cam1",
        "confidence": 0.87,
        "ts": TS,
        "bbox": None,
        "zone": None,
        "evidence": [],
        "detail": {"area": 0.1},
    }
    d = CODEC.decode(json.dumps(body).encode(), site="yc-cs-dongzhan", device="cam1")
    assert d.irregularities == () and d.readings[0].value == 0.87 and dict(d.meta) == {}


@pytest.mark.parametrize("doc", [{"site": "elsewhere"}, {"camera": "cam9"}])
def test_a_payload_naming_another_site_or_camera_is_misrouted(doc: dict) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(**doc)
    assert exc.value.reason == "target_mismatch"
