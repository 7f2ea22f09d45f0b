"""The decode CLI, run as a real process over a file of good and bad payload lines."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farsight.hj212 import CN_HOURLY, build_data_frame
from ingest.decode_cli import add_decode_parser, run_decode

ROOT = Path(__file__).resolve().parents[2]
TS = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
FRAME = build_data_frame(mn="010000A8900016F000169DC0", ts=TS, values={"a21026": {"Rtd": 35.2}})
HOURLY = build_data_frame(
    mn="MN 2", ts=TS, cn=CN_HOURLY, values={"a34004": {"Avg": 40, "Flag": "M"}}
)


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest.decode_cli", *args],
        check=False,
        cwd=ROOT,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hj212_file_with_good_and_bad_lines(tmp_path: Path) -> None:
    corrupt = FRAME.replace(b"35.2", b"35.3")
    lines = [FRAME, b"\n", corrupt, HOURLY.rstrip(b"\r\n") + b"\n", b"not a frame\n"]
    source = tmp_path / "capture.hj212"
    source.write_bytes(b"".join(lines))

    done = run_cli("--codec", "hj212", "--site", "plant-7", str(source))

    assert done.returncode == 1
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"site": "plant-7", "device": "010000A8900016F000169DC0", "metric": "so2", "value": 35.2,
         "unit": "mg/m3", "ts": "2026-11-25T00:00:00+00:00", "flag": "N", "seq": None},
        {"site": "plant-7", "device": "MN_2", "metric": "pm25.avg_1h", "value": 40.0,
         "unit": "ug/m3", "ts": "2026-11-25T00:00:00+00:00", "flag": "M", "seq": None},
    ]  # fmt: skip
    errors = done.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("line 3: REJECT bad_crc: ")
    assert errors[1].startswith("line 5: REJECT bad_header: ")


def test_json_from_stdin_with_explicit_device_and_all_good() -> None:
    payloads = [
        {"ts": "2026-11-25T08:00:00+08:00", "metrics": {"pm25": 35.2}, "seq": 1},
        {"ts": 1_795_564_860_000, "metrics": {"pm10": 50, "o3": 80}, "flags": {"o3": "C"}},
    ]
    stdin = "\r\n".join(json.dumps(p) for p in payloads).encode()

    done = run_cli("--codec", "json", "--site", "s1", "--device", "aqm-1", "-", stdin=stdin)

    assert (done.returncode, done.stderr) == (0, "")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["device"], r["metric"], r["value"], r["flag"], r["seq"], r["ts"]) for r in rows] == [
        ("aqm-1", "pm25", 35.2, "N", 1, "2026-11-25T00:00:00+00:00"),
        ("aqm-1", "pm10", 50.0, "N", None, "2026-11-25T00:01:00+00:00"),
        ("aqm-1", "o3", 80.0, "C", None, "2026-11-25T00:01:00+00:00"),
    ]


def test_json_rejects_and_default_device(tmp_path: Path) -> None:
    source = tmp_path / "readings.jsonl"
    source.write_text('{"ts": "2026-11-25T08:00:00", "metrics": {"pm25": 1}}\n'
                      '{"ts": 1795564800000, "metrics": {"pm25": 1}}\n')  # fmt: skip

    done = run_cli("--codec", "json", str(source))

    assert done.returncode == 1
    assert json.loads(done.stdout)["device"] == "unknown"
    assert done.stderr.splitlines()[0].startswith("line 1: REJECT naive_ts: ")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("--codec", "xml", "-").returncode == 2
    assert run_cli("--codec", "json", "--site", "bad site", "-").returncode == 2
    missing = run_cli("--codec", "json", str(tmp_path / "absent"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_run_decode_in_process_with_a_stream() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run_decode("hj212", io.BytesIO(FRAME + b"##0000\r\n"), out=out, err=err, device="cems")
    assert status == 1
    assert json.loads(out.getvalue())["device"] == "cems"
    assert err.getvalue() == "line 2: REJECT truncated: length field 0 needs 4 characters, 0 came\n"


def test_add_decode_parser_wires_a_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "one.hj212"
    source.write_bytes(FRAME)
    parser = argparse.ArgumentParser(prog="farsight")
    add_decode_parser(parser.add_subparsers(dest="command", required=True))

    args = parser.parse_args(["decode", "--codec", "hj212", str(source), "--site", "s1"])

    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["site"] == "s1"
