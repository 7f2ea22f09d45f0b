"""HJ 212-2017 wire format: CRC16, frame building and frame splitting.

The liberal parser that turns frames into readings lives in ``ingest/codecs/hj212.py``; this
module holds what simulators, the ingest codec and the edge gateway's TCP server all need.

A frame is ``##`` + 4-digit decimal length of the data segment + data segment + 4 hex digits
of CRC16 over the data segment only + CRLF (HJ 212-2017, 6.3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from farsight.clock import BEIJING

CN_REALTIME = "2011"
CN_MINUTE = "2051"
CN_HOURLY = "2061"
CN_DAILY = "2031"
DATA_CNS = {CN_REALTIME: "rtd", CN_MINUTE: "1m", CN_HOURLY: "1h", CN_DAILY: "1d"}


def _crc_table() -> tuple[int, ...]:
    """The eight shifts of :func:`crc16` applied to each possible low byte.

    The shifts are linear over GF(2) and the high byte only moves down without a carry, so
    eight shifts of a 16-bit value ``v`` equal ``(v >> 8) ^ table[v & 0xFF]``: one lookup per
    byte instead of eight conditional XORs (a frame's CRC is checked on every message).
    """
    table = []
    for low in range(256):
        crc = low
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """HJ 212 CRC16: init 0xFFFF; ``crc = (crc >> 8) ^ byte``, then 8 shifts right with XOR
    0xA001 whenever the bit shifted out is 1 (HJ 212-2017, appendix A)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ byte
        crc = (crc >> 8) ^ table[crc & 0xFF]
    return crc


def wrap(segment: str) -> bytes:
    """Frame a data segment: header, length, segment, CRC and CRLF."""
    body = segment.encode("utf-8")
    if len(body) > 9999:
        raise ValueError(f"data segment of {len(body)} bytes exceeds the 4-digit length field")
    return b"##" + f"{len(body):04d}".encode() + body + f"{crc16(body):04X}".encode() + b"\r\n"


def format_qn(ts: datetime) -> str:
    """QN request number: Beijing time YYYYMMDDhhmmsszzz."""
    local = ts.astimezone(BEIJING)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def format_datatime(ts: datetime) -> str:
    """CP DataTime: Beijing time YYYYMMDDhhmmss."""
    return ts.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def build_data_frame(
    *,
    mn: str,
    ts: datetime,
    values: Mapping[str, Mapping[str, object]],
    st: str = "31",
    cn: str = CN_REALTIME,
    pw: str = "123456",
    flag: int = 4,
    qn: datetime | None = None,
) -> bytes:
    """Build one data upload frame.

    Parameters
    ----------
    mn, st, cn, pw, flag
        Header fields (device id, system code, command code, password, frame flag).
    ts
        The data time; written as Beijing local time in ``DataTime``.
    values
        Per pollutant code, its fields without the code prefix, e.g.
        ``{"a21026": {"Rtd": 35.2, "Flag": "N"}}``.
    qn
        Request time for ``QN``; defaults to ``ts``.
    """
    items: list[str] = []
    for code, fields in values.items():
        items.append(",".join(f"{code}-{k}={_fmt(v)}" for k, v in fields.items()))
    cp = f"DataTime={format_datatime(ts)};" + ";".join(items)
    segment = f"QN={format_qn(qn or ts)};ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};CP=&&{cp}&&"
    return wrap(segment)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if not math.isnan(v) else "nan"
    return str(v)


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Split a TCP byte stream into frames; return frames and the remainder.

    A frame ends in CRLF, or as data loggers in the field also send: in a bare LF (kept, so the
    codec records it) or in nothing before the next ``##`` header. A remainder without line end
    may be a whole frame still (:func:`is_whole_frame`): a reader that sees the stream end should
    take it; while the stream is open its CRLF may be on the way. Bytes before a ``##`` header are
    dropped (line noise between frames).
    """
    frames: list[bytes] = []
    while True:
        start = buffer.find(b"##")
        if start < 0:
            return frames, b"" if len(buffer) < 2 else buffer[-1:]
        end = buffer.find(b"\n", start)
        following = buffer.find(b"##", start + 2)
        if following >= 0 and (end < 0 or following < end):
            frames.append(buffer[start:following])
            buffer = buffer[following:]
            continue
        if end < 0:
            return frames, buffer[start:]
        frames.append(buffer[start : end + 1])
        buffer = buffer[end + 1 :]


def is_whole_frame(data: bytes) -> bool:
    """``##`` + length + segment ending ``&&`` + a CRC of the segment, whatever the length says."""
    if len(data) < 12 or data[-6:-4] != b"&&":
        return False
    try:
        return int(data[-4:], 16) == crc16(data[6:-4])
    except ValueError:
        return False
