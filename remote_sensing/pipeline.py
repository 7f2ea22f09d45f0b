"""The change-detection pipeline of one scene pair: calibrate, detect by blocks, vectorise, measure.

1. **Align**: both scenes are read on their common grid (:mod:`remote_sensing.align`).
2. **Calibrate** on a sample of tile-aligned windows spread over the overlap: cloud and shadow
   masks, the PIF normalisation of the after date, the CVA (Otsu) threshold and, for the iMAD
   method, the canonical vectors. These are scene-wide values, so every block uses the same ones
   and a windowed run equals a whole-array run.
3. **Detect** block by block (:mod:`remote_sensing.windowed`), block edges on the before file's
   tiles: :func:`block_codes` is the pure per-block step; each block's core is written into one
   ``uint8`` code raster of the grid (1 byte per pixel: 120 MB for a 10980 x 10980 grid, the only
   allocation that grows with the scene; the rest is about one padded block per worker and
   GDAL's block cache, capped at :data:`remote_sensing.io.GDAL_CACHE_MB`).
4. **Vectorise** the clusters of change in the code raster (:func:`change_windows`), drop
   polygons under the minimum mapping unit (the exact sieve: blocks only drop the small regions
   they see whole), give each its majority kind, then measure each (equal-area m2, lon/lat
   centroid and bbox), score its confidence from a re-read of its window, intersect it with the
   zones and make its quicklook.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, overload

import cv2
import numpy as np
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import shape

from farsight.errors import ConfigError, ConfigProblem
from farsight.types import ChangeRegion, Location
from remote_sensing.align import Grid, common_grid
from remote_sensing.detect import (
    DETECTORS,
    KINDS,
    ImadModel,
    Thresholds,
    cva_magnitude,
    em_threshold,
    fit_imad,
    imad_chi2,
    label_changes,
    otsu_threshold,
    possible_kinds,
)
from remote_sensing.indices import DateIndices, date_indices
from remote_sensing.io import AlignedReader, Bands, Scene, open_scene, reading_env
from remote_sensing.masks import (
    CLOUDY_SAMPLE_FRACTION,
    MaskStats,
    bright_blobs,
    dilate,
    mask_stats,
    qa_mask,
    temporal_cloud_shadow,
)
from remote_sensing.normalise import (
    DEGRADED_CONFIDENCE,
    MIN_OVERLAP_PIXELS,
    MIN_PIF_PIXELS,
    Normalisation,
    NormaliseError,
    fit,
    identity,
    refusal,
)
from remote_sensing.postprocess import clean, confidence, measure, mmu_pixels, regions, vectorise
from remote_sensing.windowed import Block, block_size, blocks, run_blocks
from remote_sensing.zones import Zone, ZoneOverlap, overlaps

log = logging.getLogger(__name__)

CHANGE_NO_RULE = 255
"""Code raster value of a change pixel whose own index rule did not fire (it takes its region's
kind)."""

Quicklook = Callable[[np.ndarray, np.ndarray, np.ndarray], str]
"""``quicklook(before_rgb, after_rgb, mask) -> evidence sha256``, called per region."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each block."""


