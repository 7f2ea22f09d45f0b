"""Revisit confirmation policies on simulated revisit series: confirmed precision, recall, latency.

Writes ``--aois`` simulator revisit series with changes of every kind (and ``--quiet-aois``
without change), each a reference scene and ``--visits`` later scenes ten days apart with fresh
clouds (most dates light, about one in three heavy), crop phenology, seasonal gain and noise, the
changes persisting. As ``farsight rs watch`` does, every later scene is compared with the
reference through the real pipeline (``remote_sensing.pipeline.detect_pair``), and the regions of
each pair go through ``remote_sensing.revisits.update`` under each policy, with the pair's
observed footprint (``remote_sensing.footprint.observer``) telling which tracks it looked at.

Scored at the end of each series, on the tracks that reached ``confirmed``, with the object
matching of ``benchmarks/rs_accuracy.py`` (IoU >= 0.3 or holding the truth's centroid):

* precision: confirmed tracks matching a counted truth change over confirmed tracks (tracks that
  match only uncounted changes are left out); on the series without change every confirmed track
  is false;
* recall: counted truth changes matched by a confirmed track. A change is counted when it is at
  least half free of cloud and shadow on the reference and on at least two later dates (a change
  seen once can be confirmed by no policy);
* latency: median over the found changes of the later scenes from the first one it was visible
  in to the one that confirmed it (1: the next scene).

    .venv/bin/python benchmarks/rs_confirmation.py [--aois 12] [--quiet-aois 4] [--visits 6]
    [--size 384] [--first-seed 1] [--policies first_later,1of2,1of3,2of3,2of4,3of4]

The last line printed is the figure.
"""

from __future__ import annotations

import os
import sys

# benchmarks/queue.py shares its name with the standard library's queue module: this folder must
# not be first on the import path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from shapely.geometry import shape
from shapely.validation import make_valid

from remote_sensing.footprint import observed_share
from remote_sensing.pipeline import DetectOptions, PairResult, detect_pair
from remote_sensing.revisits import ConfirmationPolicy, Track, parse_policy, update
from simulators.scenes import SceneSeries, write_series


