"""Smoke test of benchmarks/rs_confirmation.py: runs at a tiny size and prints its figure last."""

from __future__ import annotations

import re

from tests.benchmark_runs import run_benchmark

POLICY = re.compile(
    r"(?P<policy>first_later|\d+of\d+) P (?P<p>[\d.]+) R (?P<r>[\d.]+) latency (?P<lat>\d+|nan)"
)


def test_rs_confirmation_benchmark_prints_its_figure_last() -> None:
    out = run_benchmark(
        "rs_confirmation.py",
        "--aois",
        "1",
        "--quiet-aois",
        "1",
        "--visits",
        "3",
        "--policies",
        "first_later,1of2,2of3",
        timeout=300,
    )
    last = out[-1]
    assert last.startswith("rs_confirmation: "), last
    parts = last.removeprefix("rs_confirmation: ").split("; ")
    found = [POLICY.fullmatch(p) for p in parts]
    assert all(found), parts
    by = {m["policy"]: m for m in found if m}
    assert list(by) == ["first_later", "1of2", "2of3"]
    for m in by.values():
        assert 0 <= float(m["p"]) <= 1 and 0 <= float(m["r"]) <= 1
    # The simulated changes persist and are seen: the first later sighting confirms most of
    # them, one scene after they appear; 2 of 3 waits a scene longer.
    assert float(by["first_later"]["r"]) >= 0.5 and by["first_later"]["lat"] == "1"
    assert by["2of3"]["lat"] in ("2", "nan")
