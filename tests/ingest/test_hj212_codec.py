"""The hj212 codec: round trips, every reject reason, tolerated irregularities, and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farsight.errors import DecodeError
from farsight.hj212 import (
    CN_DAILY,
    CN_HOURLY,
    CN_MINUTE,
    CN_REALTIME,
    build_data_frame,
    crc16,
    wrap,
)
from ingest.codecs import get_codec
from ingest.codecs.base import Decoded

CODEC = get_codec("hj212")
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
TS = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # 08:00 Beijing time
HEAD = "QN=20261125080000000;ST=31;CN=2011;PW=123456;MN=MN0001;Flag=4;"
STANDARD_EXAMPLE = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
)


def decode(payload: bytes) -> Decoded:
    return CODEC.decode(payload, site="site-1", device="dev-1")


def segment_frame(cp: str, head: str = HEAD) -> bytes:
    return wrap(f"{head}CP=&&{cp}&&")


def reject_reason(payload: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        decode(payload)
    return info.value.reason


def by_metric(decoded: Decoded) -> dict[str, tuple[float, str, str]]:
    return {r.metric: (r.value, r.unit, r.flag) for r in decoded.readings}


GOOD = build_data_frame(
    mn="MN0001", ts=TS, values={"a21026": {"Rtd": 35.2, "Flag": "N"}, "a34013": {"Rtd": 4.5}}
)


# --- valid frames ---------------------------------------------------------------------------


def test_realtime_round_trip_converts_beijing_time_to_utc() -> None:
    decoded = decode(GOOD)
    assert b"DataTime=20261125080000" in GOOD
    assert by_metric(decoded) == {"so2": (35.2, "mg/m3", "N"), "particulate": (4.5, "mg/m3", "N")}
    for r in decoded.readings:
        assert (r.site, r.device, r.ts, r.seq) == ("site-1", "dev-1", TS, None)
        assert r.ts.utcoffset() == timedelta(0)
    assert decoded.irregularities == ()


def test_utc_conversion_crosses_the_date_line() -> None:
    ts = datetime(2025, 12, 31, 19, 30, 5, tzinfo=UTC)  # 2026-01-01 03:30:05 Beijing
    frame = build_data_frame(mn="M", ts=ts, values={"a34004": {"Rtd": 12}})
    assert b"DataTime=20260101033005" in frame
    assert decode(frame).readings[0].ts == ts


def test_meta_has_header_fields_but_never_the_password() -> None:
    meta = decode(GOOD).meta
    assert dict(meta) == {
        "QN": "20261125080000000", "ST": "31", "CN": "2011", "MN": "MN0001", "Flag": "4"
    }  # fmt: skip
    assert "PW" not in meta


@pytest.mark.parametrize(
    ("cn", "suffix"), [(CN_MINUTE, "_1m"), (CN_HOURLY, "_1h"), (CN_DAILY, "_1d")]
)
def test_aggregate_frames_name_metrics_by_field_and_period(cn: str, suffix: str) -> None:
    frame = build_data_frame(
        mn="MN0001",
        ts=TS,
        cn=cn,
        values={
            "a21026": {"Avg": 30.5, "Min": 20, "Max": 41.25, "Cou": 1.5, "Flag": "M"},
            "a00000": {"Avg": 1200, "Cou": 72000},
            "w01018": {"Cou": 3.2},
            "a01001": {"Cou": 9},
        },
    )
    assert by_metric(decode(frame)) == {
        f"so2.avg{suffix}": (30.5, "mg/m3", "M"),
        f"so2.min{suffix}": (20.0, "mg/m3", "M"),
        f"so2.max{suffix}": (41.25, "mg/m3", "M"),
        f"so2.cou{suffix}": (1.5, "kg", "M"),  # emission mass
        f"flue_flow.avg{suffix}": (1200.0, "m3/h", "N"),
        f"flue_flow.cou{suffix}": (72000.0, "m3", "N"),  # flow volume
        f"cod.cou{suffix}": (3.2, "kg", "N"),
        f"temp.cou{suffix}": (9.0, "", "N"),  # a sum of temperatures has no unit
    }


def test_converted_values_and_accepted_extra_fields() -> None:
    cp = (
        "DataTime=20261125080000;a21026-Rtd=35.2,a21026-ZsRtd=50.1,a21026-Flag=C,"
        "a21026-EFlag=A01,a21026-SampleTime=20261125075500;a21002-Rtd=80,a21002-Ala=1"
    )
    decoded = decode(segment_frame(cp))
    assert by_metric(decoded) == {
        "so2": (35.2, "mg/m3", "C"),
        "so2.zs": (50.1, "mg/m3", "C"),
        "nox": (80.0, "mg/m3", "N"),
    }
    assert decoded.irregularities == ("ignored field: a21002-Ala",)


def test_2005_style_and_unknown_codes_are_kept_with_irregularities() -> None:
    cp = "DataTime=20261125080000;SO2-Rtd=35.2;PM25-Rtd=40;x99001-Rtd=7.5"
    decoded = decode(segment_frame(cp))
    assert by_metric(decoded) == {
        "so2": (35.2, "mg/m3", "N"),
        "pm25": (40.0, "ug/m3", "N"),
        "x99001": (7.5, "", "N"),
    }
    assert decoded.irregularities == (
        "2005-style code: SO2",
        "2005-style code: PM25",
        "unknown code: x99001",
    )


@pytest.mark.parametrize(
    ("mangle", "irregularity"),
    [
        (lambda f: f[:-6] + f[-6:-2].lower() + f[-2:], "lowercase crc"),
        (lambda f: f[:-2], "missing CRLF"),
        (lambda f: f[:-2] + b"\n", r"frame ends in other than CRLF: '\n'"),
        (lambda f: f + b"  \r\n", r"frame ends in other than CRLF: '\r\n  \r\n'"),
        (lambda f: b" " + f, "leading whitespace"),
    ],
)
def test_unambiguous_framing_faults_are_accepted_and_recorded(mangle, irregularity: str) -> None:
    frame = build_data_frame(mn="M", ts=TS, values={"a21026": {"Rtd": 1.5}})  # CRC has hex letters
    assert any(c in b"ABCDEF" for c in frame[-6:-2]), "pick data whose CRC has a letter"
    decoded = decode(mangle(frame))
    assert by_metric(decoded) == {"so2": (1.5, "mg/m3", "N")}
    assert irregularity in decoded.irregularities


def test_letter_case_of_field_names_and_flags_is_tolerated() -> None:
    head = "QN=20261125080000000;ST=31;cn=2011;PW=1;MN=M;Flag=4;"
    decoded = decode(segment_frame("datatime=20261125080000;a21026-RTD=2,a21026-flag=d", head))
    assert by_metric(decoded) == {"so2": (2.0, "mg/m3", "D")}
    assert decoded.meta["CN"] == "2011"
    assert len(decoded.irregularities) == 5


def test_unknown_header_fields_and_empty_items_are_noted() -> None:
    head = "QN=1;ST=31;CN=2011;PW=1;MN=M;Flag=4;Extra=7;"
    decoded = decode(segment_frame("DataTime=20261125080000;;a21026-Rtd=2;RtdInterval=30;", head))
    assert by_metric(decoded) == {"so2": (2.0, "mg/m3", "N")}
    assert decoded.irregularities == (
        "unknown header field: 'Extra'",
        "trailing separator in CP",
        "empty CP item",
        "ignored CP field: 'RtdInterval'",
    )


def _crc16_bitwise(data: bytes) -> int:
    """The standard's appendix A word for word: eight conditional shifts per byte."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ byte
        for _ in range(8):
            carry = crc & 1
            crc >>= 1
            if carry:
                crc ^= 0xA001
    return crc


