"""The ``hj212`` codec: one HJ 212-2017 data upload frame into readings.

Liberal in what is unambiguous, strict on corruption (CRC, numbers, flags, time): every leniency
is recorded in ``Decoded.irregularities``. Framing and CRC16 come from :mod:`farsight.hj212`.

Field quirks. Data loggers in the field send frames that the standard's letter rejects but whose
CRC proves they arrived intact. Each is accepted only when the CRC matches, and recorded under a
fixed name (:data:`QUIRKS`) so that ingest's irregularities table counts it per device (a text
with details, ``length field miscounts: said 0481, counted 0482``, counts under the name before
``: ``, :func:`ingest.codecs.base.irregularity_name`). Where each
was seen (frames quoted in ``tests/ingest/test_hj212_quirks.py``):

``length field miscounts``
    The 4-digit length differs from the data segment's (``##0481`` on a 482-character segment):
    the main() example of a Java "212国标解析器" (class ``NationalStandard212``) in a public
    repository found through the code index; a user's frame in xiaoyao9184/hj-t212-parser issue 6
    ("我的數據長度有問題").
``lowercase crc``
    ``&&4f40``: the same NationalStandard212 example; ``&&0b40`` in a Chengdu LePan CEMS protocol
    comment (C, rtuacq protocol module) found through the code index.
``missing CRLF``
    Frames quoted without CRLF: the NationalStandard212 examples (``&&D801``), a noise-station
    log (``&&06C0``, ``MN=`` empty). Over TCP such frames, and frames ending in a bare LF, are
    split by :func:`farsight.hj212.split_stream` at the next ``##`` header (or taken whole when
    the logger hangs up).
``trailing separator in CP``
    ``...a34001-Flag=N;&&``: the NationalStandard212 example; xiaoyao9184/hj-t212-parser issue 6.
``spaces in CP``
    ``CP=&&DataTime=20160801085857; LA-Rtd=50.1&&``: dromara/hutool
    ``hutool-core/src/test/java/cn/hutool/core/io/checksum/CrcTest.java``.
``DataTime with milliseconds``
    17-digit ``DataTime=20160824003817000``: xiaoyao9184/hj-t212-parser
    ``.../core/deser/DataDeserializerTest.java``, issue 5, and the field capture
    ``hj-t212-parser/src/test/resources/AllData/2016-08-24 05.h212`` (most frames of it).
``DataTime without seconds``
    12-digit ``YYYYMMDDhhmm``: named in the issue of this project (no public frame found).
``repeated Flag``
    ``01-Rtd=3.56,01-Flag=N;01-ZsRtd=4.93,01-Flag=N``: one flag after each value of a code, in the
    field capture ``AllData/2016-08-24 05.h212``. Two different flags for one code stay a reject.
``no QN``, ``no Flag``
    HJ 212-2005 style headers ``ST=32;CN=2011;PW=...;MN=...;CP=...``: the same field capture.
``QN without milliseconds``
    14-digit ``QN=20180507000558``: the NationalStandard212 example.

Also tolerated and noted, counted under their name with the details after it: leading
whitespace, other line ends, 2005-style pollutant codes (``B01``, ``011``, ``SO2``; the field
capture), letter case of field names and flags, unknown header and CP fields. The password
``PW`` is never trimmed.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from farsight.clock import BEIJING
from farsight.errors import DecodeError
from farsight.hj212 import DATA_CNS, crc16
from farsight.metrics import Metric, by_hj212_code
from farsight.types import Reading
from ingest.codecs.base import (
    Decoded,
    check_target,
    irregularity,
    irregularity_name,
    parse_flag,
    unique,
)

MAX_PAYLOAD = 10 * 1024
_WHITESPACE = " \t\r\n"
_LENGTH_RE = re.compile(r"[0-9]{4}")
_CRC_RE = re.compile(r"[0-9A-Fa-f]{4}")
_DATATIME_RE = re.compile(r"[0-9]{12}|[0-9]{14}|[0-9]{17}")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_QN14_RE = re.compile(r"[0-9]{14}")
# An unknown code becomes a metric name, so it must not carry the "." that starts a suffix.
_CODE_RE = re.compile(r"[A-Za-z0-9]{1,32}")

_HEADER_FIELDS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
# PNUM/PNO number the parts of a split packet (Flag bit D); PW is a password and never kept.
_META_FIELDS = ("QN", "ST", "CN", "MN", "Flag", "PNUM", "PNO")
_CP_FIELDS = ("DataTime",)
_VALUE_FIELDS = (
    "Rtd", "ZsRtd", "Avg", "Min", "Max", "Cou", "ZsAvg", "ZsMin", "ZsMax",
    "Flag", "EFlag", "SampleTime",
)  # fmt: skip
# EFlag (instrument state) and SampleTime are valid but yield no reading: ts is always DataTime.
_SILENT_FIELDS = frozenset({"EFlag", "SampleTime"})


def _layout(period: str) -> dict[str, str]:
    """Field name to metric suffix for one CN: real-time values keep the bare metric name."""
    if period == "rtd":
        return {"Rtd": "", "ZsRtd": ".zs"}
    return {
        field: f".{prefix}_{period}"
        for field, prefix in (
            ("Avg", "avg"), ("Min", "min"), ("Max", "max"), ("Cou", "cou"),
            ("ZsAvg", "zs_avg"), ("ZsMin", "zs_min"), ("ZsMax", "zs_max"),
        )
    }  # fmt: skip


_LAYOUTS = {cn: _layout(period) for cn, period in DATA_CNS.items()}

_CN_NAMES = {
    "1011": "get device time",
    "1012": "set device time",
    "1061": "get real-time data interval",
    "1062": "set real-time data interval",
    "2021": "treatment facility running status",
    "2041": "treatment facility running time",
    "2081": "data logger restart time",
    "9011": "request response",
    "9012": "execution result",
    "9013": "notification response",
    "9014": "data response",
}
_FLOW_METRICS = frozenset({"flue_flow", "water_flow"})

Q_OTHER_END = "frame ends in other than CRLF"
Q_LENGTH = "length field miscounts"
Q_LOWER_CRC = "lowercase crc"
Q_NO_CRLF = "missing CRLF"
Q_TRAILING_SEP = "trailing separator in CP"
Q_SPACES = "spaces in CP"
Q_DT_MS = "DataTime with milliseconds"
Q_DT_NO_S = "DataTime without seconds"
Q_REPEATED_FLAG = "repeated Flag"
Q_NO_QN = "no QN"
Q_NO_FLAG = "no Flag"
Q_QN_NO_MS = "QN without milliseconds"

QUIRKS: dict[str, str] = {
    Q_LENGTH: "the length field differs from the data segment's length; the CRC verifies",
    Q_LOWER_CRC: "the CRC is written in lower-case hex",
    Q_NO_CRLF: "the frame has no CRLF at its end",
    Q_TRAILING_SEP: "CP ends in ';' before '&&'",
    Q_SPACES: "spaces around CP keys or values",
    Q_DT_MS: "DataTime has 17 digits (milliseconds)",
    Q_DT_NO_S: "DataTime has 12 digits (no seconds)",
    Q_REPEATED_FLAG: "one code repeats the same Flag (after Rtd and after ZsRtd)",
    Q_NO_QN: "the header has no QN (HJ 212-2005 style)",
    Q_NO_FLAG: "the header has no Flag (HJ 212-2005 style)",
    Q_QN_NO_MS: "QN has 14 digits (no milliseconds)",
}
"""Field quirks by the fixed name recorded as an irregularity (see the module docstring)."""


def quirks_of(irregularities: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The named field quirks among a frame's irregularities."""
    return tuple(name for i in irregularities if (name := irregularity_name(i)) in QUIRKS)


