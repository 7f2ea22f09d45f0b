"""HJ 212 as the field speaks it: each tolerated quirk decodes with its name recorded, its
CRC-broken twin is refused, ingest counts quirks per device, and ``decode`` reports them.

Frames are quoted from public code where one was found (the source is named above each); the
data segments are verbatim, CRCs are the frames' own unless said otherwise.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farsight.db import Database
from farsight.errors import DecodeError
from farsight.hj212 import build_data_frame, crc16, wrap
from farsight.registry import parse_registry
from ingest.codecs import get_codec
from ingest.codecs.base import Decoded, irregularity_name
from ingest.codecs.hj212 import QUIRKS, quirks_of
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from rules.engine import Engine
from tests.factories import registry_doc

ROOT = Path(__file__).resolve().parents[2]
CODEC = get_codec("hj212")

# The main() example of a Java "212国标解析器" (class NationalStandard212) in a public repository
# found through the code index (the index does not name the repository). Declared length 0481,
# segment 482; CRC "4f40" in lower case; CP ends in ";&&"; quoted without CRLF.
NS212_LENGTH = (
    b"##0481QN=20160801085000001;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=7;"
    b"CP=&&DataTime=20160801084000;a21005-Rtd=1.1,a21005-Flag=N;a21004-Rtd=112,a21004-Flag=N;"
    b"a21026-Rtd=58,a21026-Flag=N;a21030-Rtd=64,a21030-Flag=N;LA-Rtd=50.1,LA-Flag=N;"
    b"a34004-Rtd=207,a34004-Flag=N;a34002-Rtd=295,a34002-Flag=N;a01001-Rtd=12.6,a01001-Flag=N;"
    b"a01002-Rtd=32,a01002-Flag=N;a01006-Rtd=101.02,a01006-Flag=N;a01007-Rtd=2.1,a01007-Flag=N;"
    b"a01008-Rtd=120,a01008-Flag=N;a34001-Rtd=217,a34001-Flag=N;&&4f40"
)
# The same class's live example: 14-digit QN, no header Flag, no CRLF.
NS212_QN14 = (
    b"##0249QN=20180507000558;ST=39;CN=2011;PW=123456;MN=010000A00000000000A00654;"
    b"CP=&&DataTime=20180507000558;a01001-Rtd=26.0,a01001-Flag=N;a01002-Rtd=30.4,a01002-Flag=N;"
    b"a34001-Rtd=0.0,a34001-Flag=N;a34002-Rtd=24.0,a34002-Flag=N;a34004-Rtd=23.0,a34004-Flag=N"
    b"&&D801"
)
# xiaoyao9184/hj-t212-parser, hj-t212-parser/src/test/java/com/xy/format/hbt212/core/deser/
# DataDeserializerTest.java (and its issue 5): 17-digit DataTime, no QN, no Flag.
XY_MILLIS = (
    b"##0139ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20160824003817000;"
    b"B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,060-Flag=N&&4980\r\n"
)
# xiaoyao9184/hj-t212-parser, hj-t212-parser/src/test/resources/AllData/2016-08-24 05.h212, a
# capture of field traffic: a flag after each of a code's values (01-Rtd and 01-ZsRtd).
XY_REPEATED_FLAG = (
    b"##0382ST=31;CN=2011;PW=123456;MN=ZG130182201325;CP=&&DataTime=20160824050243000;"
    b"S01-Rtd=10.2,S01-Flag=N;S02-Rtd=8.93,S02-Flag=N;S03-Rtd=51.1,S03-Flag=N;"
    b"S05-Rtd=0.0,S05-Flag=N;S07-Rtd=0.00,S07-Flag=N;01-Rtd=3.56,01-Flag=N;01-ZsRtd=4.93,"
    b"01-Flag=N;02-Rtd=13.00,02-Flag=N;02-ZsRtd=18.05,02-Flag=N;03-Rtd=32.742,03-Flag=N;"
    b"03-ZsRtd=45.474,03-Flag=N;B02-Rtd=38.57;S08-Rtd=395.507813,S08-Flag=N&&E8C1\r\n"
)
# dromara/hutool, hutool-core/src/test/java/cn/hutool/core/io/checksum/CrcTest.java: the data
# segment (a space after "DataTime=...;"); hutool checks another CRC variant, so the HJ 212 CRC
# is computed here.
HUTOOL_SPACES = wrap(
    "QN=20160801085857223;ST=23;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
    "CP=&&DataTime=20160801085857; LA-Rtd=50.1&&"
)
# No public frame with a 12-digit DataTime was found; the issue names the deviation.
NO_SECONDS = wrap(
    "QN=20261125080000000;ST=31;CN=2011;PW=123456;MN=MN0001;Flag=4;"
    "CP=&&DataTime=202611250800;a21026-Rtd=35.2,a21026-Flag=N&&"
)


@dataclass(frozen=True)
class Case:
    quirk: str
    frame: bytes
    metric: str
    value: float
    ts: datetime


# The readings' UTC times (DataTime is Beijing time, UTC+8).
T_NS_LENGTH = datetime(2016, 8, 1, 0, 40, tzinfo=UTC)
T_NS_QN14 = datetime(2018, 5, 6, 16, 5, 58, tzinfo=UTC)
T_XY_MILLIS = datetime(2016, 8, 23, 16, 38, 17, tzinfo=UTC)
T_XY_FLAG = datetime(2016, 8, 23, 21, 2, 43, tzinfo=UTC)
T_HUTOOL = datetime(2016, 8, 1, 0, 58, 57, tzinfo=UTC)
T_NO_SECONDS = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)

CASES = [
    Case("length field miscounts", NS212_LENGTH, "so2", 58.0, T_NS_LENGTH),
    Case("lowercase crc", NS212_LENGTH, "pm10", 295.0, T_NS_LENGTH),
    Case("trailing separator in CP", NS212_LENGTH, "tsp", 217.0, T_NS_LENGTH),
    Case("missing CRLF", NS212_QN14, "pm25", 23.0, T_NS_QN14),
    Case("QN without milliseconds", NS212_QN14, "temp", 26.0, T_NS_QN14),
    Case("no Flag", NS212_QN14, "humidity", 30.4, T_NS_QN14),
    Case("DataTime with milliseconds", XY_MILLIS, "cod", 231.0, T_XY_MILLIS),
    Case("no QN", XY_MILLIS, "water_flow", 36.91, T_XY_MILLIS),
    Case("repeated Flag", XY_REPEATED_FLAG, "particulate.zs", 4.93, T_XY_FLAG),
    Case("spaces in CP", HUTOOL_SPACES, "noise", 50.1, T_HUTOOL),
    Case("DataTime without seconds", NO_SECONDS, "so2", 35.2, T_NO_SECONDS),
]
IDS = [c.quirk.replace(" ", "_") for c in CASES]


def decode(frame: bytes) -> Decoded:
    return CODEC.decode(frame, site="site-1", device="dev-1")


def break_crc(frame: bytes) -> bytes:
    """The frame with one digit of its first value changed and its CRC left as it was."""
    match = re.search(rb"-(?:Rtd|Avg)=[0-9]", frame)
    assert match is not None
    at = match.end() - 1
    digit = str((int(frame[at : at + 1]) + 1) % 10).encode()
    return frame[:at] + digit + frame[at + 1 :]


def test_every_named_quirk_has_a_case() -> None:
    assert {c.quirk for c in CASES} == set(QUIRKS)


def test_the_quoted_frames_carry_their_own_valid_crc() -> None:
    for frame in (NS212_LENGTH, NS212_QN14, XY_MILLIS, XY_REPEATED_FLAG):
        body = frame.rstrip(b"\r\n")
        assert int(body[-4:], 16) == crc16(body[6:-4])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_quirk_decodes_with_its_name_recorded(case: Case) -> None:
    decoded = decode(case.frame)
    assert case.quirk in [irregularity_name(i) for i in decoded.irregularities]
    assert case.quirk in quirks_of(decoded.irregularities)
    values = {r.metric: (r.value, r.ts) for r in decoded.readings}
    assert values[case.metric] == (case.value, case.ts)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_crc_broken_twin_is_refused(case: Case) -> None:
    twin = break_crc(case.frame)
    assert twin != case.frame
    with pytest.raises(DecodeError) as info:
        decode(twin)
    # A miscounted length with a broken CRC leaves nothing to trust about the length either.
    expected = {"bad_length", "truncated"} if case.frame is NS212_LENGTH else {"bad_crc"}
    assert info.value.reason in expected


def test_the_decoded_frame_keeps_every_value_of_the_quirky_frame() -> None:
    decoded = decode(NS212_LENGTH)
    assert len(decoded.readings) == 13
    assert quirks_of(decoded.irregularities) == (
        "missing CRLF",
        "length field miscounts",
        "lowercase crc",
        "trailing separator in CP",
    )


def test_millisecond_datatime_keeps_its_milliseconds() -> None:
    frame = wrap(
        "QN=20261125080000123;ST=31;CN=2011;PW=1;MN=M;Flag=4;"
        "CP=&&DataTime=20261125080000250;a21026-Rtd=1&&"
    )
    assert decode(frame).readings[0].ts == datetime(2026, 11, 25, 0, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    "cp",
    [
        "DataTime=20261125080000;a21026-Rtd=1,a21026-Flag=N;a21026-ZsRtd=2,a21026-Flag=D",
        "DataTime=2026112508000;a21026-Rtd=1",  # 13 digits
        "DataTime=2026112508000000;a21026-Rtd=1",  # 16 digits
        "DataTime=202611250860;a21026-Rtd=1",  # minute 60
        "DataTime=20261125080000;a21026-Rtd=1 .5",  # a space inside a number
    ],
)
def test_ambiguous_deviations_stay_refused(cp: str) -> None:
    with pytest.raises(DecodeError):
        decode(wrap(f"QN=1;ST=31;CN=2011;PW=1;MN=M;Flag=4;CP=&&{cp}&&"))


# --- ingest counts quirks per device ---------------------------------------------------------


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[tuple[IngestPipeline, ReadingStore]]:
    doc = registry_doc()
    cems = doc["sites"][1]["devices"][0]
    cems["mn"] = "010000A8900016F000169DC0"  # the quoted frame's MN
    reg = parse_registry(doc)
    store = ReadingStore(Database.open(tmp_path / "farsight.db"))
    yield IngestPipeline(reg, store, Engine([], reg)), store
    store.close()


TOPIC = "fs/v1/env/yc-stack-1/cems1/hj212"


def test_ingest_stores_quirky_frames_counts_quirks_per_device_and_dead_letters_twins(
    ingest: tuple[IngestPipeline, ReadingStore],
) -> None:
    pipe, store = ingest
    # A second frame from the same device whose length field also miscounts (by one).
    second = build_data_frame(
        mn="010000A8900016F000169DC0",
        ts=datetime(2016, 8, 1, 0, 41, tzinfo=UTC),
        values={"a21026": {"Rtd": 59, "Flag": "N"}},
    )
    second = second[:2] + f"{int(second[2:6]) - 1:04d}".encode() + second[6:]
    pipe.process(
        [Message(TOPIC, NS212_LENGTH), Message(TOPIC, second), Message(TOPIC, break_crc(second))]
    )
    # The real frame also carries codes cems1 does not register: those alone are refused.
    reasons = sorted(d.reason for d in store.dead_letters())
    assert reasons == ["bad_length", "unknown_metric"], reasons
    assert store.count(site="yc-stack-1", metric="so2") == 2
    counts = store.irregularity_counts(device="cems1")
    # Counted by the quirk's fixed name: the two frames' length fields miscount differently.
    assert counts[("yc-stack-1", "cems1", "length field miscounts")] == 2
    assert not [what for _, _, what in counts if ": " in what], counts
    assert counts[("yc-stack-1", "cems1", "lowercase crc")] == 1
    assert counts[("yc-stack-1", "cems1", "trailing separator in CP")] == 1
    assert store.irregularity_counts(what="lowercase crc") == {
        ("yc-stack-1", "cems1", "lowercase crc"): 1
    }
    assert store.irregularity_counts(device="aq1") == {}


# --- the decode CLI over the quoted frames ----------------------------------------------------


def test_decode_cli_reports_quirks_and_refuses_twins(tmp_path: Path) -> None:
    frames = [NS212_LENGTH, NS212_QN14, XY_MILLIS, XY_REPEATED_FLAG, HUTOOL_SPACES, NO_SECONDS]
    lines = []
    for frame in frames:
        lines += [frame.rstrip(b"\r\n"), break_crc(frame).rstrip(b"\r\n")]
    source = tmp_path / "field.hj212"
    source.write_bytes(b"\n".join(lines) + b"\n")

    done = subprocess.run(
        [sys.executable, "-m", "ingest.decode_cli", "--codec", "hj212", "--irregular", str(source)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1  # the twins
    readings = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r["device"] for r in readings} == {
        "010000A8900016F000169DC0", "010000A00000000000A00654", "LD130133000015",
        "ZG130182201325", "MN0001",
    }  # fmt: skip
    assert len(readings) == sum(len(decode(f).readings) for f in frames)
    errors = done.stderr.splitlines()
    rejects = [e for e in errors if " REJECT " in e]
    assert [e.split(":")[0] for e in rejects] == [f"line {n}" for n in range(2, 13, 2)]
    notes = {int(e.split(":")[0][5:]): e for e in errors if " IRREGULAR " in e}
    assert sorted(notes) == [1, 3, 5, 7, 9, 11]
    assert "length field miscounts: said 0481, counted 0482" in notes[1]  # details per line
    assert "lowercase crc" in notes[1]
    assert "DataTime with milliseconds" in notes[5] and "repeated Flag" in notes[7]
    assert "spaces in CP" in notes[9] and "DataTime without seconds" in notes[11]