@FUZZ
@given(st.binary(max_size=600))
def test_the_table_driven_crc_is_the_standards_bitwise_one(data: bytes) -> None:
    assert crc16(data) == _crc16_bitwise(data)


def test_the_standards_example_frame_has_a_valid_crc_and_is_a_command() -> None:
    segment = STANDARD_EXAMPLE[6:-6]
    assert len(segment) == 101 and crc16(segment) == 0x1C80
    with pytest.raises(DecodeError) as info:
        decode(STANDARD_EXAMPLE)
    assert info.value.reason == "not_data"
    assert "CN=1062" in info.value.detail


def test_bad_site_or_device_is_the_callers_error() -> None:
    with pytest.raises(ValueError):
        CODEC.decode(GOOD, site="bad site", device="d")


# --- rejects --------------------------------------------------------------------------------


def _relength(frame: bytes, length: int) -> bytes:
    return frame[:2] + f"{length:04d}".encode() + frame[6:]


REJECTS = [
    ("too_large", b"##" + b"0" * (10 * 1024)),
    (
        "not_ascii",
        segment_frame("DataTime=20261125080000;a21026-Rtd=1").replace(b"MN0001", b"MN\xe4"),
    ),
    ("bad_header", b"$$" + GOOD[2:]),
    ("bad_header", b""),
    ("truncated", GOOD[: len(GOOD) // 2]),
    ("truncated", b"##01"),
    ("bad_length", GOOD[:2] + b"01x6" + GOOD[6:]),
    # A miscounted length whose CRC verifies is a tolerated quirk (test_hj212_quirks.py); with a
    # broken CRC too, a frame shorter than declared lost bytes and a longer one is refused.
    ("truncated", _relength(GOOD.replace(b"35.2", b"35.3"), len(GOOD) - 11)),
    ("bad_length", _relength(GOOD.replace(b"35.2", b"35.3"), len(GOOD) - 13)),
    ("bad_crc", GOOD.replace(b"35.2", b"35.3")),
    ("bad_crc", GOOD[:-6] + b"ZZZZ\r\n"),
    ("bad_segment", wrap(HEAD + "DataTime=20261125080000")),
    ("bad_segment", wrap(HEAD + "CP=&&DataTime=20261125080000;a21026-Rtd=1&")),
    ("bad_segment", wrap("QN=1;ST=31;CN=2011CP=&&DataTime=20261125080000;a21026-Rtd=1&&")),
    ("bad_segment", segment_frame("DataTime=20261125080000;a21026-Rtd=1", "QN=1;ST;CN=2011;")),
    ("bad_segment", segment_frame("DataTime=20261125080000;a21026-Rtd")),
    ("duplicate_field", segment_frame("DataTime=20261125080000;a21026-Rtd=1", HEAD + "CN=2011;")),
    ("duplicate_field", segment_frame("DataTime=20261125080000;a21026-Rtd=1,a21026-Rtd=1")),
    ("duplicate_field", segment_frame("DataTime=20261125080000;a21026-Rtd=1;SO2-Rtd=1")),
    (
        "duplicate_field",
        segment_frame("DataTime=20261125080000;DataTime=20261125080000;a21026-Rtd=1"),
    ),
    ("missing_cn", segment_frame("DataTime=20261125080000;a21026-Rtd=1", "QN=1;ST=31;MN=M;")),
    (
        "not_data",
        segment_frame("DataTime=20261125080000;a21026-Rtd=1", HEAD.replace("2011", "9014")),
    ),
    ("not_data", STANDARD_EXAMPLE),
    ("bad_datatime", segment_frame("a21026-Rtd=1")),
    ("bad_datatime", segment_frame("DataTime=2026112508000;a21026-Rtd=1")),
    ("bad_datatime", segment_frame("DataTime=20261345080000;a21026-Rtd=1")),
    ("bad_datatime", segment_frame("DataTime=00010101000000;a21026-Rtd=1")),
    ("bad_code", segment_frame("DataTime=20261125080000;x y-Rtd=1")),
    ("bad_code", segment_frame("DataTime=20261125080000;-Rtd=1")),
    ("bad_value", segment_frame("DataTime=20261125080000;a21026-Rtd=abc")),
    ("bad_value", segment_frame("DataTime=20261125080000;a21026-Rtd=nan")),
    ("bad_value", segment_frame("DataTime=20261125080000;a21026-Rtd=1e999")),
    ("bad_value", segment_frame("DataTime=20261125080000;a21026-Rtd=")),
    ("bad_flag", segment_frame("DataTime=20261125080000;a21026-Rtd=1,a21026-Flag=Q")),
    ("bad_flag", segment_frame("DataTime=20261125080000;a21026-Rtd=1,a21026-Flag=NN")),
    ("no_data", segment_frame("")),
    ("no_data", segment_frame("DataTime=20261125080000")),
    ("no_data", segment_frame("DataTime=20261125080000;a21026-Flag=N")),
    ("no_data", segment_frame("DataTime=20261125080000;a21026-Avg=1")),  # Avg is not real-time
]


@pytest.mark.parametrize(
    ("reason", "payload"), REJECTS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(REJECTS)]
)
def test_reject(reason: str, payload: bytes) -> None:
    assert reject_reason(payload) == reason


# --- fuzzing --------------------------------------------------------------------------------


def _decodes_or_rejects(payload: bytes) -> None:
    try:
        result = decode(payload)
    except DecodeError as exc:
        assert exc.reason
    else:
        assert isinstance(result, Decoded) and result.readings


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_only_decode_or_reject(payload: bytes) -> None:
    _decodes_or_rejects(payload)


SEEDS = [
    GOOD,
    build_data_frame(
        mn="M", ts=TS, cn=CN_HOURLY, values={"a21026": {"Avg": 1, "Cou": 2, "Flag": "N"}}
    ),
    segment_frame("DataTime=20261125080000;SO2-Rtd=1,SO2-ZsRtd=2;x1-Rtd=3"),
    STANDARD_EXAMPLE,
]
EDIT = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.integers(0, 300),
    st.binary(min_size=1, max_size=3),
)


