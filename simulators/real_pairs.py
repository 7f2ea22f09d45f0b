"""Labelled pairs on real backgrounds: a satellite over a real place, with changes inserted.

A :class:`Background` is a real scene as arrays by band role (its data type, grid and nodata kept);
a :class:`RealPairSpec` says how many changes of each kind to insert, how cloudy and hazy the after
date is, and how misregistered and differently calibrated the two dates are. :func:`synthesize`
is the pure middle: it finds the scene's land cover from the scene itself, places irregular
polygons on cover each kind can happen to, fills them with the scene's own pixels of the cover
they turn into (a patch of its bare fields, roofs, water) or, where the scene has none, with the
simulator's library spectra mapped into the scene's numbers, blends them in with soft edges, then
shifts, clouds, hazes and recalibrates the after date. :func:`write_real_pair` writes the result
as ``before.tif`` / ``after.tif`` (the background's data type and encoding, band descriptions
set), cloud truth rasters and ``truth.geojson``, and returns the :class:`~simulators.scenes.
ScenePair` the simulated pairs use.

When the background carries a second real acquisition of the same ground (``Background.after``,
e.g. the overlap of two Landsat rows of one pass) the changes go into that one, so the pair keeps
the real radiometric difference between the dates.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.warp import transform_geom

from simulators.scenes import (
    AFTER_SPECTRA,
    BAND_NAMES,
    BARE,
    CROP,
    FOREST,
    KINDS,
    SPECTRA,
    URBAN,
    WATER,
    ScenePair,
    SimulatorError,
    TruthChange,
)

# Land cover found in a real scene (0: none of these, e.g. dark wet fields or shade).
OTHER, VEGETATED, OPEN_WATER, SOIL, BUILT = 0, 1, 2, 3, 4
COVER_NAMES = {OTHER: "other", VEGETATED: "vegetated", OPEN_WATER: "water", SOIL: "soil"}
COVER_NAMES[BUILT] = "built"

# Cover each kind may be placed on, and the cover whose pixels it turns into.
_ON: dict[str, tuple[int, ...]] = {
    "vegetation_loss": (VEGETATED,),
    "new_construction": (VEGETATED, OTHER),
    "water_gain": (VEGETATED, OTHER),
    "water_loss": (OPEN_WATER,),
    "bare_soil": (VEGETATED, OTHER),
}
_BECOMES: dict[str, int] = {
    "vegetation_loss": SOIL,
    "new_construction": BUILT,
    "water_gain": OPEN_WATER,
    "water_loss": SOIL,
    "bare_soil": SOIL,
}
# Library classes of simulators/scenes.py that stand for each found cover in the radiometric fit.
_LIBRARY_OF = {VEGETATED: (FOREST, CROP), OPEN_WATER: (WATER,), SOIL: (BARE,), BUILT: (URBAN,)}

MIN_CHANGE_PX = 6
"""Smallest change inserted, in pixels: twice a 0.25 ha mapping unit at 30 m."""

MIN_COVER_PX = 30
"""A cover with fewer pixels in the scene is not transplanted from: library spectra stand in."""


def possible_kinds(roles: tuple[str, ...]) -> tuple[str, ...]:
    """The change kinds bands ``roles`` can tell apart.

    The same rule as ``remote_sensing.detect.possible_kinds`` (simulators import only the kernel,
    a test keeps the two equal): without nir there is no vegetation or water index, so a
    visible-only scene shows new construction and bare soil only.
    """
    if "nir" not in roles:
        return ("new_construction", "bare_soil")
    return KINDS


@dataclass(frozen=True, slots=True)
class Background:
    """A real scene to insert changes into.

    Parameters
    ----------
    name : str
        What it is (named in errors and benchmark lines).
    roles : tuple of str
        Band roles in band order, from ``blue green red nir swir1 swir2``.
    data : ndarray
        Bands x rows x cols in the file's data type (digital numbers as delivered).
    crs : CRS
    transform : Affine
    nodata : float, optional
        The file's nodata value; without one, pixels zero in every band are taken as fill.
    after : ndarray, optional
        A second real acquisition of the same pixels (same shape and type): the after date is
        built from it instead of from ``data``.
    """

    name: str
    roles: tuple[str, ...]
    data: np.ndarray
    crs: CRS
    transform: Affine
    nodata: float | None = None
    after: np.ndarray | None = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.roles if r not in BAND_NAMES]
        if unknown or len(self.roles) != self.data.shape[0]:
            raise SimulatorError(
                f"background {self.name}: roles {self.roles} must name each of its "
                f"{self.data.shape[0]} bands from {', '.join(BAND_NAMES)}"
            )
        if not {"blue", "green", "red"} <= set(self.roles):
            raise SimulatorError(f"background {self.name}: needs blue, green and red bands")
        if self.after is not None and (
            self.after.shape != self.data.shape or self.after.dtype != self.data.dtype
        ):
            raise SimulatorError(
                f"background {self.name}: after {self.after.shape} {self.after.dtype} must match "
                f"data {self.data.shape} {self.data.dtype}"
            )

    @property
    def pixel_m(self) -> float:
        """Pixel size in metres (the CRS is projected)."""
        return float(abs(self.transform.a))


@dataclass(frozen=True, slots=True)
class RealPairSpec:
    """How to turn a background into a labelled pair.

    Parameters
    ----------
    seed : int
        Seed of every random choice: equal specs on equal backgrounds give identical pairs.
    changes_per_kind : int
        Changes of each kind (0: a pair without change).
    kinds : tuple of str, optional
        Kinds to insert; default every kind the background's bands can tell.
    change_ha : tuple of float
        Range of change areas in hectares (never under :data:`MIN_CHANGE_PX` pixels).
    cloud_cover : float
        Approximate cloud fraction of the after date (0..0.5).
    haze : float
        Peak opacity of thin haze on the after date (0..0.4).
    shift_px : tuple of float
        Sub-pixel misregistration (columns, rows) of the after date.
    gain, offset : tuple of float
        Ranges the after date's per-band gain and offset are drawn from; the offset in units of
        the band's spread (its 99th minus 1st percentile).
    """

    seed: int = 0
    changes_per_kind: int = 1
    kinds: tuple[str, ...] | None = None
    change_ha: tuple[float, float] = (0.5, 4.0)
    cloud_cover: float = 0.03
    haze: float = 0.05
    shift_px: tuple[float, float] = (0.3, -0.2)
    gain: tuple[float, float] = (0.94, 1.06)
    offset: tuple[float, float] = (-0.03, 0.03)

    def __post_init__(self) -> None:
        if not 0 <= self.changes_per_kind <= 50:
            raise SimulatorError(f"changes_per_kind {self.changes_per_kind} must be within 0..50")
        unknown = [k for k in self.kinds or () if k not in KINDS]
        if unknown:
            raise SimulatorError(f"unknown change kinds {unknown}; known: {', '.join(KINDS)}")
        if not 0 < self.change_ha[0] <= self.change_ha[1]:
            raise SimulatorError(f"change_ha {self.change_ha} must be 0 < min <= max")
        if not 0 <= self.cloud_cover <= 0.5:
            raise SimulatorError(f"cloud_cover {self.cloud_cover} must be within 0..0.5")
        if not 0 <= self.haze <= 0.4:
            raise SimulatorError(f"haze {self.haze} must be within 0..0.4")
        if any(abs(s) >= 1 for s in self.shift_px):
            raise SimulatorError(f"shift_px {self.shift_px} must be sub-pixel (|s| < 1)")
        if not 0 < self.gain[0] <= self.gain[1] < 2:
            raise SimulatorError(f"gain {self.gain} must be 0 < min <= max < 2")
        if not -0.5 <= self.offset[0] <= self.offset[1] <= 0.5:
            raise SimulatorError(f"offset {self.offset} must be -0.5 <= min <= max <= 0.5")


@dataclass(frozen=True, slots=True)
class Inserted:
    """One inserted change: its kind, polygon (pixel coordinates col, row of the grid) and the
    share of it not under cloud or shadow."""

    kind: str
    ring: tuple[tuple[float, float], ...]
    visible: float
    transplanted: bool


@dataclass(frozen=True, slots=True)
class Synthesis:
    """A labelled pair as arrays (the background's data type) with what was done to it.

    ``clouds`` is the after date's cloud truth (1 cloud, 2 shadow); ``changed`` the blend weight
    of inserted changes (0..1, on the ground before the shift); ``gain`` and ``offset`` per band
    in the band's own units: outside changes and clouds, after = gain * shift(before') + offset,
    where before' is ``data`` (or the background's second acquisition) and ``haze`` the opacity
    blended towards ``cloud_level``.
    """

    before: np.ndarray
    after: np.ndarray
    clouds: np.ndarray
    changed: np.ndarray
    haze: np.ndarray
    changes: tuple[Inserted, ...]
    gain: tuple[float, ...]
    offset: tuple[float, ...]
    shift_px: tuple[float, float]
    cloud_level: tuple[float, ...]


# ---------------------------------------------------------------------------------------------
# Land cover of a real scene


def fill_mask(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """Pixels without data: the nodata value in any band, or zero in every band when the file
    has no nodata tag (Level-1 products zero-fill outside their footprint)."""
    if nodata is not None:
        return np.asarray((data == nodata).any(axis=0))
    return np.asarray((data == 0).all(axis=0))


def _dark_subtracted(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    # Digital numbers carry a path-radiance offset that swamps band ratios (Landsat L1 blue sits at
    # ~7400 over the darkest water); taking each band's 0.5th percentile off (dark-object
    # subtraction, Chavez 1988) makes ratios and normalised differences mean something.
    x = data.astype(np.float32)
    for b in range(x.shape[0]):
        dark = np.percentile(x[b][valid], 0.5) if valid.any() else 0.0
        x[b] = np.maximum(x[b] - np.float32(dark), 0.0)
    return x


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / np.maximum(a + b, np.float32(1e-3))


def land_cover(data: np.ndarray, roles: tuple[str, ...], valid: np.ndarray) -> np.ndarray:
    """The cover of each pixel, relative to the scene's own distribution.

    With nir, NDVI (on dark-subtracted numbers) ranks vegetation and water; without it, the
    green-over-red balance stands in for vegetation and a dark, blue-leaning pixel for water.
    Soil is bright and red, built-up bright and grey. Thresholds are percentiles of the scene,
    so digital numbers of any scale give the same map.

    Parameters
    ----------
    data : ndarray
        Bands x rows x cols, any numeric type.
    roles : tuple of str
        Band roles in band order.
    valid : ndarray of bool
        Pixels holding data.

    Returns
    -------
    ndarray of uint8
        :data:`OTHER`, :data:`VEGETATED`, :data:`OPEN_WATER`, :data:`SOIL` or :data:`BUILT`.
    """
    x = _dark_subtracted(data, valid)
    band = {r: x[i] for i, r in enumerate(roles)}
    blue, green, red = band["blue"], band["green"], band["red"]
    bright = (blue + green + red) / 3
    redness = _nd(red, green)
    blueness = blue / np.maximum(blue + green + red, np.float32(1e-3))
    green_index = _nd(band["nir"], red) if "nir" in band else _nd(green, red)

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a[valid], q)) if valid.any() else 0.0

    cover = np.full(bright.shape, OTHER, np.uint8)
    cover[(green_index >= pct(green_index, 50)) & (bright <= pct(bright, 75))] = VEGETATED
    soil = (bright >= pct(bright, 60)) & (redness >= pct(redness, 70))
    soil &= green_index <= pct(green_index, 40)
    cover[soil] = SOIL
    grey = np.abs(redness - pct(redness, 50)) <= (pct(redness, 75) - pct(redness, 25))
    built = (bright >= pct(bright, 88)) & grey & (green_index <= pct(green_index, 40))
    cover[built & ~soil] = BUILT
    dark = bright <= pct(bright, 12)
    if "nir" in band:
        # Water absorbs the near infrared: darker there than in the green, which dry gravel and
        # shade are not.
        water = dark & (green_index <= pct(green_index, 8)) & (band["nir"] < green)
    else:
        # Turbid or shallow water is not dark in the visible: it is the bluest cover there is.
        water = (dark & (blueness >= pct(blueness, 75))) | (
            (blueness >= pct(blueness, 93)) & (bright <= pct(bright, 70))
        )
    cover[water] = OPEN_WATER
    cover[~valid] = OTHER
    return cover


def library_fit(
    data: np.ndarray, roles: tuple[str, ...], cover: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band ``value = a * reflectance + b`` mapping library spectra into the scene's numbers.

    ``b`` is the band's dark level (0.5th percentile: zero reflectance plus path radiance and
    any encoding offset); ``a`` is fitted by least squares through it on the covers the scene
    has, each found cover's median value against the library reflectance of the class it stands
    for (vegetated: mean of forest and crop; water; soil: bare; built: urban). Pinning ``b``
    keeps the library's band ratios, which a free intercept per band would not. Without any
    cover, the 98th percentile is matched to 0.2 reflectance.

    Returns
    -------
    a, b : ndarray
        Per band.
    """
    idx = [BAND_NAMES.index(r) for r in roles]
    pts: list[tuple[np.ndarray, np.ndarray]] = []
    for c, classes in _LIBRARY_OF.items():
        m = (cover == c) & valid
        if m.sum() >= MIN_COVER_PX:
            refl = np.mean([np.array(SPECTRA[k])[idx] for k in classes], axis=0)
            pts.append((refl, np.median(data[:, m].astype(np.float64), axis=1)))
    x = data[:, valid].astype(np.float64) if valid.any() else np.ones((len(roles), 1))
    b = np.percentile(x, 0.5, axis=1)
    a = np.empty(len(roles))
    for i in range(len(roles)):
        xs = np.array([p[0][i] for p in pts])
        ys = np.array([p[1][i] for p in pts]) - b[i]
        slope = float(np.dot(xs, ys) / np.dot(xs, xs)) if len(pts) else 0.0
        a[i] = slope if slope > 0 else (np.percentile(x[i], 98) - b[i]) / 0.20
    return a, b