@dataclass(frozen=True, slots=True)
class DetectOptions:
    """How to detect changes in a pair.

    Parameters
    ----------
    method : str
        One of :data:`~remote_sensing.detect.DETECTORS`.
    mmu_ha : float
        Minimum mapping unit in hectares.
    open_px, close_px : int
        Morphological opening (edge erosion against misregistration) and closing radii.
    cloud_buffer_px : int
        Dilation of cloud and shadow masks.
    cloud_mask : bool
        Mask clouds and shadows (off only for baselines).
    normalise : bool
        Fit the PIF radiometric normalisation.
    gate : bool
        For ``index``: also require the CVA magnitude above the automatic (Otsu) threshold. Off
        by default: Otsu on a scene where change is rare sits near the magnitude of a forest
        clearing and halves vegetation-loss recall; the index rules' physical thresholds suffice.
    block, overlap : int
        Block size (rounded up to whole tiles) and overlap in pixels.
    workers : int
        Threads (or Dask threads) for blocks.
    executor : str
        ``threads`` or ``dask``.
    sample_windows, sample_size : int
        Calibration sample: up to ``sample_windows`` x ``sample_windows`` windows of
        ``sample_size`` pixels.
    imad_alpha : float
        Significance of the iMAD chi-square test.
    min_change : float
        For ``cva`` and ``imad`` (and the ``index`` gate): the smallest change reported, as the
        root-mean-square difference per band in reflectance units. A statistic can call a
        difference significant that no one would call change: on a pair of near-identical
        scenes Otsu splits sensor noise and iMAD's variances shrink towards zero. 0 turns the
        floor off (the plain baseline).
    noise_k : float
        The floor also rises to ``noise_k`` times the pair's own noise (the robust spread of the
        per-band differences of the calibration sample, as a change-vector length), so a noisy
        or misregistered pair needs a larger difference to count. Under Gaussian noise 6 sigma
        is a false alarm in about 1e-5 pixels for 3-6 bands (the chi distribution's tail);
        on the simulator it lifts iMAD from object F1 0.32 to 0.96 and leaves CVA as it was.
    max_fit_pixels : int
        Sample pixels the normalisation, threshold and iMAD are fitted on (a regular subsample).
    pif_weights : str
        How pseudo-invariant pixels are chosen: ``residual`` (iterated robust regression) or
        ``imad`` (iMAD no-change probability >= 0.5, then the same regression).
    min_pif_pixels : int
        Pseudo-invariant pixels (in the calibration sample) the linear normalisation needs;
        fewer and it degrades to histogram matching (:func:`remote_sensing.normalise.fit`).
    threshold : str
        Automatic CVA threshold: ``otsu`` (Otsu 1979) or ``em`` (two-Gaussian EM, Bruzzone and
        Prieto 2000).
    mask_step : int
        Spectral cloud and shadow tests run on every ``mask_step``-th pixel (1: every pixel); QA
        band masks are always full resolution.
    thresholds : Thresholds
    sensor : str, optional
    bands : tuple of str, optional
    scale : (float, float), optional
        Reflectance = value * scale + offset for every band of both scenes, overriding what the
        files say and what the value range suggests (``--scale``).
    """

    method: str = "index"
    mmu_ha: float = 0.25
    open_px: int = 1
    close_px: int = 1
    cloud_buffer_px: int = 3
    cloud_mask: bool = True
    normalise: bool = True
    gate: bool = False
    block: int = 1024
    overlap: int = 32
    workers: int = 1
    executor: str = "threads"
    sample_windows: int = 5
    sample_size: int = 256
    imad_alpha: float = 1e-3
    min_change: float = 0.015
    noise_k: float = 6.0
    max_fit_pixels: int = 200_000
    pif_weights: str = "residual"
    min_pif_pixels: int = MIN_PIF_PIXELS
    threshold: str = "otsu"
    mask_step: int = 2
    thresholds: Thresholds = field(default_factory=Thresholds)
    sensor: str | None = None
    bands: tuple[str, ...] | None = None
    scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.method not in DETECTORS:
            problems.append(
                ConfigProblem(
                    "method", self.method, f"unknown detector; known: {', '.join(DETECTORS)}"
                )
            )
        if not 0 <= self.mmu_ha <= 1000:
            problems.append(ConfigProblem("mmu_ha", self.mmu_ha, "must be within 0..1000 hectares"))
        if self.workers < 1 or self.workers > 256:
            problems.append(ConfigProblem("workers", self.workers, "must be within 1..256"))
        if self.pif_weights not in ("residual", "imad"):
            problems.append(
                ConfigProblem("pif_weights", self.pif_weights, "must be 'residual' or 'imad'")
            )
        if not 50 <= self.min_pif_pixels <= 1_000_000:
            problems.append(
                ConfigProblem("min_pif_pixels", self.min_pif_pixels, "must be within 50..1000000")
            )
        if self.threshold not in ("otsu", "em"):
            problems.append(ConfigProblem("threshold", self.threshold, "must be 'otsu' or 'em'"))
        if not 0 <= self.min_change <= 0.5:
            problems.append(
                ConfigProblem("min_change", self.min_change, "must be within 0..0.5 (reflectance)")
            )
        if not 0 <= self.noise_k <= 50:
            problems.append(ConfigProblem("noise_k", self.noise_k, "must be within 0..50"))
        if self.mask_step not in (1, 2, 4):
            problems.append(ConfigProblem("mask_step", self.mask_step, "must be 1, 2 or 4"))
        if self.overlap % self.mask_step:
            problems.append(
                ConfigProblem(
                    "overlap", self.overlap, f"must be a multiple of mask_step ({self.mask_step})"
                )
            )
        if self.scale is not None and not (
            math.isfinite(self.scale[0]) and math.isfinite(self.scale[1]) and self.scale[0] > 0
        ):
            problems.append(
                ConfigProblem("scale", list(self.scale), "scale must be positive, offset finite")
            )
        if self.block < 64:
            problems.append(ConfigProblem("block", self.block, "must be at least 64 pixels"))
        if self.overlap < self.open_px + self.close_px + self.cloud_buffer_px + 12:
            problems.append(
                ConfigProblem(
                    "overlap",
                    self.overlap,
                    f"must be at least {self.open_px + self.close_px + self.cloud_buffer_px + 12}"
                    " (the reach of masks and morphology)",
                )
            )
        if problems:
            raise ConfigError(problems, "rs detect options")


