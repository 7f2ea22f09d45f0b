"""Change-detection accuracy on simulated scene pairs, against a plain CVA + Otsu baseline.

Writes ``--pairs`` simulator pairs with changes of every kind (clouds, shadows, seasonal gain and
offset, sub-pixel misregistration, nodata borders; every fifth pair with 4 bands only, every other
with an SCL band) and ``--quiet-pairs`` pairs without change, runs ``farsight rs detect``'s pipeline
on each, and scores it:

* object level: a truth polygon is found when a detected polygon has IoU >= 0.3 with it or holds
  its centroid; a detected polygon is correct when it finds some truth polygon. Truth polygons
  less than half visible (under cloud or shadow on either date) are not counted, nor are the
  detections that find only them.
* pixel F1 over the pixels cloud-free on both dates;
* false positives per 100 km2 on the pairs without change;
* kind accuracy: share of found truth polygons whose detected kind is right.

The baseline is change-vector magnitude over the raw bands (scale, offset and nodata applied; no
normalisation, no cloud mask, no morphology) with an Otsu threshold and the same minimum mapping
unit, computed in the same run.

    .venv/bin/python benchmarks/rs_accuracy.py [--pairs 20] [--quiet-pairs 10] [--size 512]
    [--first-seed 1]

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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from rasterio.windows import from_bounds
from shapely.geometry import shape

from remote_sensing.pipeline import DetectOptions, PairResult, detect_pair
from simulators.scenes import ScenePair, SceneSpec, write_pair

BASELINE = DetectOptions(
    method="cva",
    cloud_mask=False,
    normalise=False,
    open_px=0,
    close_px=0,
    min_change=0.0,
    noise_k=0.0,
)
"""Plain CVA + Otsu: no normalisation, cloud mask, morphology or change floor."""


@dataclass
class Score:
    """Counts summed over pairs."""

    truth: int = 0
    found: int = 0
    detected: int = 0
    correct: int = 0
    kind_right: int = 0
    tp_px: int = 0
    fp_px: int = 0
    fn_px: int = 0
    quiet_fp: int = 0
    quiet_km2: float = 0.0

    def f1(self) -> tuple[float, float, float]:
        p = self.correct / self.detected if self.detected else 1.0
        r = self.found / self.truth if self.truth else 1.0
        return (2 * p * r / (p + r) if p + r else 0.0), p, r

    def pixel_f1(self) -> float:
        d = 2 * self.tp_px + self.fp_px + self.fn_px
        return 2 * self.tp_px / d if d else 1.0

    def fp_per_100km2(self) -> float:
        return 100.0 * self.quiet_fp / self.quiet_km2 if self.quiet_km2 else 0.0


def spec_for(seed: int, size: int, quiet: bool) -> SceneSpec:
    rng = np.random.default_rng([seed, 4242])
    return SceneSpec(
        seed=seed,
        width=size,
        height=size,
        bands=4 if seed % 5 == 0 else 6,
        scl=seed % 2 == 0,
        changes_per_kind=0 if quiet else 2,
        cloud_cover=(float(rng.uniform(0, 0.04)), float(rng.uniform(0.02, 0.08))),
        shift_px=(float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.4, 0.4))),
        offset_px=(int(rng.integers(-16, 17)), int(rng.integers(-16, 17))),
    )


def _matches(det, truth) -> bool:
    inter = det.intersection(truth).area
    union = det.union(truth).area
    return (union > 0 and inter / union >= 0.3) or det.contains(truth.centroid)


def score_pair(pair: ScenePair, result: PairResult, score: Score, quiet: bool) -> None:
    """Add one pair's object and pixel counts to ``score``."""
    dets = [(shape(r.geometry), r.kind) for r in result.regions]
    if quiet:
        score.quiet_fp += len(dets)
        grid = result.grid
        score.quiet_km2 += grid.width * grid.height * abs(grid.transform.a * grid.transform.e) / 1e6
        return
    truths = [(shape(t.geometry), t.kind, t.visible >= 0.5) for t in pair.changes]
    ignored_dets = 0
    for d, _ in dets:
        hits = [vis for t, _, vis in truths if _matches(d, t)]
        if any(hits):
            score.correct += 1
        elif hits:
            ignored_dets += 1
    score.detected += len(dets) - ignored_dets
    for t, kind, vis in truths:
        if not vis:
            continue
        score.truth += 1
        hits = [k for d, k in dets if _matches(d, t)]
        if hits:
            score.found += 1
            score.kind_right += int(kind in hits)
    # Pixels on the common grid, cloud-free on both dates (truth masks).
    grid = result.grid
    shape_ = (grid.height, grid.width)
    vis_truth = [transform_geom("EPSG:4326", grid.crs, t.geometry) for t in pair.changes]
    tmask = (
        rasterize(
            [(g, 1) for g in vis_truth], out_shape=shape_, transform=grid.transform, dtype="uint8"
        ).astype(bool)
        if vis_truth
        else np.zeros(shape_, bool)
    )
    dgeoms = [transform_geom("EPSG:4326", grid.crs, r.geometry) for r in result.regions]
    dmask = (
        rasterize(
            [(g, 1) for g in dgeoms], out_shape=shape_, transform=grid.transform, dtype="uint8"
        ).astype(bool)
        if dgeoms
        else np.zeros(shape_, bool)
    )
    clear = np.ones(shape_, bool)
    for path in (pair.before_clouds, pair.after_clouds):
        with rasterio.open(path) as src:
            win = from_bounds(*grid.bounds, src.transform).round_offsets().round_lengths()
            clouds = src.read(1, window=win, boundless=True, fill_value=1, out_shape=shape_)
            clear &= clouds == 0
    score.tp_px += int((tmask & dmask & clear).sum())
    score.fp_px += int((~tmask & dmask & clear).sum())
    score.fn_px += int((tmask & ~dmask & clear).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20, help="pairs with changes")
    ap.add_argument("--quiet-pairs", type=int, default=10, help="pairs without change")
    ap.add_argument("--size", type=int, default=512, help="scene size in pixels (10 m)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--first-seed", type=int, default=1, help="seed of the first pair (others follow)"
    )
    args = ap.parse_args(argv)
    ours, base = Score(), Score()
    t0 = time.perf_counter()
    t_ours = t_base = 0.0
    with tempfile.TemporaryDirectory(prefix="rs-acc-") as tmp:
        f = args.first_seed
        runs = [(s, False) for s in range(f, f + args.pairs)] + [
            (1000 + s, True) for s in range(f, f + args.quiet_pairs)
        ]
        for seed, quiet in runs:
            pair = write_pair(spec_for(seed, args.size, quiet), Path(tmp) / str(seed))
            t = time.perf_counter()
            res = detect_pair(pair.before, pair.after, DetectOptions(workers=args.workers))
            t_ours += time.perf_counter() - t
            t = time.perf_counter()
            bres = detect_pair(pair.before, pair.after, BASELINE)
            t_base += time.perf_counter() - t
            score_pair(pair, res, ours, quiet)
            score_pair(pair, bres, base, quiet)
            f1, p, r = ours.f1()
            print(
                f"pair seed={seed} quiet={quiet} regions={len(res.regions)}"
                f" baseline_regions={len(bres.regions)} running F1={f1:.3f}",
                flush=True,
            )
    f1, p, r = ours.f1()
    bf1, bp, br = base.f1()
    print(
        f"pairs: {args.pairs} with change ({ours.truth} visible truth polygons), {args.quiet_pairs}"
        f" without ({ours.quiet_km2:.0f} km2); size {args.size}x{args.size} at 10 m"
    )
    print(
        f"ours:     object F1 {f1:.3f} (P {p:.3f}, R {r:.3f}), kind accuracy"
        f" {ours.kind_right / max(ours.found, 1):.3f}, pixel F1 {ours.pixel_f1():.3f},"
        f" {ours.fp_per_100km2():.2f} FP/100 km2, detect {t_ours:.1f} s"
    )
    print(
        f"baseline: object F1 {bf1:.3f} (P {bp:.3f}, R {br:.3f}), pixel F1 {base.pixel_f1():.3f},"
        f" {base.fp_per_100km2():.2f} FP/100 km2, detect {t_base:.1f} s"
    )
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    print(
        f"rs accuracy: object F1 {f1:.2f} (P {p:.2f}, R {r:.2f}), pixel F1 {ours.pixel_f1():.2f},"
        f" {ours.fp_per_100km2():.1f} FP/100 km2; baseline CVA+Otsu F1 {bf1:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
