"""Smoke test of benchmarks/queue.py: runs at tiny sizes and prints its figure last."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

LAST = re.compile(
    r"^queue: (?P<rate>[\d,]+) signals/s through dedup"
    r" \(bare insert (?P<bare>[\d,]+)/s, ratio (?P<ratio>[\d.]+)\); "
    r"list p95 (?P<p95>[\d.]+) ms \(p50 (?P<p50>[\d.]+) ms\) over (?P<n>[\d,]+) alerts; "
    r"outbox (?P<outbox>[\d,]+) events/s \(bare POST (?P<post>[\d,]+)/s\) \(sqlite\)$"
)


def test_queue_benchmark_prints_its_figure_last() -> None:
    python = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
    proc = subprocess.run(
        [
            str(python),
            str(ROOT / "benchmarks" / "queue.py"),
            "--alerts",
            "2000",
            "--signals",
            "500",
            "--requests",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    m = LAST.match(last)
    assert m, last
    assert float(m["rate"].replace(",", "")) > 0
    assert float(m["bare"].replace(",", "")) > 0
    assert float(m["ratio"]) > 0
    assert 0 < float(m["p50"]) <= float(m["p95"])
    assert m["n"] == "2,000"
    assert float(m["outbox"].replace(",", "")) > 0 and float(m["post"].replace(",", "")) > 0