@dataclass(frozen=True, slots=True)
class Calibration:
    """Scene-wide values every block uses."""

    normalisation: Normalisation
    threshold: float
    imad: ImadModel | None = None
    sample_pixels: int = 0
    valid_pixels: int = 0
    """Sampled pixels holding data on both dates (``sample_pixels`` of them were clear)."""
    floor: float = 0.0
    """The smallest change-vector length (reflectance) that counts as change (see
    :attr:`DetectOptions.min_change`); 0 for none."""
    masks: MaskStats | None = None
    """Scene statistics the cloud and shadow tests measure against (after date normalised)."""

    @property
    def masked_fraction(self) -> float:
        """Share of the sampled pixels with data on both dates that cloud, shadow or
        saturation kept out of the comparison (0 when nothing was sampled)."""
        if self.valid_pixels <= 0:
            return 0.0
        return max(0.0, 1.0 - self.sample_pixels / self.valid_pixels)


@dataclass(frozen=True, slots=True)
class Region:
    """One detected change, measured (lon/lat geometry, m2) and scored."""

    id: str
    kind: str
    geometry: dict[str, Any]
    area_m2: float
    centroid: Location
    bbox: tuple[float, float, float, float]
    confidence: float
    pixels: int
    zones: tuple[ZoneOverlap, ...] = ()
    evidence: tuple[str, ...] = ()
    window: tuple[int, int, int, int] = (0, 0, 0, 0)

    def to_change_region(self, aoi: str, before: datetime, after: datetime) -> ChangeRegion:
        """The domain value the rule engine takes."""
        return ChangeRegion(
            aoi,
            self.kind,
            self.geometry,
            self.area_m2,
            self.centroid,
            self.confidence,
            before,
            after,
            self.evidence,
        )


@dataclass(frozen=True, slots=True)
class PairResult:
    """Every region of a pair, the grid it was found on and the calibration used."""

    before: Scene
    after: Scene
    grid: Grid
    calibration: Calibration
    regions: tuple[Region, ...]
    codes: np.ndarray | None = None

    method: str = "index"

    @property
    def kinds_possible(self) -> tuple[str, ...]:
        """The change kinds the pair's shared bands can tell (fewer for RGB scenes)."""
        shared = tuple(r for r in self.before.roles if r in self.after.roles)
        return possible_kinds(shared, self.method)

    @property
    def before_time(self) -> datetime:
        """Acquisition time of the before scene (epoch when the file has none)."""
        return self.before.acquired or datetime(1970, 1, 1, tzinfo=UTC)

    @property
    def after_time(self) -> datetime:
        """Acquisition time of the after scene (epoch when the file has none)."""
        return self.after.acquired or datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Pure per-window steps