def _mutate(frame: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    for op, pos, chunk in edits:
        pos %= len(frame) + 1
        if op == "replace":
            frame = frame[:pos] + chunk + frame[pos + len(chunk) :]
        elif op == "insert":
            frame = frame[:pos] + chunk + frame[pos:]
        else:
            frame = frame[:pos] + frame[pos + len(chunk) :]
    return frame


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(EDIT, min_size=1, max_size=4))
def test_mutated_frames_only_decode_or_reject(
    frame: bytes, edits: list[tuple[str, int, bytes]]
) -> None:
    _decodes_or_rejects(_mutate(frame, edits))


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(EDIT, min_size=1, max_size=4))
def test_mutated_segments_with_valid_crc_only_decode_or_reject(
    frame: bytes, edits: list[tuple[str, int, bytes]]
) -> None:
    # Re-framing the mutated segment gets past length and CRC, so the field parser is exercised.
    segment = _mutate(frame[6:-6], edits)
    body = b"##" + f"{len(segment):04d}".encode() + segment
    _decodes_or_rejects(body + f"{crc16(segment):04X}".encode() + b"\r\n")


SEGMENT_TEXT = st.text(alphabet="QNSTCPWMFlag=;,-&&0123456789aRtdAvgCouZsx.e+ ", max_size=200)


