"""Smoke test of benchmarks/rs_accuracy.py: at a tiny size it scores the simulator pairs and the
real sets (a labelled pair on a real background, a real no-change pair) and prints the figure
last, with both."""

from __future__ import annotations

import re

from tests.benchmark_runs import run_benchmark

LAST = re.compile(
    r"^rs_accuracy: sim F1 (?P<sim>[\d.]+) \(baseline (?P<sim_base>[\d.]+)\),"
    r" (?P<sim_fp>[\d.]+) FP/100km2; real F1 (?P<real>[\d.]+) \(baseline (?P<real_base>[\d.]+)\),"
    r" (?P<real_fp>[\d.]+) FP/100km2 \(baseline [\d.]+\), real no-change (?P<quiet>\d+) regions"
    r" \(baseline (?P<quiet_base>\d+)\) \[index\]$"
)


def test_rs_accuracy_benchmark_prints_sim_and_real_figures_last() -> None:
    args = ["--pairs", "1", "--quiet-pairs", "1", "--size", "320"]
    args += ["--real-pairs", "1", "--real-quiet", "1", "--real-size", "256"]
    args += ["--real-methods", "index"]
    out = run_benchmark("rs_accuracy.py", *args, timeout=120)
    m = LAST.match(out[-1])
    assert m, out[-1]
    for key in ("sim", "sim_base", "real", "real_base"):
        assert 0.0 <= float(m[key]) <= 1.0
    # The breakdown above the figure: the labelled pair's background, the no-change pair, and
    # the totals of the detector and of the baseline.
    text = "\n".join(out)
    assert re.search(r"^real pair l8-224077@200,300 seed=1: \d+ changes", text, re.MULTILINE)
    assert re.search(
        r"^real no-change l8-overlap@120,0: regions index=\d+ baseline=\d+$", text, re.MULTILINE
    )
    assert re.search(r"^real index +object F1 [\d.]+ \(P", text, re.MULTILINE)
    assert re.search(r"^real baseline object F1 [\d.]+ \(P", text, re.MULTILINE)
    # The CVA+Otsu baseline has no cloud mask and no normalisation: on the real same-day overlap
    # it finds false regions, which is what the figure compares against.
    assert int(m["quiet_base"]) > 0