# ---------------------------------------------------------------------------------------------
# Noise, polygons, masks


def fbm(
    rng: np.random.Generator, shape: tuple[int, int], scale: float, octaves: int = 4
) -> np.ndarray:
    """Fractal noise of about unit variance: octaves of smoothly upsampled random lattices."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        s = max(scale / 2**k, 1.0)
        lat = rng.standard_normal((math.ceil(h / s) + 3, math.ceil(w / s) + 3)).astype(np.float32)
        big = cv2.resize(
            lat, (int(lat.shape[1] * s), int(lat.shape[0] * s)), interpolation=cv2.INTER_CUBIC
        )
        out += np.float32(amp) * big[:h, :w]
        total += amp * amp
        amp *= 0.5
    return out / np.float32(max(float(out.std()), 1e-6))


def irregular_polygon(
    rng: np.random.Generator, cx: float, cy: float, area_px: float
) -> tuple[tuple[float, float], ...]:
    """A lobed, elongated polygon of about ``area_px`` pixels around (cx, cy): 16 vertices whose
    radii follow a smooth random curve, stretched and rotated."""
    n = 16
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi / n)
    wobble = sum(
        rng.uniform(0.05, 0.22) * np.cos(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    radii = 1.0 + wobble + rng.uniform(-0.05, 0.05, n)
    elong = rng.uniform(1.0, 2.0)
    rot = rng.uniform(0, np.pi)
    px = radii * np.cos(angles) * elong
    py = radii * np.sin(angles) / elong
    area = 0.5 * abs(np.dot(px, np.roll(py, 1)) - np.dot(py, np.roll(px, 1)))
    k = math.sqrt(area_px / area)
    xr = k * (px * math.cos(rot) - py * math.sin(rot)) + cx
    yr = k * (px * math.sin(rot) + py * math.cos(rot)) + cy
    return tuple(zip(xr.tolist(), yr.tolist()))


def polygon_mask(ring: tuple[tuple[float, float], ...], shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside ``ring`` (pixel coordinates)."""
    closed = [*ring, ring[0]]
    return rasterize(
        [({"type": "Polygon", "coordinates": [closed]}, 1)], out_shape=shape, dtype="uint8"
    ).astype(bool)


