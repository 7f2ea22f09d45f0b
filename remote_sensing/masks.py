"""Cloud and cloud-shadow masks: from a QA band when the product has one, else spectral tests.

All functions take arrays and return boolean masks (True = unusable). Masks are dilated, since
cloud edges are thin and translucent and the QA products themselves under-detect them (Fmask
dilates by 3 pixels, Zhu and Woodcock 2012).

The spectral and temporal tests are relative: a cloud core is bright and white against its own
date's robust distribution, haze is a blue gain against the other date's variability, a shadow
darkens every band by a factor (also above the dark end, where the path radiance stays). The
numbers they measure against (:class:`MaskStats`) are computed once per pair from the calibration
sample, so digital numbers mapped to pseudo-reflectance and reflectance give the same masks and
every block uses the same cuts; reflectance floors (:data:`FLOORS`) hold only when the radiometry
is absolute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from remote_sensing.indices import DateIndices, ndvi, visible

SCL_MASKED = (1, 3, 8, 9, 10, 11)
"""Sentinel-2 SCL classes never used: saturated/defective, cloud shadow, cloud medium and high
probability, thin cirrus, snow (ESA L2A product specification)."""

QA_PIXEL_BITS = (1, 2, 3, 4, 5)
"""Landsat Collection 2 QA_PIXEL bits never used: dilated cloud, cirrus, cloud, cloud shadow,
snow."""


def scl_mask(scl: np.ndarray) -> np.ndarray:
    """Pixels the Sentinel-2 scene classification calls cloud, shadow, cirrus, snow or defective."""
    return np.isin(scl, SCL_MASKED)


def qa_pixel_mask(qa: np.ndarray) -> np.ndarray:
    """Pixels a Landsat C2 QA_PIXEL band flags as cloud, dilated cloud, cirrus, shadow or snow."""
    bits = np.uint16(sum(1 << b for b in QA_PIXEL_BITS))
    return (qa.astype(np.uint16) & bits) != 0


def qa_mask(qa: np.ndarray, kind: str) -> np.ndarray:
    """The mask of a QA band of ``kind`` (``scl`` or ``qa_pixel``)."""
    if kind == "scl":
        return scl_mask(qa)
    if kind == "qa_pixel":
        return qa_pixel_mask(qa)
    raise ValueError(f"unknown QA band kind {kind!r}; known: scl, qa_pixel")


VISIBLE_SPREADS = 10.0
"""How far above the scene's median visible brightness a cloud core lies, in the scene's spreads
(median minus 10th percentile). 0.3 reflectance, the absolute cut this replaces, sits 9-12
spreads up on vegetated and built land at 10-30 m; concrete and bright soil (0.16-0.2) sit 5-7
up."""

HOT_SPREADS = 6.0
"""How far above the scene's median haze-optimised transform a cloud core lies, in its spreads
(0.08 reflectance is about 6 of them on the same land)."""

HOT_SPREADS_RELATIVE = 3.0
"""HOT cut for digital numbers mapped to pseudo-reflectance: the dark-object offsets of a
relative map remove the path radiance that makes a cloud bluer than the land, so a cloud stands
less far above the scene's HOT there (5-6 spreads on Landsat 8 Level-1 DN, against 10 and more
in reflectance)."""

HAZE_SPREADS = 3.0
"""Blue gain over the other date, in that date's blue spreads, that reads as haze (0.05
reflectance, the absolute cut this replaces, is 2.2-3 of them; a drained pond gains 2)."""

FLOORS = {"visible": 0.2, "hot": 0.04, "haze": 0.025}
"""Reflectance floors kept when the radiometry is absolute: nothing darker than 0.2 in the
visible is a cloud core (concrete and bright roofs reach it; Fmask's cut is 0.3 at top of
atmosphere), and neither a HOT under 0.04 nor a blue gain under 0.025 is haze. On a
relative (pseudo-reflectance) scale these numbers mean nothing and are not applied."""

SHADOW_SIGNAL = 0.25
"""Share of its dark-to-median span a band must stand above its dark end, on the sunlit date,
for the dark-object-subtracted shadow ratio to be read (nearer the dark end noise decides)."""

SPREAD_FLOOR = 0.004
"""Least spread a statistic is given, in (pseudo-)reflectance: on a uniform scene (open water,
a quantised 8-bit export of it) noise must not pass for a cloud."""


@dataclass(frozen=True, slots=True)
class Spread:
    """Where a quantity's clear bulk lies: its median and its spread (median minus 10th
    percentile: the dark side, which clouds do not reach, so a cloudy date keeps its spread), and
    its dark end (0.5th percentile: path radiance and the darkest land, Chavez 1988)."""

    median: float
    spread: float
    dark: float = 0.0
    bright: float = math.inf
    """The 99.5th percentile: the brightest land of a clear date (its roofs, sand, salt)."""

    def z(self, values: np.ndarray) -> np.ndarray:
        """``values`` in spreads above the median (float32)."""
        return (values - np.float32(self.median)) * np.float32(1.0 / self.spread)


@dataclass(frozen=True, slots=True)
class DateStats:
    """The robust distribution of one date: mean visible brightness, HOT, the blue band and, by
    role, every band (empty: no dark-object shadow test)."""

    visible: Spread
    hot: Spread
    blue: Spread
    bands: tuple[tuple[str, Spread], ...] = ()


@dataclass(frozen=True, slots=True)
class MaskStats:
    """Scene-wide statistics the cloud and shadow tests measure against, computed once from the
    calibration sample so every block tests against the same numbers.

    ``after`` is in the units the tests see the after date in (normalised onto the before date in
    the block pass). ``absolute`` keeps the reflectance floors (:data:`FLOORS`); a relative
    radiometry (digital numbers mapped to pseudo-reflectance) drops them.
    """

    before: DateStats
    after: DateStats
    absolute: bool = True
    shadows: tuple[bool, bool] = (True, True)
    """Whether the before and the after date can hold cloud shadow: a date without cloud cores
    in the calibration sample casts none (:data:`CLOUDY_SAMPLE_FRACTION`)."""
    shadow_px: int = 0
    """Without swir2: :data:`SHADOW_REACH_M` in pixels of the grid (0: no shadow pairing)."""
    margin_px: int = 0
    """Without swir2: :data:`CLOUD_MARGIN_M` in pixels of the grid (0: the core reach only)."""
    haze_min_px: int = 0
    """Without nir: the smallest patch of haze-shaped brightening, in pixels of the grid, taken
    as cloud away from any cloud core (0: every such pixel; see :data:`HAZE_MIN_HA`)."""


CLOUDY_SAMPLE_FRACTION = 1e-4
"""Share of the calibration sample's valid pixels in cloud cores from which a date counts as
cloudy, so that its shadow test runs (a few bright roofs that pass the core test are fewer)."""

SHADOW_REACH_M = 10_000.0
"""How far a cloud's shadow may fall from it: cloud tops up to 6 km under a sun 30 degrees or
more above the horizon (Fmask searches cloud heights of 0.2-12 km along the sun's direction)."""

SHADOW_FAINT = 0.9
"""Darkening (every band below this share of the other date) a thin cloud's shadow shows: a
shadow is as thin as its cloud, far fainter than :func:`temporal_cloud_shadow`'s ``ratio``."""

SHADOW_PAIRED = 0.25
"""Share of a brightening patch that, moved by the cloud-to-shadow offset, must land on
darkening for the patch to count as a cloud with its shadow."""

CLOUD_MARGIN_M = 1500.0
"""Without swir2, how far from a cloud core haze-shaped brightening is taken as the cloud's
translucent margin: clouds thin out over hundreds of metres to a kilometre or more (the simulator's
margins left vegetation-loss fragments 300-1000 m out)."""

HAZE_MIN_HA = 20.0
"""Without nir (an RGB scene), nothing spectral tells thin cloud or haze from new concrete or
bare soil: all brighten blue and keep red. Away from a cloud core, haze-shaped brightening is
taken as cloud only where one patch of it spreads over this many hectares: haze and thin cloud
come in patches of square kilometres, a construction site or a cleared field is seldom above a
few tens of hectares. (With nir, but no swir2, every haze-shaped pixel stays cloud: thin cloud
margins over forest would read as vegetation loss, and on the simulator they did.)"""


REFERENCE = DateStats(Spread(0.065, 0.024), Spread(0.015, 0.011), Spread(0.047, 0.017))
"""Typical vegetated and built land in surface reflectance at 10-30 m: what the tests measure
against when no scene statistics are given (a handful of pixels has no distribution). Against it
the relative cuts are the absolute ones they replace: visible 0.3, HOT 0.08, blue gain 0.05."""


def hot(b: dict[str, np.ndarray]) -> np.ndarray:
    """Haze-optimised transform (Zhang, Guindon and Cihlar 2002) with its common clear-sky slope:
    ``blue - 0.5 red``. Clear land of any cover lies near one line in blue-red space; haze and
    cloud lift blue off it."""
    return b["blue"] - np.float32(0.5) * b["red"]


def spread_of(values: np.ndarray) -> Spread:
    """The :class:`Spread` of a sample (finite values; an empty sample gives the floor)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return Spread(0.0, SPREAD_FLOOR)
    dark, p10, med, bright = np.percentile(v.astype(np.float64), [0.5, 10, 50, 99.5])
    return Spread(float(med), max(float(med - p10), SPREAD_FLOOR), float(dark), float(bright))


def date_stats(b: dict[str, np.ndarray]) -> DateStats:
    """The :class:`DateStats` of one date's sample of valid pixels (any shape)."""
    bands = tuple((r, spread_of(v)) for r, v in b.items())
    return DateStats(spread_of(visible(b)), spread_of(hot(b)), dict(bands)["blue"], bands)


def mask_stats(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    absolute: bool = True,
    pixel_m2: float = 0.0,
) -> MaskStats:
    """The :class:`MaskStats` of a pair's samples of valid pixels (``pixel_m2``: the grid's pixel
    area, for :data:`HAZE_MIN_HA` and :data:`CLOUD_MARGIN_M`; 0 takes every haze-shaped pixel
    as cloud)."""
    min_px = math.ceil(HAZE_MIN_HA * 10_000 / pixel_m2) if pixel_m2 > 0 else 0
    margin = math.ceil(CLOUD_MARGIN_M / math.sqrt(pixel_m2)) if pixel_m2 > 0 else 0
    reach = math.ceil(SHADOW_REACH_M / math.sqrt(pixel_m2)) if pixel_m2 > 0 else 0
    return MaskStats(
        date_stats(before),
        date_stats(after),
        absolute,
        shadow_px=reach,
        margin_px=margin,
        haze_min_px=min_px,
    )


def spectral_cloud_mask(
    b: dict[str, np.ndarray],
    stats: DateStats | None = None,
    absolute: bool = True,
    idx: DateIndices | None = None,
    ceiling: float | None = None,
) -> np.ndarray:
    """Bright, white, unvegetated pixels: a single-date cloud test.

    A cloud is bright across the visible bands and spectrally flat (the haze-optimised transform
    of Zhang et al. 2002 is positive); concrete and bare soil rarely pass both tests together.
    Both are measured against the date's own distribution, as Fmask's probability tests are
    scene-relative (Zhu and Woodcock 2012): a core lies :data:`VISIBLE_SPREADS` and
    :data:`HOT_SPREADS` spreads above the date's medians, so a digital-number scene mapped to
    pseudo-reflectance and its reflectance original give the same answer. With ``absolute``
    (reflectance) the :data:`FLOORS` hold too.

    Parameters
    ----------
    b : dict of str to ndarray
        The date's bands (float32 reflectance or pseudo-reflectance), at least blue, green, red.
    stats : DateStats, optional
        The date's scene statistics; by default :data:`REFERENCE`.
    absolute : bool
        Apply the reflectance floors.
    idx : DateIndices, optional
        The date's indices when already computed.
    ceiling : float, optional
        The other date's brightest land (its visible :attr:`Spread.bright`): pixels above it
        by :data:`CEILING_MARGIN` are cloud whatever their colour.

    Returns
    -------
    ndarray of bool
    """
    plain, bright = _cloud_tests(b, stats or REFERENCE, absolute, idx, ceiling)
    return plain if bright is None else bright


def _cloud_tests(
    b: dict[str, np.ndarray],
    stats: DateStats,
    absolute: bool,
    idx: DateIndices | None,
    ceiling: float | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    # The spectral core test, and the same or-ed with brightness over ``ceiling`` (None without
    # a finite one), from one computation of the date's visible, NDVI and HOT.
    vis = idx.visible if idx else visible(b)
    nd = idx.ndvi if idx else ndvi(b)
    h = hot(b)
    hot_cut = HOT_SPREADS if absolute else HOT_SPREADS_RELATIVE
    cloud = (stats.visible.z(vis) > VISIBLE_SPREADS) & (stats.hot.z(h) > hot_cut)
    keep = nd < 0.35
    if absolute:
        keep &= (vis > FLOORS["visible"]) & (h > FLOORS["hot"])
    if ceiling is None or not math.isfinite(ceiling):
        return cloud & keep, None
    # Brighter than anything the other, clear date has: an 8-bit export of a bright scene puts a
    # cloud near its top, few spreads above the median, and a relative map bends its colour; but
    # no land of the scene is that bright (:data:`CEILING_MARGIN`). A new bright roof can be
    # too: :func:`temporal_cloud_shadow` keeps only cloud-sized patches of this test.
    bright = cloud | (vis > np.float32(ceiling * CEILING_MARGIN))
    return cloud & keep, bright & keep


def temporal_cloud_shadow(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    ratio: float = 0.72,
    stats: MaskStats | None = None,
    reach_px: int = 12,
    ib: DateIndices | None = None,
    ia: DateIndices | None = None,
    haze_min_px: int | None = None,
    margin_px: int | None = None,
    shadow_px: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud and shadow on either date: bright cores plus what the change between dates shows.

    A cloud core is bright and white relative to its date (:func:`spectral_cloud_mask`). Its
    translucent margin looks like new concrete, so it is told by the shape of the brightening:
    haze raises blue by :data:`HAZE_SPREADS` of the other date's blue spread or more (relative to
    that date's own variability, as MAJA and Tmask compare with a clear reference date), does not
    darken nir (clearing and concrete do) and brightens swir2 far less than blue (clouds absorb
    there; concrete is flat to swir2); within ``reach_px`` of a core a looser swir2 test
    suffices, and without swir2 the blue and nir tests decide alone. A shadow darkens every band
    by about the same factor, which no land-cover change does: every band below ``ratio`` of the
    other date, none below a fifth (water gain darkens nir tenfold); band ratios of the same band
    on both dates hold in any units once the after date is normalised onto the before date.

    Parameters
    ----------
    before, after : dict of str to ndarray
        The dates' bands, the after date normalised onto the before date.
    ratio : float
        Darkening of every band that reads as shadow.
    stats : MaskStats, optional
        Scene statistics (:func:`mask_stats`); by default :data:`REFERENCE` for both dates.
    reach_px : int
        How far from a core the looser swir2 test applies.
    haze_min_px : int, optional
        Without nir: the smallest patch of haze-shaped brightening taken as cloud away from
        a core (:data:`HAZE_MIN_HA`; in the pixels of these arrays, which differ from the
        grid's when the caller subsamples); by default ``stats.haze_min_px``.
    margin_px : int, optional
        Without swir2: how far from a core haze-shaped brightening is cloud
        (:data:`CLOUD_MARGIN_M`, in the pixels of these arrays); by default ``stats.margin_px``.
    shadow_px : int, optional
        Without swir2: how far a cloud's shadow may fall from it (:data:`SHADOW_REACH_M`, in
        the pixels of these arrays; 0: no pairing); by default ``stats.shadow_px``.
    ib, ia : DateIndices, optional
        The dates' indices when already computed.

    Returns
    -------
    (cloud, shadow) : tuple of bool arrays
        Pixels with cloud on either date, and pixels shadowed on either date (not dilated).
    """
    stats = stats or MaskStats(REFERENCE, REFERENCE)
    if haze_min_px is None:
        haze_min_px = stats.haze_min_px
    roles = [r for r in ("blue", "green", "red", "nir", "swir1") if r in before]
    r32, lo32 = np.float32(ratio), np.float32(0.2)
    dark_a = np.ones(before["blue"].shape, bool)
    dark_b = np.ones(before["blue"].shape, bool)
    for r in roles:
        b, a = before[r], after[r]
        dark_a &= (a < r32 * b) & (a > lo32 * b)
        dark_b &= (b < r32 * a) & (b > lo32 * a)
    spreads = dict(stats.before.bands)
    if all(r in spreads for r in roles):
        # Top-of-atmosphere values and digital numbers keep the path radiance in a shadow: the
        # same ratio on dark-object-subtracted values (Chavez 1988), the dark end taken from
        # the before date (the after date is in its units), where a band stands clear of it.
        path_a = np.ones(before["blue"].shape, bool)
        path_b = np.ones(before["blue"].shape, bool)
        for r in roles:
            sp = spreads[r]
            d, signal = np.float32(sp.dark), np.float32(SHADOW_SIGNAL * (sp.median - sp.dark))
            b, a = before[r] - d, after[r] - d
            path_a &= (a < r32 * b) & (a > lo32 * b) & (b > signal)
            path_b &= (b < r32 * a) & (b > lo32 * a) & (a > signal)
        dark_a |= path_a
        dark_b |= path_b
    # A date without cloud casts no shadow: there, "every band darker than on the other date"
    # is the other date brightening, which new concrete does as much as a cloud (on a pair
    # without nir) and thin haze over dark land does too; the cloud tests below judge those.
    dark_b &= stats.shadows[0]
    dark_a &= stats.shadows[1]
    shadow = dark_a | dark_b
    dblue = after["blue"] - before["blue"]
    # Without nir (RGB scenes) red stands in: haze does not darken it either.
    long = "nir" if "nir" in before else "red"
    dnir = after[long] - before[long]
    # Cores by brightness alone over the other date's brightest land count only as cloud-sized
    # patches (a quarter of :data:`HAZE_MIN_HA`), so that a new white roof stays a change.
    ceiling_px = max(1, haze_min_px // 4)
    cores = []
    for bands, own, other, idx in (
        (after, stats.after, stats.before, ia),
        (before, stats.before, stats.after, ib),
    ):
        plain, bright = _cloud_tests(bands, own, stats.absolute, idx, other.visible.bright)
        core = _cores(plain)
        if bright is not None:
            core |= large_patches(_cores(bright), ceiling_px)
        cores.append(core)
    core_a, core_b = cores
    cloud = core_a | core_b
    # Haze on the after date is measured in the before date's blue spread and vice versa.
    up_a = np.float32(HAZE_SPREADS * stats.before.blue.spread)
    up_b = np.float32(HAZE_SPREADS * stats.after.blue.spread)
    if stats.absolute:
        up_a = max(up_a, np.float32(FLOORS["haze"]))
        up_b = max(up_b, np.float32(FLOORS["haze"]))
    haze_a = (dblue > up_a) & (dnir > -0.2 * dblue)
    haze_b = (dblue < -up_b) & (dnir < -0.2 * dblue)
    if "swir2" in before:
        dlong = after["swir2"] - before["swir2"]
        # Thin cloud raises swir2 by 0.3-0.45 of blue (more over dark forest), concrete by 0.6-0.9.
        cloud |= (haze_a & (dlong < 0.5 * dblue)) | (haze_b & (dlong > 0.5 * dblue))
        # Near a core the margin is thin cloud even when the swir2 test is unsure.
        haze_a &= dlong < 0.55 * dblue
        haze_b &= dlong > 0.55 * dblue
    else:
        # Without swir2 the shape is blue-up, nir- (or red-) not-down, which new concrete and
        # bare soil have too: away from a core only a large patch of it is haze, and near one
        # (within the margin below) it is cloud.
        cloud |= large_patches(haze_a | haze_b, haze_min_px)
        # A thin cloud away from any core still casts its shadow: brightening whose footprint,
        # moved by the window's cloud-to-shadow offset, lands on darkening of the same date.
        reach = stats.shadow_px if shadow_px is None else shadow_px
        if reach > 0:
            # Faint darkening: a thin cloud's shadow is as thin as the cloud.
            faint_a = np.ones(before["blue"].shape, bool)
            for r in roles:
                faint_a &= after[r] < np.float32(SHADOW_FAINT) * before[r]
            cloud |= cast_shadow(haze_a & ~cloud, faint_a, reach)
        # A cloud's margins reach further than the swir2 test's reach.
        reach_px = max(reach_px, stats.margin_px if margin_px is None else margin_px)
    if core_a.any():
        cloud |= haze_a & dilate(core_a, reach_px, square=True)
    if core_b.any():
        cloud |= haze_b & dilate(core_b, reach_px, square=True)
    return cloud, shadow


CEILING_MARGIN = 1.1
"""How far above the other date's brightest land (99.5th percentile) a pixel is cloud by its
brightness alone."""


def shadow_offset(bright: np.ndarray, dark: np.ndarray, reach: int) -> tuple[int, int] | None:
    """The offset (rows, columns) from clouds to their shadows in a window: where ``bright``
    moved onto ``dark`` overlaps most (a cross-correlation by FFT), within ``reach`` pixels and
    at least 2 away; ``None`` when not even :data:`SHADOW_PAIRED` of ``bright`` lands on dark.

    The sun is one for the whole window and clouds of a window float at similar heights, so one
    offset pairs them with their shadows (Fmask matches each cloud along the sun's direction;
    without the sun's angles the scene shows the offset itself).
    """
    n = int(bright.sum())
    if n < 16 or int(dark.sum()) < 16:
        return None
    h, w = bright.shape
    shape = (2 * h, 2 * w)
    fb = np.fft.rfft2(bright.astype(np.float32), shape)
    fd = np.fft.rfft2(dark.astype(np.float32), shape)
    corr = np.fft.irfft2(np.conj(fb) * fd, shape)
    dy = np.fft.fftfreq(shape[0], 1 / shape[0]).astype(int)[:, None]
    dx = np.fft.fftfreq(shape[1], 1 / shape[1]).astype(int)[None, :]
    dist2 = dy * dy + dx * dx
    corr[(dist2 > reach * reach) | (dist2 < 4)] = 0
    i, j = np.unravel_index(int(np.argmax(corr)), corr.shape)
    if corr[i, j] < SHADOW_PAIRED * n:
        return None
    return int(dy[i, 0]), int(dx[0, j])


def cast_shadow(bright: np.ndarray, dark: np.ndarray, reach: int) -> np.ndarray:
    """The patches of ``bright`` that cast a shadow on ``dark``: at least :data:`SHADOW_PAIRED`
    of each, moved by the window's :func:`shadow_offset`, lands on (slightly grown) darkening."""
    out = np.zeros(bright.shape, bool)
    off = shadow_offset(bright, dark, reach)
    if off is None:
        return out
    dy, dx = off
    h, w = bright.shape
    moved = np.zeros_like(dark)
    # moved[p] = dark[p + offset]: what lies where each pixel's shadow would fall.
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    moved[ys, xs] = dilate(dark, 2, square=True)[yd, xd]
    n, labels, st, _ = cv2.connectedComponentsWithStats(bright.view(np.uint8), connectivity=8)
    hits = np.bincount(labels[moved & bright], minlength=n)
    keep = hits >= SHADOW_PAIRED * st[:, cv2.CC_STAT_AREA]
    keep[0] = False
    return keep[labels]


def large_patches(mask: np.ndarray, min_px: int) -> np.ndarray:
    """The 8-connected patches of ``mask`` of at least ``min_px`` pixels (all of it for 0)."""
    if min_px <= 1 or not mask.any():
        return mask
    _, labels, st, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = st[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return keep[labels]


def bright_blobs(
    b: dict[str, np.ndarray], stats: DateStats, ceiling: float, min_px: int
) -> np.ndarray:
    """Blobs of one date :data:`VISIBLE_SPREADS` above its median visible brightness, or patches
    of ``min_px`` pixels above the other date's brightest land (``ceiling``, by
    :data:`CEILING_MARGIN`), whatever their colour: every cloud core is one, and so is a large
    bright roof or sand bank."""
    vis = visible(b)
    bright = _cores(stats.visible.z(vis) > VISIBLE_SPREADS)
    if math.isfinite(ceiling):
        bright |= large_patches(_cores(vis > np.float32(ceiling * CEILING_MARGIN)), min_px)
    return bright


def _cores(mask: np.ndarray) -> np.ndarray:
    # A cloud core is a blob, not a few bright pixels of a roof: an opening by a 3 x 3 square
    # drops specks smaller than that.
    if not mask.any():
        return mask
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(
        bool
    )


def dilate(mask: np.ndarray, px: int, square: bool = False) -> np.ndarray:
    """``mask`` grown by ``px`` pixels (a disc, or a faster separable square)."""
    if px <= 0 or not mask.any():
        return mask
    shape = cv2.MORPH_RECT if square else cv2.MORPH_ELLIPSE
    k = cv2.getStructuringElement(shape, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.view(np.uint8), k).astype(bool)
