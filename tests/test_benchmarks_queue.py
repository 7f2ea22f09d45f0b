"""Smoke test of benchmarks/queue.py: runs at tiny sizes and prints its figure last."""

from __future__ import annotations

import re

from tests.benchmark_runs import run_benchmark

LAST = re.compile(
    r"^queue: (?P<rate>[\d,]+) signals/s through dedup"
    r" \(bare insert (?P<bare>[\d,]+)/s, ratio (?P<ratio>[\d.]+)\); "
    r"list p95 (?P<p95>[\d.]+) ms \(p50 (?P<p50>[\d.]+) ms\) over (?P<n>[\d,]+) alerts; "
    r"outbox (?P<outbox>[\d,]+) events/s \(bare POST (?P<post>[\d,]+)/s\) \(sqlite\)$"
)


def test_queue_benchmark_prints_its_figure_last() -> None:
    out = run_benchmark(
        "queue.py", "--alerts", "2000", "--signals", "500", "--requests", "40", timeout=120
    )
    last = out[-1]
    m = LAST.match(last)
    assert m, last
    assert float(m["rate"].replace(",", "")) > 0
    assert float(m["bare"].replace(",", "")) > 0
    assert float(m["ratio"]) > 0
    assert 0 < float(m["p50"]) <= float(m["p95"])
    assert m["n"] == "2,000"
    assert float(m["outbox"].replace(",", "")) > 0 and float(m["post"].replace(",", "")) > 0