def _usable(
    b: Bands,
    a: Bands,
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    opts: DetectOptions,
    stats: MaskStats | None = None,
    ib: DateIndices | None = None,
    ia: DateIndices | None = None,
) -> np.ndarray:
    usable = b.valid & a.valid
    if not opts.cloud_mask:
        return usable
    if stats is None:
        # No scene statistics given: the window's own valid pixels stand in for the scene.
        stats = mask_stats(
            {r: v[usable] for r, v in before.items()}, {r: v[usable] for r, v in after.items()}
        )
    bad = np.zeros(usable.shape, bool)
    for bands in (b, a):
        if bands.qa is not None and bands.qa_kind:
            bad |= qa_mask(bands.qa, bands.qa_kind)
    k = opts.mask_step
    if k > 1:
        # Clouds and shadows are large and soft-edged: test every k-th pixel and spread each
        # result over its k x k cell (the dilation below covers the cell edges). Windows start
        # on multiples of k, so blocks and the whole array test the same pixels.
        h, w = usable.shape

        # Contiguous copies: numpy runs four times slower on strided views than on the copies.
        def sub(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {r: np.ascontiguousarray(v[::k, ::k]) for r, v in d.items()}

        cloud, shadow = temporal_cloud_shadow(
            sub(before),
            sub(after),
            stats=stats,
            reach_px=max(1, 12 // k),
            haze_min_px=math.ceil(stats.haze_min_px / (k * k)),
            margin_px=math.ceil(stats.margin_px / k),
            shadow_px=math.ceil(stats.shadow_px / k),
        )
        coarse = (cloud | shadow).view(np.uint8)
        bad |= np.repeat(np.repeat(coarse, k, axis=0), k, axis=1)[:h, :w].view(bool)
    else:
        cloud, shadow = temporal_cloud_shadow(
            before, after, stats=stats, ib=ib, ia=ia, haze_min_px=stats.haze_min_px
        )
        bad |= cloud | shadow
    return usable & ~dilate(bad, opts.cloud_buffer_px)


def usable_mask(
    b: Bands,
    a: Bands,
    opts: DetectOptions,
    cal: Calibration | None = None,
    stats: MaskStats | None = None,
) -> np.ndarray:
    """Pixels valid on both dates and, unless disabled, free of cloud and shadow (dilated).

    With a calibration the multi-temporal tests compare the before date with the normalised
    after date, so a seasonal gain is not mistaken for haze, and measure against the
    calibration's scene statistics; ``stats`` gives them without one (else the window's own).
    """
    before, after = prepared(b, a, cal) if cal is not None else (b.data, a.data)
    return _usable(b, a, before, after, opts, cal.masks if cal is not None else stats)


def prepared(
    b: Bands, a: Bands, cal: Calibration
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Before bands and normalised after bands, on the roles both dates have."""
    roles = [r for r in b.data if r in a.data]
    before = {r: b.data[r] for r in roles}
    after = cal.normalisation.apply({r: a.data[r] for r in roles})
    return before, after


def _excess(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    cal: Calibration,
    opts: DetectOptions,
) -> np.ndarray:
    """The change score of every pixel over its threshold (1 at the threshold), and over the
    calibration's floor on the change-vector length: a pixel must pass both."""
    mag = cva_magnitude(before, after)
    if opts.method == "imad" and cal.imad is not None:
        excess = imad_chi2(cal.imad, before, after) / np.float32(max(cal.threshold, 1e-6))
    else:
        excess = mag / np.float32(max(cal.threshold, 1e-6))
    if cal.floor > 0:
        np.minimum(excess, mag / np.float32(cal.floor), out=excess)
    return excess


@overload
def raw_codes(
    b: Bands, a: Bands, cal: Calibration, opts: DetectOptions, with_score: Literal[True] = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@overload
def raw_codes(
    b: Bands, a: Bands, cal: Calibration, opts: DetectOptions, with_score: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]: ...


def raw_codes(
    b: Bands, a: Bands, cal: Calibration, opts: DetectOptions, with_score: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Per-pixel codes before clean-up (0, a kind code, or ``CHANGE_NO_RULE``), the change score
    over its threshold (1 at the threshold; ``None`` when not asked for and not needed), and the
    usable mask."""
    before, after = prepared(b, a, cal)
    ib, ia = date_indices(before), date_indices(after)
    usable = _usable(b, a, before, after, opts, cal.masks, ib, ia)
    rules = label_changes(before, after, opts.thresholds, ib, ia)
    excess: np.ndarray | None = None
    if opts.method == "index":
        change = rules > 0
        if opts.gate:
            excess = _excess(before, after, cal, opts)
            change &= excess > 1
        elif with_score:
            # The index rules alone decide; the score only serves confidence.
            excess = _excess(before, after, cal, opts)
        codes = np.where(change, rules, 0).astype(np.uint8)
    else:
        excess = _excess(before, after, cal, opts)
        change = excess > 1
        codes = np.where(change, np.where(rules > 0, rules, CHANGE_NO_RULE), 0).astype(np.uint8)
    codes[~usable] = 0
    return codes, excess, usable


def block_codes(
    b: Bands, a: Bands, cal: Calibration, opts: DetectOptions, min_px: int, keep_edge: bool = True
) -> np.ndarray:
    """The cleaned, sieved code raster of one (padded) window; pixels keep their own rule code.

    Pure: arrays in, array out. Regions under ``min_px`` that do not touch the window border are
    removed here (the sieve before vectorising); the rest are judged on their polygons.
    """
    codes, _, _ = raw_codes(b, a, cal, opts, with_score=False)
    mask = clean(codes > 0, opts.open_px, opts.close_px)
    kept = regions(mask, codes, min_px, keep_edge=keep_edge) > 0
    # Pixels added by the closing have no rule of their own: mark them so they follow the majority.
    out = np.where(kept, np.where(codes > 0, codes, CHANGE_NO_RULE), 0).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------
# Calibration


def sample_windows(grid: Grid, n: int, size: int) -> list[Window]:
    """Up to ``n`` x ``n`` windows of ``size`` pixels spread evenly over the grid (the whole grid
    when it is small)."""
    if grid.width * grid.height <= (n * size) ** 2:
        return [Window(0, 0, grid.width, grid.height)]
    out = []
    for i in range(n):
        for j in range(n):
            r0 = int((grid.height - size) * (i + 0.5) / n) if grid.height > size else 0
            c0 = int((grid.width - size) * (j + 0.5) / n) if grid.width > size else 0
            r0 -= r0 % size if grid.height > 4 * size else 0
            c0 -= c0 % size if grid.width > 4 * size else 0
            out.append(Window(c0, r0, min(size, grid.width - c0), min(size, grid.height - r0)))
    return out


def _pixels(
    windows: list[tuple[Bands, Bands, np.ndarray]], max_pixels: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    # The before and after values of each window's masked pixels, by the roles both dates have,
    # joined in window order and regularly subsampled to about ``max_pixels``: the calibration
    # sample (a regular subsample keeps fits and medians cheap; 200k pixels pin a gain to 1e-3).
    bs: list[dict[str, np.ndarray]] = []
    as_: list[dict[str, np.ndarray]] = []
    for b, a, m in windows:
        bs.append({r: x[m] for r, x in b.data.items() if r in a.data})
        as_.append({r: x[m] for r, x in a.data.items() if r in b.data})
    n = sum(len(next(iter(x.values()))) for x in bs)
    step = max(1, n // max_pixels)

    def joined(d: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {r: np.concatenate([x[r] for x in d])[::step] for r in d[0]}

    return joined(bs), joined(as_)


def _cloudy_dates(
    windows: list[tuple[Bands, Bands, np.ndarray]], stats: MaskStats
) -> tuple[bool, bool]:
    # Whether each date may hold cloud: a date without a bright blob anywhere in the sample
    # has no cloud core and casts no shadow, and on such a date "every band darker than on the
    # other date" is land-cover change (new concrete brightens every band of a pair without
    # nir). Blobs of any colour count, so a cloud whose colour a relative map distorts does too.
    n = cb = ca = 0
    px = max(1, stats.haze_min_px // 4)
    for b, a, v in windows:
        n += int(v.sum())
        cb += int((bright_blobs(b.data, stats.before, stats.after.visible.bright, px) & v).sum())
        ca += int((bright_blobs(a.data, stats.after, stats.before.visible.bright, px) & v).sum())
    least = max(1, int(CLOUDY_SAMPLE_FRACTION * n))
    return cb >= least, ca >= least


def calibrate(rb: AlignedReader, ra: AlignedReader, opts: DetectOptions) -> Calibration:
    """Scene-wide normalisation and thresholds from a sample of windows.

    Raises
    ------
    NormaliseError
        If too few usable pixels remain to compare the pair, naming the cause (overlap, nodata,
        cloud) and the flag that would help.
    """
    # Cloud and shadow statistics: from the sample's valid pixels, once, so every block tests
    # against the same numbers; stored in the calibration with the after date normalised.
    wins = sample_windows(rb.grid, opts.sample_windows, opts.sample_size)
    read = [(b, a, b.valid & a.valid) for b, a in ((rb.read(w), ra.read(w)) for w in wins)]
    sample_b, sample_a = _pixels(read, opts.max_fit_pixels)
    absolute = not any(
        s.radiometry is not None and s.radiometry.relative for s in (rb.scene, ra.scene)
    )
    pixel_m2 = abs(rb.grid.transform.a * rb.grid.transform.e)
    raw_masks = mask_stats(sample_b, sample_a, absolute, pixel_m2)
    shadows = _cloudy_dates(read, raw_masks)
    raw_masks = replace(raw_masks, shadows=shadows)
    clear = []
    overlap = valid = 0
    for win, (b, a, v) in zip(wins, read):
        overlap += int(win.width * win.height)
        valid += int(v.sum())
        u = usable_mask(b, a, opts, stats=raw_masks)
        for sat in (b.saturated, a.saturated):
            if sat is not None:
                u &= ~sat
        clear.append((b, a, u))
    us = [int(u.sum()) for _, _, u in clear]
    zero_fill = any(
        s.radiometry is not None and s.radiometry.zero_nodata for s in (rb.scene, ra.scene)
    )
    problem = refusal(overlap, valid, sum(us), zero_fill, MIN_OVERLAP_PIXELS)
    # Too few clear pixels for even the linear fit: refuse before iMAD or the fit choke on them.
    if opts.normalise and problem is not None and sum(us) < opts.min_pif_pixels:
        raise NormaliseError(f"the pair cannot be compared: {problem}")
    before, after = _pixels(clear, opts.max_fit_pixels)
    roles = tuple(before)
    usable = np.ones(before[roles[0]].shape, bool)
    weights = None
    if opts.normalise and opts.pif_weights == "imad":
        # Canty and Nielsen (2008): iMAD's no-change probability chooses the invariant pixels.
        from scipy.stats import chi2 as _chi2

        raw = fit_imad(before, after, usable)
        weights = _chi2.sf(imad_chi2(raw, before, after), len(roles))
    try:
        norm = (
            fit(before, after, usable, weights=weights, min_pixels=opts.min_pif_pixels)
            if opts.normalise
            else identity(roles)
        )
    except NormaliseError as e:
        raise NormaliseError(f"the pair cannot be compared: {problem or e}") from e
    after_n = norm.apply(after)
    model = None
    if opts.method == "imad":
        from scipy.stats import chi2

        model = fit_imad(before, after_n, usable)
        threshold = float(chi2.isf(opts.imad_alpha, len(roles)))
    else:
        mag = cva_magnitude(before, after_n)
        threshold = em_threshold(mag) if opts.threshold == "em" else otsu_threshold(mag)
    floor = change_floor(before, after_n, opts.min_change, opts.noise_k)
    log.info(
        "rs calibrate pixels=%d threshold=%.4f floor=%.4f gains=%s pif=%.2f normalisation=%s",
        sum(us),
        threshold,
        floor,
        [round(g, 3) for g in norm.gains],
        norm.pif_fraction,
        norm.describe(),
    )
    masks = replace(mask_stats(sample_b, norm.apply(sample_a), absolute, pixel_m2), shadows=shadows)
    return Calibration(norm, threshold, model, sum(us), valid, floor, masks)


def change_floor(
    before: dict[str, np.ndarray], after: dict[str, np.ndarray], min_change: float, noise_k: float
) -> float:
    """The smallest change-vector length that counts as change on this pair.

    ``min_change`` is a root-mean-square difference per band, so the floor grows with the square
    root of the band count; ``noise_k`` times the pair's noise (each band's robust spread of
    ``after - before``, 1.4826 MAD, combined as a vector length) raises it on noisy pairs. The
    spread is robust, so the changes in the sample do not inflate it while they are a minority.
    """
    if min_change <= 0 and noise_k <= 0:
        return 0.0
    var = 0.0
    for r, b in before.items():
        d = np.asarray(after[r] - b, np.float64)
        var += (1.4826 * float(np.median(np.abs(d - np.median(d))))) ** 2
    return max(min_change * math.sqrt(len(before)), noise_k * math.sqrt(var))


# ---------------------------------------------------------------------------------------------
# Whole pair


def _rgb(bands: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([bands["red"], bands["green"], bands["blue"]], axis=-1)


def _kind_of(codes: np.ndarray) -> tuple[str, float]:
    # Majority of the pixels' own rule codes; CHANGE_NO_RULE pixels do not vote.
    c = codes[(codes > 0) & (codes != CHANGE_NO_RULE)]
    if c.size == 0:
        return "unclassified", 0.0
    counts = np.bincount(c, minlength=len(KINDS) + 1)
    k = int(counts.argmax())
    return KINDS[k - 1], float(counts[k] / (codes > 0).sum())


def detect_pair(
    before: str | Path | Scene,
    after: str | Path | Scene,
    opts: DetectOptions | None = None,
    zones: tuple[Zone, ...] = (),
    quicklook: Quicklook | None = None,
    progress: Progress | None = None,
    keep_codes: bool = False,
) -> PairResult:
    """Detect, vectorise and measure the changes between two scenes.

    Parameters
    ----------
    before, after : path or Scene
        The scenes (any CRS, resolution and extent; they must overlap).
    opts : DetectOptions
    zones : tuple of Zone
        Zones of interest; every region records the zones it touches and the overlap area.
    quicklook : callable, optional
        ``quicklook(before_rgb, after_rgb, mask) -> evidence sha256``, called per region with the
        region's window (float reflectance RGB arrays, bool mask); see
        :func:`remote_sensing.output.quicklook_writer`.
    progress : callable, optional
        ``progress(done, total)`` after each block.
    keep_codes : bool
        Return the grid's code raster in the result (tests compare windowed and whole runs).

    Returns
    -------
    PairResult
        Regions sorted by descending area.

    Raises
    ------
    SceneError, ConfigError, AlignError, NormaliseError
        On unreadable scenes, bad band roles, no overlap or too few usable pixels.
    """
    opts = opts or DetectOptions()
    with reading_env():
        return _detect_pair(before, after, opts, zones, quicklook, progress, keep_codes)


def _detect_pair(
    before: str | Path | Scene,
    after: str | Path | Scene,
    opts: DetectOptions,
    zones: tuple[Zone, ...],
    quicklook: Quicklook | None,
    progress: Progress | None,
    keep_codes: bool,
) -> PairResult:
    t0 = time.perf_counter()
    sb = (
        before
        if isinstance(before, Scene)
        else open_scene(before, opts.sensor, opts.bands, opts.scale)
    )
    sa = (
        after
        if isinstance(after, Scene)
        else open_scene(after, opts.sensor, opts.bands, opts.scale)
    )
    grid = common_grid(sb.grid, sa.grid)
    min_px = mmu_pixels(opts.mmu_ha, grid.transform)
    with AlignedReader(sb, grid) as rb, AlignedReader(sa, grid) as ra:
        cal = calibrate(rb, ra, opts)
        t1 = time.perf_counter()
        codes = np.zeros((grid.height, grid.width), np.uint8)
        size = block_size(opts.block, sb.block_shape)

        if opts.executor == "dask":
            # Dask ships tasks to workers: a picklable function of values, which opens its own
            # readers.
            work: Callable[[Block], np.ndarray] = partial(
                run_block, BlockTask(sb, sa, grid, cal, opts, min_px)
            )
        else:

            def work(blk: Block) -> np.ndarray:
                return block_codes(rb.read(blk.padded), ra.read(blk.padded), cal, opts, min_px)[
                    blk.inner
                ]

        # Cores on the before file's tile boundaries: each tile is decoded for one core (and
        # from GDAL's cache for its neighbours' overlaps). Even phase keeps the mask phase.
        off = rb.offset or (0, 0)
        phase = (-off[0] - (-off[0]) % opts.mask_step, -off[1] - (-off[1]) % opts.mask_step)
        for blk, core in run_blocks(
            work,
            blocks(grid.width, grid.height, size, opts.overlap, phase),
            opts.workers,
            opts.executor,
            progress,
        ):
            codes[
                int(blk.core.row_off) : int(blk.core.row_off + blk.core.height),
                int(blk.core.col_off) : int(blk.core.col_off + blk.core.width),
            ] = core
        t2 = time.perf_counter()
        found = _regions(codes, grid, rb, ra, cal, opts, min_px, zones, quicklook)
    log.info(
        "rs detect before=%s after=%s grid=%dx%d regions=%d"
        " calibrate_s=%.2f blocks_s=%.2f regions_s=%.2f",
        sb.path.name,
        sa.path.name,
        grid.width,
        grid.height,
        len(found),
        t1 - t0,
        t2 - t1,
        time.perf_counter() - t2,
    )
    return PairResult(sb, sa, grid, cal, found, codes if keep_codes else None, opts.method)


@dataclass(frozen=True, slots=True)
class BlockTask:
    """Everything a worker needs to compute blocks of a pair (picklable values only)."""

    before: Scene
    after: Scene
    grid: Grid
    calibration: Calibration
    opts: DetectOptions
    min_px: int


_READERS: dict[tuple[str, Grid], AlignedReader] = {}
_READERS_LOCK = threading.Lock()


def _reader(scene: Scene, grid: Grid) -> AlignedReader:
    # One reader per scene and grid per worker process, kept for the blocks that follow; the
    # oldest is closed past 8 (a worker moves from pair to pair).
    key = (str(scene.path), grid)
    with _READERS_LOCK:
        r = _READERS.get(key)
        if r is None:
            while len(_READERS) >= 8:
                _READERS.pop(next(iter(_READERS))).close()
            r = _READERS[key] = AlignedReader(scene, grid)
        return r


def run_block(task: BlockTask, blk: Block) -> np.ndarray:
    """The core codes of one block of ``task`` (what a Dask worker runs)."""
    rb, ra = _reader(task.before, task.grid), _reader(task.after, task.grid)
    return block_codes(
        rb.read(blk.padded), ra.read(blk.padded), task.calibration, task.opts, task.min_px
    )[blk.inner]


def change_windows(codes: np.ndarray, cell: int = 64) -> list[tuple[Window, np.ndarray]]:
    """Windows that together hold every change region of ``codes`` whole, each in exactly one,
    with the mask of the window's own pixels.

    Changes are sparse: polygonising only clusters of occupied ``cell`` x ``cell`` cells
    (8-connected, like the regions, so a region never spans two clusters) costs a fraction of
    polygonising the whole grid. A cluster's box may overlap another cluster's cells; the mask
    keeps those out.
    """
    h, w = codes.shape
    hc, wc = -(-h // cell), -(-w // cell)
    occ = np.zeros((hc, wc), np.uint8)
    fh, fw = h // cell, w // cell
    if fh and fw:
        occ[:fh, :fw] = (
            codes[: fh * cell, : fw * cell].reshape(fh, cell, fw, cell).max(axis=(1, 3)) > 0
        )
    for r in range(hc):  # the ragged last row and column of cells
        for c in range(wc):
            if r >= fh or c >= fw:
                occ[r, c] = codes[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell].any()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(occ, connectivity=8)
    out = []
    for i in range(1, n):
        x, y, cw, ch = (int(v) for v in stats[i, :4])
        c0, r0 = x * cell, y * cell
        win = Window(c0, r0, min(w, (x + cw) * cell) - c0, min(h, (y + ch) * cell) - r0)
        own = np.repeat(np.repeat(labels[y : y + ch, x : x + cw] == i, cell, axis=0), cell, axis=1)
        out.append((win, own[: int(win.height), : int(win.width)]))
    return out


def _polygons(codes: np.ndarray, grid: Grid) -> list[dict[str, Any]]:
    out = []
    for win, own in change_windows(codes):
        r0, c0 = int(win.row_off), int(win.col_off)
        mask = ((codes[r0 : r0 + int(win.height), c0 : c0 + int(win.width)] > 0) & own).astype(
            np.uint8
        )
        out += [g for g, _ in vectorise(mask, window_transform(win, grid.transform))]
    return out


def _regions(
    codes: np.ndarray,
    grid: Grid,
    rb: AlignedReader,
    ra: AlignedReader,
    cal: Calibration,
    opts: DetectOptions,
    min_px: int,
    zones: tuple[Zone, ...],
    quicklook: Quicklook | None,
) -> tuple[Region, ...]:
    pixel_area = abs(grid.transform.a * grid.transform.e)
    out: list[Region] = []
    for geom in _polygons(codes, grid):
        poly = shape(geom)
        npx = round(poly.area / pixel_area)
        if npx < min_px:
            continue
        # The polygon's window, padded for the context a quicklook needs.
        inv = ~grid.transform
        minx, miny, maxx, maxy = poly.bounds
        c0, r0 = inv @ (minx, maxy)
        c1, r1 = inv @ (maxx, miny)
        c0, r0, c1, r1 = round(c0), round(r0), round(c1), round(r1)
        pad = max(8, (c1 - c0 + r1 - r0) // 4)
        wc0, wr0 = max(0, c0 - pad), max(0, r0 - pad)
        wc0, wr0 = (
            wc0 - wc0 % opts.mask_step,
            wr0 - wr0 % opts.mask_step,
        )  # the block pass's mask phase
        wc1, wr1 = min(grid.width, c1 + pad), min(grid.height, r1 + pad)
        win = Window(wc0, wr0, wc1 - wc0, wr1 - wr0)
        inside = rasterize(
            [(geom, 1)],
            out_shape=(int(win.height), int(win.width)),
            transform=window_transform(win, grid.transform),
            dtype="uint8",
        ).astype(bool)
        region_codes = codes[wr0:wr1, wc0:wc1][inside]
        kind, _ = _kind_of(region_codes)
        b, a = rb.read(win), ra.read(win)
        raw, excess, _ = raw_codes(b, a, cal, opts)
        k = KINDS.index(kind) + 1
        agreement = (
            float((raw[inside] == k).mean())
            if kind != "unclassified"
            else float((raw[inside] > 0).mean())
        )
        conf = confidence(float(np.mean(excess[inside])), agreement, npx / max(min_px, 1))
        if cal.normalisation.degraded:
            conf = round(conf * DEGRADED_CONFIDENCE, 3)
        m = measure(geom, grid.crs)
        hits = overlaps(m.geometry, zones) if zones else ()
        evidence: tuple[str, ...] = ()
        if quicklook is not None:
            before, after = prepared(b, a, cal)
            evidence = (quicklook(_rgb(before), _rgb(after), inside),)
        rid = f"{kind}-{m.centroid.lon:.5f}-{m.centroid.lat:.5f}"
        out.append(
            Region(
                rid,
                kind,
                m.geometry,
                round(m.area_m2, 1),
                m.centroid,
                m.bbox,
                conf,
                npx,
                hits,
                evidence,
                (wc0, wr0, wc1 - wc0, wr1 - wr0),
            )
        )
    out.sort(key=lambda r: -r.area_m2)
    return tuple(out)


def in_zones(found: tuple[Region, ...]) -> tuple[Region, ...]:
    """The regions touching at least one zone (the default for events)."""
    return tuple(r for r in found if r.zones)


def ha(m2: float) -> float:
    """Square metres in hectares."""
    return m2 / 1e4


__all__ = [
    "Calibration",
    "DetectOptions",
    "PairResult",
    "Region",
    "block_codes",
    "calibrate",
    "detect_pair",
    "in_zones",
    "raw_codes",
    "usable_mask",
]