def _accuracy_module() -> Any:
    # The accuracy benchmark's spec and matching, so both count objects the same way.
    path = Path(__file__).resolve().with_name("rs_accuracy.py")
    spec = importlib.util.spec_from_file_location("rs_accuracy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ACC = _accuracy_module()
OBSERVED_SHARE = 0.5


@dataclass
class Score:
    """Counts of one policy summed over series."""

    truth: int = 0
    found: int = 0
    confirmed: int = 0
    correct: int = 0
    expired: int = 0
    latencies: list[int] = field(default_factory=list)

    def precision(self) -> float:
        return self.correct / self.confirmed if self.confirmed else 1.0

    def recall(self) -> float:
        return self.found / self.truth if self.truth else 1.0

    def latency(self) -> float:
        return float(statistics.median(self.latencies)) if self.latencies else float("nan")


def series_for(seed: int, size: int, visits: int, quiet: bool, out: Path) -> SceneSeries:
    """A revisit series on the accuracy benchmark's pair spec, with per-date cloud cover."""
    rng = np.random.default_rng([seed, 5151])
    covers = tuple(
        float(rng.uniform(0.2, 0.4)) if rng.random() < 0.33 else float(rng.uniform(0.0, 0.08))
        for _ in range(visits)
    )
    spec = replace(ACC.spec_for(seed, size, quiet), tile=128)
    return write_series(spec, out, visits, cloud_cover=covers)


def replay(
    policy: ConfirmationPolicy,
    results: list[PairResult],
    observed: list[dict[str, bool]],
    opts: DetectOptions,
) -> tuple[tuple[Track, ...], dict[str, int]]:
    """The series through ``update`` under ``policy``: the final tracks and the later scene
    (1-based) each confirmed track was confirmed in."""
    tracks: tuple[Track, ...] = ()
    confirmed_at: dict[str, int] = {}
    for v, (res, seen) in enumerate(zip(results, observed), start=1):

        def look(t: Track, res: PairResult = res, seen: dict[str, bool] = seen) -> bool:
            key = json.dumps(t.geometry, sort_keys=True)
            if key not in seen:
                seen[key] = observed_share(res, t.geometry, opts) >= OBSERVED_SHARE
            return seen[key]

        tracks, changes = update(tracks, res.regions, "aoi", res.after_time, policy, observed=look)
        for c in changes:
            if c.track.state == "confirmed":
                confirmed_at[c.track.id] = v
    return tracks, confirmed_at


def score_series(
    series: SceneSeries,
    tracks: tuple[Track, ...],
    confirmed_at: dict[str, int],
    score: Score,
    quiet: bool,
) -> None:
    """Add one series' confirmed tracks to ``score``."""
    confirmed = [t for t in tracks if t.state == "confirmed"]
    score.expired += sum(t.state == "expired" for t in tracks)
    if quiet:
        score.confirmed += len(confirmed)
        return
    truths = []
    for i, t in enumerate(series.changes):
        visible_in = [v for v, vis in enumerate(series.visible, start=1) if vis[i] >= 0.5]
        # The simulator's polygons can cross themselves (seed 103): repaired, as detections are.
        truths.append((make_valid(shape(t.geometry)), len(visible_in) >= 2, visible_in))
    outline = {t.id: make_valid(shape(t.geometry)) for t in confirmed}
    for t in confirmed:
        hits = [counted for g, counted, _ in truths if ACC._matches(outline[t.id], g)]
        if any(hits):
            score.correct += 1
        if any(hits) or not hits:
            score.confirmed += 1
    for g, counted, visible_in in truths:
        if not counted:
            continue
        score.truth += 1
        found = [t for t in confirmed if ACC._matches(outline[t.id], g)]
        if found:
            score.found += 1
            score.latencies.append(min(confirmed_at[t.id] for t in found) - visible_in[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--aois", type=int, default=12, help="series with changes")
    ap.add_argument("--quiet-aois", type=int, default=4, help="series without change")
    ap.add_argument("--visits", type=int, default=6, help="later scenes per series")
    ap.add_argument("--size", type=int, default=384, help="scene size in pixels (10 m)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=1, help="seed of the first series")
    ap.add_argument(
        "--policies",
        default="first_later,1of2,1of3,2of3,2of4,3of4",
        help="comma-separated policies (first_later or KofN)",
    )
    args = ap.parse_args(argv)
    policies = [parse_policy(p) for p in args.policies.split(",")]
    scores = {p: Score() for p in policies}
    opts = DetectOptions(workers=args.workers)
    t0 = time.perf_counter()
    t_detect = 0.0
    f = args.first_seed
    runs = [(s, False) for s in range(f, f + args.aois)] + [
        (1000 + s, True) for s in range(f, f + args.quiet_aois)
    ]
    with tempfile.TemporaryDirectory(prefix="rs-confirm-") as tmp:
        for seed, quiet in runs:
            series = series_for(seed, args.size, args.visits, quiet, Path(tmp) / str(seed))
            t = time.perf_counter()
            results = [detect_pair(series.before, later, opts) for later in series.later]
            t_detect += time.perf_counter() - t
            observed: list[dict[str, bool]] = [{} for _ in results]
            for p in policies:
                tracks, confirmed_at = replay(p, results, observed, opts)
                score_series(series, tracks, confirmed_at, scores[p], quiet)
            print(
                f"series seed={seed} quiet={quiet} regions per scene"
                f" {[len(r.regions) for r in results]}",
                flush=True,
            )
    any_score = next(iter(scores.values()))
    print(
        f"series: {args.aois} with change ({any_score.truth} counted truth changes),"
        f" {args.quiet_aois} without; {args.visits} later scenes each;"
        f" size {args.size}x{args.size} at 10 m; detect {t_detect:.1f} s,"
        f" wall {time.perf_counter() - t0:.1f} s"
    )
    for p, s in scores.items():
        print(
            f"{p.describe():12s} confirmed {s.confirmed:4d} (correct {s.correct:4d}),"
            f" P {s.precision():.3f} R {s.recall():.3f}, median latency {s.latency():.1f} scenes,"
            f" expired tracks {s.expired}"
        )
    print(
        "rs_confirmation: "
        + "; ".join(
            f"{p.describe()} P {s.precision():.2f} R {s.recall():.2f} latency {s.latency():.0f}"
            for p, s in scores.items()
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