class Hj212Codec:
    """Decodes one HJ 212-2017 data frame (CN 2011, 2051, 2061 or 2031)."""

    name = "hj212"

    def decode(self, payload: bytes, *, site: str, device: str) -> Decoded:
        check_target(site, device)
        irregular: list[str] = []
        segment = _unframe(payload, irregular)
        header, cp = _split_segment(segment, irregular)
        cn = header.get("CN")
        if cn is None:
            raise DecodeError("missing_cn", "data segment has no CN")
        if cn not in _LAYOUTS:
            what = _CN_NAMES.get(cn, "not a data upload")
            raise DecodeError(
                "not_data", f"CN={cn[:16]} ({what}); data CNs are {', '.join(DATA_CNS)}"
            )
        _header_quirks(header, irregular)
        readings = _readings(cp, _LAYOUTS[cn], site, device, irregular)
        meta = {key: header[key] for key in _META_FIELDS if key in header}
        return Decoded(
            readings=readings,
            irregularities=unique(irregular),
            meta=meta,
            password=header.get("PW"),
        )


def _header_quirks(header: dict[str, str], irregular: list[str]) -> None:
    qn = header.get("QN")
    if qn is None:
        irregular.append(Q_NO_QN)
    elif _QN14_RE.fullmatch(qn):
        irregular.append(Q_QN_NO_MS)
    if "Flag" not in header:
        irregular.append(Q_NO_FLAG)


