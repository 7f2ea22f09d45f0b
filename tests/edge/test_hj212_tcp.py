"""HJ 212 over TCP: loggers push frames; the gateway buffers them and answers as HJ 212-2017
requires."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from edge.buffer import Buffer
from edge.collectors.hj212_tcp import Hj212TcpCollector, parse_header
from edge.config import BufferSettings, Hj212TcpSettings
from farsight.hj212 import build_data_frame, split_stream, wrap
from simulators.gateway_site import Hj212Logger
from tests.factories import T0

MN = "42050000000001"


@pytest.fixture
def collector(tmp_path: Path):
    buf = Buffer(tmp_path / "b.db", BufferSettings())
    col = Hj212TcpCollector(
        "gw-1",
        Hj212TcpSettings(
            enabled=True,
            host="127.0.0.1",
            port=0,
            devices={MN: {"dept": "env", "site": "yc-stack-1", "device": "cems1"}},
        ),
        buf,
    )
    col.start()
    yield col
    col.stop()
    buf.close()


def _exchange(port: int, data: bytes, expect: int, timeout: float = 5.0) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got, rest = [], b""
        while len(got) < expect:
            chunk = s.recv(4096)
            if not chunk:
                break
            frames, rest = split_stream(rest + chunk)
            got += frames
        return got


def test_a_frame_asking_for_a_response_gets_9014_with_its_qn_after_it_is_buffered(
    collector,
) -> None:
    frame = build_data_frame(mn=MN, ts=T0, values={"a21026": {"Rtd": 12.5, "Flag": "N"}}, flag=5)
    [reply] = _exchange(collector.port, frame, 1)
    h = parse_header(reply)  # a well-formed frame: length and CRC check out
    assert h is not None
    assert (h.cn, h.st, h.mn, h.qn, h.flag) == ("9014", "91", MN, parse_header(frame).qn, 4)
    rows = collector.buffer.read(0, 10)
    assert [(r.topic, r.payload) for r in rows] == [("fs/v1/env/yc-stack-1/cems1/hj212", frame)]


def test_no_response_unless_asked_and_none_for_a_corrupt_frame_which_is_still_kept(
    collector,
) -> None:
    plain = build_data_frame(mn=MN, ts=T0, values={"a21026": {"Rtd": 1}}, flag=4)
    asked = build_data_frame(mn=MN, ts=T0, values={"a21026": {"Rtd": 2}}, flag=5)
    corrupt = asked[:-6] + b"0000\r\n"  # wrong CRC
    # Three frames in one TCP segment, line noise between them: one answer, for the second.
    replies = _exchange(collector.port, b"noise" + plain + corrupt + asked, 1)
    assert len(replies) == 1 and parse_header(replies[0]).qn == parse_header(asked).qn
    assert [r.payload for r in collector.buffer.read(0, 10)] == [plain, corrupt, asked]
    assert collector.corrupt == 1


def test_a_notification_gets_9013_and_an_unknown_mn_is_not_answered(collector) -> None:
    notice = wrap(
        f"QN=20261125080000000;ST=31;CN=2081;PW=123456;MN={MN};Flag=5;CP=&&RestartTime=20261125075900&&"
    )
    [reply] = _exchange(collector.port, notice, 1)
    assert parse_header(reply).cn == "9013"
    stranger = build_data_frame(mn="99999999999999", ts=T0, values={"a21026": {"Rtd": 1}}, flag=5)
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as s:
        s.sendall(stranger)
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(100)
    assert collector.unrouted == 1


def test_the_logger_simulator_counts_answered_frames(collector) -> None:
    logger = Hj212Logger("127.0.0.1", collector.port, MN)
    for _ in range(20):
        logger.send_next()
    logger.close()
    assert logger.sent == 20 and collector.buffer.depth == 20


def test_frames_without_crlf_or_with_a_bare_lf_are_all_kept(collector) -> None:
    # Field loggers end frames in LF or in nothing; the last frame of a connection that ends
    # without line end is taken when the logger hangs up.
    one = build_data_frame(mn=MN, ts=T0, values={"a21026": {"Rtd": 1}}, flag=4)
    two = build_data_frame(mn=MN, ts=T0, values={"a21026": {"Rtd": 2}}, flag=4)
    three = build_data_frame(mn=MN, ts=T0, values={"a21026": {"Rtd": 3}}, flag=4)
    sent = [one[:-2] + b"\n", two[:-2], three[:-2]]
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as s:
        s.sendall(b"".join(sent))
    deadline = time.monotonic() + 10
    while collector.buffer.depth < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.payload for r in collector.buffer.read(0, 10)] == sent
