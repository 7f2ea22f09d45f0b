"""Rule engine throughput, engine alone on one core: 10,000 sites x 5 metrics, 20,000 rule
instances (two rules per site: one on each of two metrics, so 2 readings in 5 meet a rule and
3 take the no-rule path, as in a real registry where most metrics carry no limit), readings fed
in batches of 500 as ingest does; rule evaluations per second are printed too. Prints readings/s for
threshold rules and for windowed aggregates, and memory per
rule instance. The last line printed is the figure.

    .venv/bin/python benchmarks/rules.py [--sites 10000] [--steps 10]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rules.kinds  # noqa: F401  # built-in kinds register on import
from farsight.credit import make_credit_code
from farsight.registry import parse_registry
from farsight.types import Reading
from rules.engine import Engine
from rules.loader import parse_ruleset
from rules.registry import RULE_KINDS

T0 = datetime(2026, 11, 25, tzinfo=UTC)
METRICS = ("so2", "nox", "particulate", "o2", "flue_flow")
ENTITY = make_credit_code("91420500MA4900001")


def registry(n: int):
    sites = [
        {
            "id": f"s{i:05d}",
            "name": f"site {i}",
            "department": "env",
            "entity_id": ENTITY,
            "location": {"lon": 111.0 + (i % 100) / 100, "lat": 30.0 + (i // 100) / 1000},
            "kind": "stack",
            "limits": {"so2": 35, "nox": 50},
            "devices": [{"id": "cems1", "kind": "cems", "metrics": list(METRICS)}],
        }
        for i in range(n)
    ]
    return parse_registry({"sites": sites})


THRESHOLD = {
    "rules": [
        {
            "id": "so2",
            "select": {"metric": "so2", "device_kind": "cems"},
            "threshold": "site_limit",
            "for": "5m",
            "severity": "major",
        },
        {
            "id": "nox",
            "select": {"metric": "nox", "device_kind": "cems"},
            "threshold": "site_limit",
            "for": "5m",
            "severity": "major",
        },
    ]
}
WINDOW = {
    "rules": [
        {
            "id": "so2-5min",
            "kind": "window",
            "select": {"metric": "so2", "device_kind": "cems"},
            "window": "5m",
            "agg": "avg",
            "threshold": "site_limit",
            "severity": "major",
        },
        {
            "id": "nox-5min",
            "kind": "window",
            "select": {"metric": "nox", "device_kind": "cems"},
            "window": "5m",
            "agg": "avg",
            "threshold": "site_limit",
            "severity": "major",
        },
    ]
}


def readings(n_sites: int, steps: int) -> list[Reading]:
    out = []
    for k in range(steps):
        ts = T0 + timedelta(minutes=k)
        for i in range(n_sites):
            site = f"s{i:05d}"
            for j, m in enumerate(METRICS):
                # Every 50th site runs over its limits, so alerts fire and state really moves.
                v = 80.0 if (i % 50 == 0 and j < 2) else 10.0 + (i + k + j) % 20
                out.append(Reading(site, "cems1", m, v, "mg/m3", ts))
    return out


def run(doc: dict, reg, data: list[Reading]) -> tuple[float, int, float, int]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    engine = Engine(parse_ruleset(doc), reg)
    # Bind every instance with the first step so memory per instance is measured apart.
    first = len(reg) * len(METRICS)
    engine.evaluate(data[:first])
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    mem = sum(s.size_diff for s in after.compare_to(before, "filename"))
    instances = len(engine._instances)
    rest = data[first:]
    t = time.perf_counter()
    signals = 0
    evaluated = engine.stats.evaluated
    for i in range(0, len(rest), 500):
        signals += len(engine.evaluate(rest[i : i + 500]))
    elapsed = time.perf_counter() - t
    print(
        f"  {(engine.stats.evaluated - evaluated) / elapsed:,.0f} rule evaluations/s (verdicts"
        " judged)"
    )
    return len(rest) / elapsed, instances, mem / max(instances, 1), signals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=16)
    args = ap.parse_args()
    reg = registry(args.sites)
    data = readings(args.sites, args.steps)
    rate_t, inst_t, mem_t, sig_t = run(THRESHOLD, reg, data)
    print(
        f"threshold: {rate_t:,.0f} readings/s, {inst_t} rule instances, {mem_t:,.0f} bytes per"
        f" instance, {sig_t} signals"
    )
    line = f"rules: {rate_t:,.0f} readings/s threshold"
    if "window" in RULE_KINDS:
        rate_w, inst_w, mem_w, sig_w = run(WINDOW, reg, data)
        print(
            f"window (5 min avg, closing every 5 readings): {rate_w:,.0f} readings/s, {inst_w} rule"
            f" instances, {mem_w:,.0f} bytes per instance, {sig_w} signals"
        )
        line += f", {rate_w:,.0f} readings/s windowed (5 min avg)"
    print(f"{line}; {args.sites} sites x {len(METRICS)} metrics, {inst_t} instances, one core")


if __name__ == "__main__":
    main()