def _unframe(payload: bytes, irregular: list[str]) -> str:
    """Check header, length and CRC (HJ 212-2017, 6.3); return the data segment."""
    if len(payload) > MAX_PAYLOAD:
        raise DecodeError("too_large", f"{len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DecodeError("not_ascii", f"byte {exc.start} is not ASCII") from None
    body = text.strip(_WHITESPACE)
    if text and text[0] in _WHITESPACE:
        irregular.append("leading whitespace")
    tail = text[len(text.rstrip(_WHITESPACE)) :]
    if not tail:
        irregular.append(Q_NO_CRLF)
    elif tail != "\r\n":
        irregular.append(irregularity(Q_OTHER_END, repr(tail[:8])))
    if not body.startswith("##"):
        raise DecodeError("bad_header", f"frame starts {body[:8]!r}, not '##'")
    if len(body) < 6:
        raise DecodeError("truncated", f"{len(body)} characters, no room for the length field")
    digits, rest = body[2:6], body[6:]
    if not _LENGTH_RE.fullmatch(digits):
        raise DecodeError("bad_length", f"length field {digits!r} is not 4 decimal digits")
    length = int(digits)
    if len(rest) != length + 4:
        if len(rest) > 4 and _crc_matches(rest[:-4], rest[-4:]):
            # The CRC over everything between the length field and the last 4 characters proves
            # the segment intact: the logger counted its length wrong.
            irregular.append(irregularity(Q_LENGTH, f"said {digits}, counted {len(rest) - 4:04d}"))
            length = len(rest) - 4
        elif len(rest) < length + 4:
            raise DecodeError(
                "truncated",
                f"length field {length} needs {length + 4} characters, {len(rest)} came",
            )
        else:
            raise DecodeError(
                "bad_length", f"length field {length} but segment has {len(rest) - 4}"
            )
    segment, crc_text = rest[:length], rest[length:]
    if not _crc_matches(segment, crc_text):
        raise DecodeError(
            "bad_crc", f"CRC {crc_text!r}, data segment gives {crc16(segment.encode()):04X}"
        )
    if crc_text != crc_text.upper():
        irregular.append(Q_LOWER_CRC)
    return segment


def _crc_matches(segment: str, crc_text: str) -> bool:
    return bool(_CRC_RE.fullmatch(crc_text)) and int(crc_text, 16) == crc16(segment.encode())


def _split_segment(segment: str, irregular: list[str]) -> tuple[dict[str, str], str]:
    """Header fields (``QN=...;`` up to ``CP``) and the text between ``CP=&&`` and ``&&``."""
    start = segment.find("CP=&&")
    if start < 0 or len(segment) < start + 7 or not segment.endswith("&&"):
        raise DecodeError("bad_segment", "data segment does not end in CP=&&...&&")
    head = segment[:start]
    if head and not head.endswith(";"):
        raise DecodeError("bad_segment", f"field before CP is not ';'-terminated: {head[-16:]!r}")
    header: dict[str, str] = {}
    for item in head[:-1].split(";") if head else ():
        key, value = _key_value(item, "header")
        name = _canonical(key, _HEADER_FIELDS, "header field", irregular)
        if name is None:
            irregular.append(irregularity("unknown header field", repr(key[:32])))
        elif name in header:
            raise DecodeError("duplicate_field", f"header field {name} appears twice")
        else:
            header[name] = value
    return header, segment[start + 5 : -2]


def _readings(
    cp: str, layout: dict[str, str], site: str, device: str, irregular: list[str]
) -> tuple[Reading, ...]:
    """Readings from the CP of a data frame: ``DataTime=...;code-Field=value,...;...``."""
    datatime: str | None = None
    by_code: dict[str, dict[str, str]] = {}
    if cp.endswith(";"):
        irregular.append(Q_TRAILING_SEP)
        cp = cp[:-1]
    for item in cp.split(";"):
        if not item:
            irregular.append("empty CP item")
            continue
        for part in item.split(","):
            key, value = _key_value(part, "CP")
            if key != key.strip(_WHITESPACE) or value != value.strip(_WHITESPACE):
                irregular.append(Q_SPACES)
                key, value = key.strip(_WHITESPACE), value.strip(_WHITESPACE)
            code, dash, field = key.rpartition("-")
            if not dash:
                if _canonical(key, _CP_FIELDS, "CP field", irregular) is None:
                    irregular.append(irregularity("ignored CP field", repr(key[:32])))
                elif datatime is not None:
                    raise DecodeError("duplicate_field", "DataTime appears twice")
                else:
                    datatime = value
                continue
            name = _canonical(field, _VALUE_FIELDS, "field", irregular) or field
            fields = by_code.setdefault(code, {})
            if name == "Flag" and fields.get(name, "").upper() == value.upper() != "":
                # One flag after each of a code's values (Rtd, ZsRtd), all alike: unambiguous.
                irregular.append(Q_REPEATED_FLAG)
                continue
            if name in fields:
                raise DecodeError("duplicate_field", f"{key[:48]} appears twice")
            fields[name] = value
    if not by_code:
        raise DecodeError("no_data", "CP holds no pollutant values")
    ts = _datatime(datatime, irregular)
    readings: list[Reading] = []
    sources: dict[str, str] = {}
    for code, fields in by_code.items():
        metric, base = _metric_for(code, irregular)
        flag = parse_flag(fields["Flag"], code, irregular) if "Flag" in fields else "N"
        for field, raw in fields.items():
            if field not in layout:
                if field != "Flag" and field not in _SILENT_FIELDS:
                    irregular.append(irregularity("ignored field", f"{code}-{field[:32]}"))
                continue
            name = base + layout[field]
            if name in sources:
                # Two codes for one metric (e.g. a21026 and SO2): which value holds is a guess.
                raise DecodeError("duplicate_field", f"{name} given by {sources[name]} and {code}")
            sources[name] = code
            unit = _cou_unit(metric) if field == "Cou" else (metric.unit if metric else "")
            number = _number(f"{code}-{field}", raw)
            readings.append(Reading(site, device, name, number, unit, ts, flag))
    if not readings:
        raise DecodeError("no_data", "CP holds no value fields for this CN")
    return tuple(readings)


def _key_value(item: str, where: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise DecodeError("bad_segment", f"{where} item {item[:40]!r} is not key=value")
    return key, value


def _canonical(key: str, known: tuple[str, ...], what: str, irregular: list[str]) -> str | None:
    """The standard spelling of ``key``; other letter case is unambiguous and only noted."""
    if key in known:
        return key
    for name in known:
        if key.lower() == name.lower():
            irregular.append(irregularity("letter case", f"{what} {key!r} written for {name!r}"))
            return name
    return None


def _metric_for(code: str, irregular: list[str]) -> tuple[Metric | None, str]:
    metric = by_hj212_code(code)
    if metric is not None:
        if code.casefold() == (metric.hj212 or "").casefold():
            if code != metric.hj212:
                irregular.append(irregularity("letter case", f"code {code!r} for {metric.hj212!r}"))
        else:
            irregular.append(irregularity("2005-style code", code))
        return metric, metric.name
    if not _CODE_RE.fullmatch(code):
        raise DecodeError("bad_code", f"pollutant code {code[:40]!r} is not alphanumeric")
    irregular.append(irregularity("unknown code", code))
    return None, code.lower()


def _cou_unit(metric: Metric | None) -> str:
    """Unit of ``Cou``, the emission summed over the period (HJ 212-2017 data tables): volume
    for a flow code, mass in kg for a pollutant measured as a concentration, else unknown."""
    if metric is None:
        return ""
    if metric.name in _FLOW_METRICS:
        return "m3"
    return "kg" if metric.unit.endswith(("/m3", "/L")) else ""


def _number(where: str, raw: str) -> float:
    # float() alone would also take "nan", "inf", "1_0" and padded text: all corruption here.
    if not _NUMBER_RE.fullmatch(raw):
        raise DecodeError("bad_value", f"{where}={raw[:40]!r} is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise DecodeError("bad_value", f"{where}={raw[:40]!r} is out of range")
    return value


def _datatime(raw: str | None, irregular: list[str]) -> datetime:
    """CP DataTime is Beijing local time, YYYYMMDDhhmmss; returned in UTC.

    Loggers also send 17 digits (milliseconds, kept) and 12 (no seconds): both are unambiguous.
    """
    if raw is None:
        raise DecodeError("bad_datatime", "CP has no DataTime")
    if not _DATATIME_RE.fullmatch(raw):
        raise DecodeError("bad_datatime", f"DataTime {raw[:40]!r} is not YYYYMMDDhhmmss")
    if len(raw) != 14:
        irregular.append(Q_DT_MS if len(raw) == 17 else Q_DT_NO_S)
    try:
        if len(raw) == 12:
            local = datetime.strptime(raw, "%Y%m%d%H%M")
        else:
            local = datetime.strptime(raw[:14], "%Y%m%d%H%M%S")
        if len(raw) == 17:
            local = local.replace(microsecond=int(raw[14:]) * 1000)
        return local.replace(tzinfo=BEIJING).astimezone(UTC)
    except (ValueError, OverflowError):
        raise DecodeError("bad_datatime", f"DataTime {raw} is not a valid time") from None