def soft_mask(
    ring: tuple[tuple[float, float], ...], shape: tuple[int, int], sigma: float = 0.7
) -> np.ndarray:
    """Blend weight 0..1 of ``ring``: its area fraction per pixel (4x supersampled), blurred so
    the edge fades over about a pixel as a real boundary seen by a sensor does."""
    up = 4
    closed = [(x * up, y * up) for x, y in (*ring, ring[0])]
    fine = rasterize(
        [({"type": "Polygon", "coordinates": [closed]}, 1)],
        out_shape=(shape[0] * up, shape[1] * up),
        dtype="uint8",
    ).astype(np.float32)
    frac = cv2.resize(fine, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.clip(cv2.GaussianBlur(frac, (0, 0), sigma), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Changes


def _patch(
    rng: np.random.Generator,
    x: np.ndarray,
    cover: np.ndarray,
    target: int,
    h: int,
    w: int,
) -> np.ndarray | None:
    # A h x w window of the scene mostly of `target` cover, its other pixels replaced by the
    # window's own target pixels (drawn at random): real spectra and real texture.
    ys, xs = np.nonzero(cover == target)
    if len(ys) < MIN_COVER_PX:
        return None
    rows, cols = cover.shape
    best: tuple[float, int, int] | None = None
    for _ in range(120):
        i = int(rng.integers(len(ys)))
        r0 = min(max(int(ys[i]) - h // 2, 0), rows - h)
        c0 = min(max(int(xs[i]) - w // 2, 0), cols - w)
        if r0 < 0 or c0 < 0:
            return None
        share = float((cover[r0 : r0 + h, c0 : c0 + w] == target).mean())
        if best is None or share > best[0]:
            best = (share, r0, c0)
        if share >= 0.8:
            break
    assert best is not None
    share, r0, c0 = best
    if share < 0.25:
        return None
    win = x[:, r0 : r0 + h, c0 : c0 + w].copy()
    ok = cover[r0 : r0 + h, c0 : c0 + w] == target
    pool = win[:, ok]
    fill = ~ok
    if fill.any():
        win[:, fill] = pool[:, rng.integers(pool.shape[1], size=int(fill.sum()))]
    return win


def _library_patch(
    rng: np.random.Generator,
    kind: str,
    roles: tuple[str, ...],
    fit: tuple[np.ndarray, np.ndarray],
    h: int,
    w: int,
) -> np.ndarray:
    # The kind's library spectrum in the scene's numbers, with a few per cent of fractal texture.
    idx = [BAND_NAMES.index(r) for r in roles]
    refl = np.array(AFTER_SPECTRA[kind], np.float32)[idx]
    texture = 1.0 + 0.05 * fbm(rng, (h, w), 3.0, octaves=2)
    a, b = fit
    return (a[:, None, None] * refl[:, None, None] * texture[None] + b[:, None, None]).astype(
        np.float32
    )


def _wanted(spec: RealPairSpec, bg: Background) -> list[str]:
    can = possible_kinds(bg.roles)
    kinds = spec.kinds if spec.kinds is not None else can
    refused = [k for k in kinds if k not in can]
    if refused:
        raise SimulatorError(
            f"background {bg.name} has bands {', '.join(bg.roles)}: they cannot tell "
            f"{', '.join(refused)} (possible: {', '.join(can)})"
        )
    return [k for _ in range(spec.changes_per_kind) for k in kinds]


def place_changes(
    rng: np.random.Generator,
    kinds: list[str],
    cover: np.ndarray,
    valid: np.ndarray,
    pixel_m: float,
    change_ha: tuple[float, float],
    name: str = "background",
    strict: bool = True,
) -> list[tuple[str, tuple[tuple[float, float], ...]]]:
    """Polygons (pixel coordinates) for ``kinds``, each on cover its kind can happen to (at
    least 85 % of its pixels), apart from each other and from the scene's edges and fill.
    Unless ``strict``, a kind that finds no room is left out (a scene without a lake has no
    water to lose).

    Raises
    ------
    SimulatorError
        If ``strict`` and a kind finds no room (the message names the kind, the background and
        its cover).
    """
    rows, cols = cover.shape
    lo = max(change_ha[0] * 1e4 / pixel_m**2, MIN_CHANGE_PX)
    hi = max(change_ha[1] * 1e4 / pixel_m**2, lo)
    placed: list[tuple[str, tuple[tuple[float, float], ...]]] = []
    discs: list[tuple[float, float, float]] = []
    for kind in kinds:
        allowed = np.isin(cover, _ON[kind]) & valid
        ys, xs = np.nonzero(allowed)
        for attempt in range(400):
            if not len(ys):
                break
            shrink = 1.0 if attempt < 200 else 0.5  # small lakes take small changes
            area_px = max(rng.uniform(lo, hi) * shrink, MIN_CHANGE_PX)
            r = math.sqrt(area_px / math.pi) * 2.0 + 1
            i = int(rng.integers(len(ys)))
            cx, cy = float(xs[i]) + 0.5, float(ys[i]) + 0.5
            margin = r + 6
            if not (margin < cx < cols - margin and margin < cy < rows - margin):
                continue
            if any(math.hypot(cx - x, cy - y) < r + rr + 6 for x, y, rr in discs):
                continue
            ring = irregular_polygon(rng, cx, cy, area_px)
            inside = polygon_mask(ring, cover.shape)
            if inside.sum() < MIN_CHANGE_PX or allowed[inside].mean() < 0.85:
                continue
            near = cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            if not valid[near].all():
                continue
            placed.append((kind, ring))
            discs.append((cx, cy, r))
            break
        else:
            if not strict:
                continue
            counts = {COVER_NAMES[c]: int((cover == c).sum()) for c in COVER_NAMES}
            raise SimulatorError(
                f"could not place a {kind} change in background {name} "
                f"({cols}x{rows} px, cover {counts}); use a larger crop or drop the kind"
            )
    return placed


# ---------------------------------------------------------------------------------------------
# The after date's atmosphere and sensor


def _clouds(
    rng: np.random.Generator, shape: tuple[int, int], cover: float, pixel_m: float
) -> tuple[np.ndarray, np.ndarray]:
    # Cloud opacity from thresholded fractal noise with thin soft margins, and the shadow: the
    # same field displaced ~900 m down-sun (capped to a sixth of the scene).
    if cover <= 0:
        z = np.zeros(shape, np.float32)
        return z, z
    h, w = shape
    scale = max(8.0, 1500.0 / pixel_m)
    d = min(900.0 / pixel_m, min(h, w) / 6)
    dx, dy = round(d * 0.8), round(d * 0.6)
    f = fbm(rng, (h + dy, w + dx), scale, octaves=5)
    thr = float(np.quantile(f, 1.0 - cover))
    opacity_all = np.clip((f - thr) / 0.4, 0.0, 1.0)
    opacity = opacity_all[dy:, dx:]
    shade = opacity_all[:h, :w]
    return opacity, np.where(opacity > 0.02, 0.0, shade).astype(np.float32)


def _haze(
    rng: np.random.Generator, shape: tuple[int, int], peak: float, pixel_m: float
) -> np.ndarray:
    if peak <= 0:
        return np.zeros(shape, np.float32)
    f = fbm(rng, shape, max(16.0, 4000.0 / pixel_m), octaves=3)
    # Patches, not a veil over everything: a third of the scene or so is hazy.
    return (peak * np.clip((f - 0.4) / 1.2, 0.0, 1.0)).astype(np.float32)


def _shifted(x: np.ndarray, dx: float, dy: float) -> np.ndarray:
    # The after date's misregistration: every band sampled (dx, dy) pixels off (bicubic).
    if dx == 0 and dy == 0:
        return x
    h, w = x.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + np.float32(dx), ys + np.float32(dy)
    return np.stack(
        [cv2.remap(b, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT) for b in x]
    )


def dtype_range(dtype: np.dtype, fill_is_zero: bool) -> tuple[float, float]:
    """The values a synthesised pixel may take: the data type's range, from 1 when zero marks
    fill (so no real pixel becomes nodata)."""
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    lo = float(info.min)
    return (max(lo, 1.0) if fill_is_zero else lo), float(info.max)


def synthesize(bg: Background, spec: RealPairSpec) -> Synthesis:
    """Insert ``spec``'s changes into ``bg`` and make its after date.

    Steps: land cover of the scene (:func:`land_cover`); polygons on cover each kind can happen
    to (:func:`place_changes`); each filled with a patch of the scene's own cover it turns into
    (:data:`MIN_COVER_PX` pixels at least), else with its library spectrum
    (:func:`library_fit`), blended with a soft edge (:func:`soft_mask`); then the after date is
    shifted by ``spec.shift_px``, clouded (opacity towards a bright flat level, each band's
    shadow darkening the same factor above its dark level), hazed and given a per-band gain and
    offset, and rounded into the data type's range.

    Parameters
    ----------
    bg : Background
    spec : RealPairSpec

    Returns
    -------
    Synthesis

    Raises
    ------
    SimulatorError
        If a kind cannot be told by the bands, or one that ``spec.kinds`` names cannot be placed
        (with the default kinds, one the scene has no room or cover for is left out).
    """
    rng = np.random.default_rng([spec.seed, 2016])
    kinds = _wanted(spec, bg)
    fill = fill_mask(bg.data, bg.nodata)
    base = bg.after if bg.after is not None else bg.data
    fill |= fill_mask(base, bg.nodata)
    valid = ~fill
    cover = land_cover(bg.data, bg.roles, valid)
    after_cover = land_cover(base, bg.roles, valid) if bg.after is not None else cover
    x = base.astype(np.float32)
    fit = library_fit(base, bg.roles, after_cover, valid)
    shape = cover.shape
    placed = place_changes(
        rng, kinds, cover, valid, bg.pixel_m, spec.change_ha, bg.name, spec.kinds is not None
    )
    changed = np.zeros(shape, np.float32)
    transplanted = []
    for kind, ring in placed:
        w8 = soft_mask(ring, shape)
        rr, cc = np.nonzero(w8 > 0)
        r0, r1, c0, c1 = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1
        h, w = int(r1 - r0), int(c1 - c0)
        patch = _patch(rng, x, after_cover, _BECOMES[kind], h, w)
        transplanted.append(patch is not None)
        if patch is None:
            patch = _library_patch(rng, kind, bg.roles, fit, h, w)
        m = w8[r0:r1, c0:c1][None]
        x[:, r0:r1, c0:c1] = x[:, r0:r1, c0:c1] * (1 - m) + patch * m
        changed[r0:r1, c0:c1] = np.maximum(changed[r0:r1, c0:c1], m[0])
    dx, dy = spec.shift_px
    x = _shifted(x, dx, dy)
    valid_b = bg.data.astype(np.float32)[:, valid]
    dark = np.percentile(valid_b, 0.5, axis=1) if valid.any() else np.zeros(len(bg.roles))
    top = np.percentile(valid_b, 99.5, axis=1) if valid.any() else np.ones(len(bg.roles))
    lo, hi = dtype_range(bg.data.dtype, bg.nodata == 0 or bg.nodata is None)
    # Clouds are bright and spectrally flat in top-of-atmosphere reflectance, which Landsat 8/9
    # Level-1 digital numbers are proportional to with one gain for every band, and an 8-bit
    # export shows as near-white: one level for every band, 2.2 spreads above the dark level of
    # the band that reaches highest. (Each band's own range would make a cloud over red soil red,
    # and no single-date cloud test would see it.)
    level = np.full(
        len(bg.roles), min(float(np.max(dark + 2.2 * (top - dark))), hi * 0.97), np.float32
    )
    opacity, shade = _clouds(rng, shape, spec.cloud_cover, bg.pixel_m)
    haze = _haze(rng, shape, spec.haze, bg.pixel_m)
    factor = 1.0 - 0.55 * shade[None] * rng.uniform(0.97, 1.03, (len(bg.roles), 1, 1))
    d3 = dark[:, None, None].astype(np.float32)
    x = d3 + (x - d3) * factor.astype(np.float32)
    lv = level[:, None, None]
    x = x * (1 - haze[None]) + lv * haze[None]
    x = x * (1 - opacity[None]) + lv * opacity[None]
    spread = np.maximum(top - dark, 1.0)
    gain = rng.uniform(*spec.gain, len(bg.roles))
    offset = rng.uniform(*spec.offset, len(bg.roles)) * spread
    x = x * gain[:, None, None].astype(np.float32) + offset[:, None, None].astype(np.float32)
    after = np.clip(np.rint(x), lo, hi).astype(bg.data.dtype)
    after[:, fill] = base[:, fill]
    clouds = np.zeros(shape, np.uint8)
    clouds[shade > 0.02] = 2
    clouds[opacity > 0.02] = 1
    clouds[fill] = 0
    inserted = []
    for (kind, ring), moved in zip(placed, transplanted):
        inside = polygon_mask(ring, shape)
        seen = float((clouds[inside] == 0).mean()) if inside.any() else 0.0
        inserted.append(Inserted(kind, ring, seen, moved))
    return Synthesis(
        before=bg.data.copy(),
        after=after,
        clouds=clouds,
        changed=changed,
        haze=haze,
        changes=tuple(inserted),
        gain=tuple(float(g) for g in gain),
        offset=tuple(float(o) for o in offset),
        shift_px=(float(dx), float(dy)),
        cloud_level=tuple(float(v) for v in level),
    )


# ---------------------------------------------------------------------------------------------
# Files


def write_geotiff(
    path: Path,
    data: np.ndarray,
    crs: CRS,
    transform: Affine,
    descriptions: tuple[str, ...] | None,
    nodata: float | None,
) -> Path:
    """``data`` (bands x rows x cols) as a tiled, deflate-compressed GeoTIFF, as archives deliver
    scenes: its own data type, ``nodata`` tagged when given, band descriptions when given."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 128,
        "blockysize": 128,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
    return path


def _write(path: Path, data: np.ndarray, bg: Background, names: tuple[str, ...] | None) -> Path:
    # Scenes carry the background's nodata and band names; cloud rasters neither.
    return write_geotiff(path, data, bg.crs, bg.transform, names, bg.nodata if names else None)


def truth_changes(bg: Background, changes: tuple[Inserted, ...]) -> tuple[TruthChange, ...]:
    """The inserted changes as truth: polygons in lon/lat, area in m2, visible share."""
    out = []
    for i, c in enumerate(changes):
        ring = [bg.transform * (x, y) for x, y in c.ring]
        geom = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        ll = json.loads(json.dumps(transform_geom(bg.crs, "EPSG:4326", geom, precision=8)))
        xs = np.array([p[0] for p in ring])
        ys = np.array([p[1] for p in ring])
        area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
        out.append(TruthChange(f"c{i}", c.kind, ll, float(area), c.visible))
    return tuple(out)


def write_real_pair(bg: Background, spec: RealPairSpec, out_dir: str | Path) -> ScenePair:
    """Write ``spec``'s labelled pair on ``bg`` under ``out_dir``.

    ``before.tif`` and ``after.tif`` keep the background's data type, grid and nodata, with band
    descriptions set; ``before_clouds.tif`` / ``after_clouds.tif`` hold the cloud truth (1
    cloud, 2 shadow; the before date is the real scene, taken as clear) and ``truth.geojson``
    the changes as :func:`simulators.scenes.read_truth` reads them.

    Raises
    ------
    SimulatorError
        As :func:`synthesize`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    syn = synthesize(bg, spec)
    before = _write(out / "before.tif", syn.before, bg, bg.roles)
    after = _write(out / "after.tif", syn.after, bg, bg.roles)
    bc = _write(out / "before_clouds.tif", np.zeros_like(syn.clouds)[None], bg, None)
    ac = _write(out / "after_clouds.tif", syn.clouds[None], bg, None)
    truth = truth_changes(bg, syn.changes)
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": t.id,
                "geometry": t.geometry,
                "properties": {
                    "kind": t.kind,
                    "area_m2": round(t.area_m2, 1),
                    "visible": round(t.visible, 3),
                    "background": bg.name,
                },
            }
            for t in truth
        ],
    }
    (out / "truth.geojson").write_text(json.dumps(fc), encoding="utf-8")
    return ScenePair(before, after, out / "truth.geojson", bc, ac, truth)
