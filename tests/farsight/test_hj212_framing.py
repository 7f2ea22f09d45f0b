"""Splitting a data logger's TCP stream into frames, with the line ends the field sends."""

from __future__ import annotations

from datetime import UTC, datetime

from farsight.hj212 import build_data_frame, is_whole_frame, split_stream

TS = datetime(2026, 11, 25, tzinfo=UTC)
A = build_data_frame(mn="M1", ts=TS, values={"a21026": {"Rtd": 1.5}})
B = build_data_frame(mn="M2", ts=TS, values={"a21026": {"Rtd": 2.5}})


def test_crlf_frames_split_and_an_unfinished_one_waits() -> None:
    assert split_stream(b"noise" + A + B[:20]) == ([A], B[:20])
    assert split_stream(B[:20] + B[20:]) == ([B], b"")


def test_lf_only_frames_split_at_the_lf_and_keep_it() -> None:
    a, b = A[:-2] + b"\n", B[:-2] + b"\n"
    assert split_stream(a + b) == ([a, b], b"")


def test_frames_without_line_end_split_at_the_next_header() -> None:
    a, b = A[:-2], B[:-2]
    frames, rest = split_stream(a + b + A[:10])
    assert frames == [a, b] and rest == A[:10]


def test_a_frame_without_line_end_at_the_end_of_the_stream_is_recognised_whole() -> None:
    # While the stream is open its CRLF may still come; when the logger hangs up, it is whole.
    assert split_stream(A[:-2]) == ([], A[:-2])
    assert is_whole_frame(A[:-2])
    assert is_whole_frame(A[:-6] + A[-6:-2].lower())


def test_a_frame_cut_short_or_with_a_wrong_crc_is_not_whole() -> None:
    assert not is_whole_frame(A[:-4])
    assert not is_whole_frame(A[:-6] + b"0000")
    assert not is_whole_frame(A[:-6] + b"zzzz")
    assert not is_whole_frame(b"##0001")
