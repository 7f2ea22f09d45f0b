"""The json codec: valid payloads, every reject reason, irregularities, and fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farsight.errors import DecodeError
from ingest.codecs import get_codec
from ingest.codecs.base import Decoded

CODEC = get_codec("json")
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
UTC_8AM_BEIJING = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def decode(payload: bytes | dict) -> Decoded:
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    return CODEC.decode(payload, site="site-1", device="dev-1")


def reject_reason(payload: bytes | dict) -> str:
    with pytest.raises(DecodeError) as info:
        decode(payload)
    return info.value.reason


GOOD = {
    "ts": "2026-11-25T08:00:00+08:00",
    "metrics": {"pm25": 35.2, "so2": 12, "gadget": -1.5},
    "flags": {"pm25": "M"},
    "seq": 1042,
    "units": {"so2": "ug/m3"},
}


def test_full_payload() -> None:
    decoded = decode(GOOD)
    got = [(r.metric, r.value, r.unit, r.flag, r.seq, r.ts) for r in decoded.readings]
    assert got == [
        ("pm25", 35.2, "ug/m3", "M", 1042, UTC_8AM_BEIJING),  # catalogue unit
        ("so2", 12.0, "ug/m3", "N", 1042, UTC_8AM_BEIJING),  # payload unit wins
        ("gadget", -1.5, "", "N", 1042, UTC_8AM_BEIJING),  # not in the catalogue
    ]
    assert all((r.site, r.device) == ("site-1", "dev-1") for r in decoded.readings)
    assert decoded.irregularities == ()


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1_795_564_800_123, datetime(2026, 11, 25, 0, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-25T00:00:00Z", UTC_8AM_BEIJING),
        ("2026-11-24T19:00:00-05:00", UTC_8AM_BEIJING),
    ],
)
def test_timestamps_in_every_accepted_form_become_utc(ts: object, expected: datetime) -> None:
    reading = decode({"ts": ts, "metrics": {"pm10": 1}}).readings[0]
    assert reading.ts == expected and reading.ts.utcoffset().total_seconds() == 0
    assert reading.seq is None and reading.flag == "N"


def test_unambiguous_oddities_are_accepted_and_recorded() -> None:
    payload = {"ts": 1_795_564_800_000, "metrics": {"pm25": 1}, "flags": {"pm25": "c", "o3": "N"},
               "units": {"no2": "ug/m3"}, "seq": None, "source": "x"}  # fmt: skip
    decoded = decode(b"\xef\xbb\xbf" + json.dumps(payload).encode())
    assert decoded.readings[0].flag == "C"
    assert decoded.irregularities == (
        "utf-8 byte order mark",
        "unknown key: 'source'",
        "lowercase flag: 'c' for pm25",
        "flag for absent metric: 'o3'",
        "unit for absent metric: 'no2'",
    )


def test_bad_site_or_device_is_the_callers_error() -> None:
    with pytest.raises(ValueError):
        CODEC.decode(json.dumps(GOOD).encode(), site="s", device="")


_DROP = object()


def _with(**changes: object) -> dict:
    """A minimal valid payload with keys changed, or removed when set to ``_DROP``."""
    doc = {"ts": "2026-11-25T08:00:00+08:00", "metrics": {"pm25": 1.0}}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


REJECTS = [
    ("too_large", json.dumps({**GOOD, "pad": "x" * 256 * 1024}).encode()),
    ("not_utf8", b'{"ts": "\xff"}'),
    ("not_json", b'{"ts": '),
    ("not_json", b"[" * 100_000),
    ("not_json", b'{"ts": 1' + b"0" * 5000 + b"}"),
    ("duplicate_key", b'{"ts": 1795564800000, "metrics": {"pm25": 1, "pm25": 2}}'),
    ("not_object", b"[1, 2]"),
    ("not_object", b"null"),
    ("missing_ts", _with(ts=_DROP)),
    ("bad_ts", _with(ts="yesterday")),
    ("bad_ts", _with(ts=True)),
    ("bad_ts", _with(ts=1_795_564_800.5)),
    ("bad_ts", _with(ts=1_795_564_800)),  # epoch seconds, not ms
    ("bad_ts", _with(ts=[2026, 11, 25])),
    ("bad_ts", _with(ts="0001-01-01T00:00:00+08:00")),
    ("naive_ts", _with(ts="2026-11-25T08:00:00")),
    ("missing_metrics", _with(metrics=_DROP)),
    ("bad_metrics", _with(metrics=[1, 2])),
    ("empty_metrics", _with(metrics={})),
    ("bad_metric_name", _with(metrics={"pm 25": 1})),
    ("bad_metric_name", _with(metrics={"": 1})),
    ("bad_value", _with(metrics={"pm25": "35"})),
    ("bad_value", _with(metrics={"pm25": True})),
    ("bad_value", _with(metrics={"pm25": None})),
    ("bad_value", b'{"ts": 1795564800000, "metrics": {"pm25": NaN}}'),
    ("bad_value", b'{"ts": 1795564800000, "metrics": {"pm25": 1e999}}'),
    ("bad_value", _with(metrics={"pm25": 10**400})),
    ("bad_flag", _with(flags={"pm25": "Q"})),
    ("bad_flag", _with(flags={"pm25": 1})),
    ("bad_flag", _with(flags=["N"])),
    ("bad_seq", _with(seq=-1)),
    ("bad_seq", _with(seq=1.5)),
    ("bad_seq", _with(seq=True)),
    ("bad_seq", _with(seq="7")),
    ("bad_units", _with(units={"pm25": 3})),
    ("bad_units", _with(units="ug/m3")),
]


@pytest.mark.parametrize(
    ("reason", "payload"), REJECTS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(REJECTS)]
)
def test_reject(reason: str, payload: bytes | dict) -> None:
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


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(["ts", "metrics", "flags", "seq", "units", "other"])
TS_VALUES = st.integers() | st.sampled_from(
    ["2026-11-25T08:00:00+08:00", "2026-11-25T08:00:00", "x"]
)
METRICS = st.dictionaries(
    st.sampled_from(["pm25", "so2", "x-1", "", "a b"]), JSON_VALUES, max_size=3
)


@FUZZ
@given(st.dictionaries(KEYS, JSON_VALUES, max_size=6), TS_VALUES, METRICS)
def test_random_json_documents_only_decode_or_reject(doc: dict, ts: object, metrics: dict) -> None:
    doc.setdefault("ts", ts)
    doc.setdefault("metrics", metrics)
    _decodes_or_rejects(json.dumps(doc).encode())


SEED = json.dumps(GOOD).encode()
EDIT = st.tuples(st.integers(0, len(SEED)), st.binary(min_size=0, max_size=3), st.integers(0, 3))


@FUZZ
@given(st.lists(EDIT, min_size=1, max_size=4))
def test_mutated_payloads_only_decode_or_reject(edits: list[tuple[int, bytes, int]]) -> None:
    payload = SEED
    for pos, chunk, cut in edits:
        payload = payload[:pos] + chunk + payload[pos + cut :]
    _decodes_or_rejects(payload)


def test_attrs_travel_in_meta_and_bad_attrs_are_rejected() -> None:
    from farsight.errors import DecodeError
    from ingest.codecs import get_codec

    codec = get_codec("json")
    ok = (
        b'{"ts": 1795600000000, "metrics": {"gross_weight": 61.8, "axles": 6},'
        b' "attrs": {"plate": "\\u9102E\\u00b77C215"}}'
    )
    decoded = codec.decode(ok, site="s1", device="wim1")
    assert decoded.meta == {"attr.plate": "鄂E·7C215"} and decoded.irregularities == ()
    for bad in (
        b'{"ts": 1795600000000, "metrics": {"x": 1}, "attrs": ["a"]}',
        b'{"ts": 1795600000000, "metrics": {"x": 1}, "attrs": {"plate": 5}}',
    ):
        try:
            codec.decode(bad, site="s1", device="wim1")
        except DecodeError as exc:
            assert exc.reason == "bad_attrs"
        else:
            raise AssertionError("accepted bad attrs")