@FUZZ
@given(SEGMENT_TEXT)
def test_random_segments_with_valid_crc_only_decode_or_reject(segment: str) -> None:
    _decodes_or_rejects(wrap(f"{HEAD}CP=&&DataTime=20261125080000;{segment}&&"))


# No two of these name one metric (SO2 with a21026 would be a duplicate_field reject).
CODES = st.sampled_from(["a21026", "a21002", "a34004", "a00000", "w01018", "PM10", "CO", "z12345"])
MILLIS = st.integers(-(10**9), 10**9).map(lambda n: n / 1000)


@FUZZ
@given(
    ts=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2099, 12, 31),
        timezones=st.just(UTC),
    ).map(lambda t: t.replace(microsecond=0)),
    values=st.dictionaries(CODES, MILLIS, min_size=1, max_size=6),
    cn=st.sampled_from([CN_REALTIME, CN_MINUTE, CN_HOURLY, CN_DAILY]),
)
def test_built_frames_round_trip(ts: datetime, values: dict[str, float], cn: str) -> None:
    field = "Rtd" if cn == CN_REALTIME else "Avg"
    decoded = decode(
        build_data_frame(mn="M", ts=ts, cn=cn, values={c: {field: v} for c, v in values.items()})
    )
    assert len(decoded.readings) == len(values)
    for reading, value in zip(decoded.readings, values.values()):
        assert reading.ts == ts
        assert reading.value == pytest.approx(value, abs=1e-9)
