"""Satellite scene-pair simulator: two dates of a multispectral scene with ground-truth changes.

A :class:`SceneSpec` describes a pair (size, grid, bands, clouds, misregistration, changes);
:func:`write_pair` writes it as two tiled GeoTIFFs (``before.tif``, ``after.tif``) shaped like a
Sentinel-2 L2A product (uint16 digital numbers with ``scale`` 1e-4 and ``offset`` -0.1, nodata 0,
band descriptions ``blue green red nir [swir1 swir2] [scl]``), cloud/shadow truth masks
(``before_clouds.tif``, ``after_clouds.tif``: 1 cloud, 2 shadow) and ``truth.geojson`` (RFC 7946,
lon/lat) with one polygon per inserted change. It returns a :class:`ScenePair`.

Every pixel is a function of continuous world coordinates (smooth noise lattices sampled with
``cv2.remap``), so a scene is rendered window by window in bounded memory, windows agree at their
seams, and the after date's sub-pixel misregistration is simply a shift of the sampling
coordinates. Land cover comes from thresholded fractal noise (forest on the hills, cropland
parcels, villages, bare ground, a river and ponds); the after date adds a per-band seasonal gain
and offset, per-parcel crop phenology, sensor noise and its own clouds with their shadows.
Changes are polygons of :data:`KINDS` placed on land cover they can happen to (vegetation loss on
forest, water loss on water...).

The reflectances are plausible, not radiometrically exact: close enough to published library
spectra that NDVI, MNDWI, NDBI and BSI behave as they do on real scenes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import from_origin
from rasterio.warp import transform_geom
from rasterio.windows import Window

from farsight.errors import FarsightError

KINDS: tuple[str, ...] = (
    "vegetation_loss",
    "new_construction",
    "water_gain",
    "water_loss",
    "bare_soil",
)
"""Change kinds the simulator inserts (and the detector labels)."""

BAND_NAMES: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")

SCALE, OFFSET, NODATA = 1e-4, -0.1, 0
"""Sentinel-2 L2A (processing baseline >= 04.00) encoding: reflectance = DN * 1e-4 - 0.1."""

# Land-cover classes and their reflectance (blue, green, red, nir, swir1, swir2); the library
# simulators/real_pairs.py maps into a real scene's numbers where the scene lacks a cover.
FOREST, CROP, BARE, URBAN, WATER = 1, 2, 3, 4, 5
SPECTRA = {
    FOREST: (0.025, 0.050, 0.030, 0.330, 0.160, 0.070),
    CROP: (0.045, 0.080, 0.060, 0.300, 0.220, 0.120),
    BARE: (0.080, 0.115, 0.160, 0.220, 0.330, 0.290),
    URBAN: (0.110, 0.120, 0.125, 0.170, 0.210, 0.190),
    WATER: (0.060, 0.070, 0.045, 0.025, 0.012, 0.008),
}
# What a changed pixel looks like on the after date.
AFTER_SPECTRA = {
    "vegetation_loss": (0.045, 0.075, 0.075, 0.230, 0.240, 0.140),  # felled: grass and slash
    "new_construction": (0.180, 0.190, 0.185, 0.200, 0.215, 0.200),  # concrete, steel roofs
    "water_gain": (0.055, 0.068, 0.050, 0.030, 0.015, 0.010),  # new pond, flooding
    "water_loss": (0.095, 0.125, 0.150, 0.230, 0.300, 0.250),  # drained or filled
    "bare_soil": (0.120, 0.160, 0.210, 0.260, 0.380, 0.340),  # pit, spoil, earthworks
}
# Land cover each kind may be placed on.
_SOURCES = {
    "vegetation_loss": (FOREST,),
    "new_construction": (CROP, FOREST),
    "water_gain": (CROP, FOREST),
    "water_loss": (WATER,),
    "bare_soil": (CROP, FOREST),
}
_CLOUD = np.array((0.42, 0.41, 0.40, 0.42, 0.33, 0.24), np.float32)

# Noise streams: one lattice per purpose, so adding one never shifts another.
_S_HILLS, _S_URBAN, _S_BARE, _S_POND, _S_TEXTURE, _S_PARCEL, _S_RIVER = range(7)
_S_CLOUD = 20  # + date index
_S_PHENO = 30  # + date index
_S_VISIT_CLOUD = 50  # + visit, for the later visits of a series after the first
_S_VISIT_PHENO = 70  # + visit
_MARGIN = 256  # world pixels around the scene covered by every lattice


class SimulatorError(FarsightError):
    """Raised when a scene spec is invalid or a change cannot be placed."""


@dataclass(frozen=True, slots=True)
class SceneSpec:
    """A simulated scene pair.

    Parameters
    ----------
    seed : int
        Seed of every random choice: equal specs write identical files.
    width, height : int
        Scene size in pixels (each date), at least 128.
    pixel_m : float
        Pixel size in metres (square pixels, north-up).
    crs : str
        Projected CRS of both dates (default UTM zone 49N, Yichang).
    origin : tuple of float
        Upper-left corner (x, y) of the before scene in ``crs``.
    bands : int
        4 (blue, green, red, nir) or 6 (+ swir1, swir2).
    scl : bool
        Add a Sentinel-2-like scene classification band (``scl``) built from the truth.
    changes_per_kind : int
        Changes of each kind in ``kinds`` (0 for a pair without change).
    kinds : tuple of str
        Kinds to insert, from :data:`KINDS`.
    change_ha : tuple of float
        Range of change areas in hectares.
    cloud_cover : tuple of float
        Approximate cloud fraction of the before and after dates.
    shift_px : tuple of float
        Sub-pixel misregistration (columns, rows) of the after date.
    offset_px : tuple of int
        Offset (columns, rows) of the after scene's extent relative to the before scene.
    nodata_border_px : int
        Width of the slanted nodata border (swath edge) on each date.
    noise : float
        Standard deviation of sensor noise, in reflectance.
    seasonal : bool
        Apply a per-band gain and offset and crop phenology to the after date.
    tile : int
        GeoTIFF tile size (multiple of 16).
    before_date, after_date : str
        ISO 8601 acquisition times (UTC), written as ``ACQUISITION_DATETIME`` tags.
    """

    seed: int = 0
    width: int = 512
    height: int = 512
    pixel_m: float = 10.0
    crs: str = "EPSG:32649"
    origin: tuple[float, float] = (520000.0, 3400000.0)
    bands: int = 6
    scl: bool = False
    changes_per_kind: int = 2
    kinds: tuple[str, ...] = KINDS
    change_ha: tuple[float, float] = (0.6, 3.0)
    cloud_cover: tuple[float, float] = (0.0, 0.06)
    shift_px: tuple[float, float] = (0.3, -0.25)
    offset_px: tuple[int, int] = (12, -8)
    nodata_border_px: int = 24
    noise: float = 0.004
    seasonal: bool = True
    tile: int = 256
    before_date: str = "2026-03-02T03:10:00Z"
    after_date: str = "2026-05-11T03:10:00Z"

    def __post_init__(self) -> None:
        if self.width < 128 or self.height < 128:
            raise SimulatorError(f"scene size {self.width}x{self.height} must be at least 128x128")
        if self.bands not in (4, 6):
            raise SimulatorError(f"bands must be 4 or 6, got {self.bands}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise SimulatorError(f"unknown change kinds {unknown}; known: {', '.join(KINDS)}")
        if self.tile % 16:
            raise SimulatorError(f"tile {self.tile} must be a multiple of 16")
        if not 0 < self.change_ha[0] <= self.change_ha[1]:
            raise SimulatorError(f"change_ha {self.change_ha} must be 0 < min <= max")
        if any(not 0 <= c < 0.6 for c in self.cloud_cover):
            raise SimulatorError(f"cloud_cover {self.cloud_cover} must be within 0..0.6")
        if any(abs(s) >= 1 for s in self.shift_px):
            raise SimulatorError(f"shift_px {self.shift_px} must be sub-pixel (|s| < 1)")
        if any(abs(o) > 64 for o in self.offset_px):
            raise SimulatorError(f"offset_px {self.offset_px} must be within +-64 pixels")


@dataclass(frozen=True, slots=True)
class TruthChange:
    """One inserted change: its kind, polygon (lon/lat GeoJSON), area and cloud-free fraction."""

    id: str
    kind: str
    geometry: dict
    area_m2: float
    visible: float


@dataclass(frozen=True, slots=True)
class ScenePair:
    """Paths of a written pair and its ground truth."""

    before: Path
    after: Path
    truth: Path
    before_clouds: Path
    after_clouds: Path
    changes: tuple[TruthChange, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Smooth noise in world pixel coordinates


class _Lattices:
    """Random lattices of every noise stream, sampled with cubic interpolation."""

    def __init__(self, spec: SceneSpec) -> None:
        self.spec = spec
        self._cache: dict[tuple[int, float], np.ndarray] = {}
        self.extent = max(spec.width, spec.height) + 2 * _MARGIN + 2 * 64

    def lattice(self, stream: int, scale: float) -> np.ndarray:
        key = (stream, scale)
        if key not in self._cache:
            n = math.ceil(self.extent / scale) + 8
            rng = np.random.default_rng([self.spec.seed, stream, int(scale * 100)])
            self._cache[key] = rng.standard_normal((n, n)).astype(np.float32)
        return self._cache[key]

    def sample(
        self, stream: int, scale: float, xs: np.ndarray, ys: np.ndarray, nearest: bool = False
    ) -> np.ndarray:
        lat = self.lattice(stream, scale)
        mx = ((xs + _MARGIN) / scale + 2).astype(np.float32)
        my = ((ys + _MARGIN) / scale + 2).astype(np.float32)
        mode = cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC
        return cv2.remap(lat, mx, my, mode, borderMode=cv2.BORDER_REFLECT)

    def fbm(
        self, stream: int, scale: float, xs: np.ndarray, ys: np.ndarray, octaves: int = 3
    ) -> np.ndarray:
        # Fractal sum normalised to unit variance (cubic interpolation of N(0,1) keeps ~0.7 of it).
        out = np.zeros(xs.shape, np.float32)
        amp, total = 1.0, 0.0
        for k in range(octaves):
            out += amp * self.sample(stream * 10 + k, scale / 2**k, xs, ys)
            total += amp * amp
            amp *= 0.5
        return out / np.float32(math.sqrt(total) * 0.72)


def _landcover(lat: _Lattices, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Land-cover class of each world coordinate (before any change)."""
    spec = lat.spec
    rng = np.random.default_rng([spec.seed, _S_RIVER])
    hills = lat.fbm(_S_HILLS, 96.0, xs, ys)
    cls = np.full(xs.shape, CROP, np.uint8)
    cls[hills > 0.25] = FOREST
    cls[(lat.fbm(_S_URBAN, 40.0, xs, ys) > 1.1) & (hills < 0.6)] = URBAN
    cls[lat.fbm(_S_BARE, 24.0, xs, ys) > 1.5] = BARE
    cls[(lat.fbm(_S_POND, 20.0, xs, ys) > 1.9) & (hills < 0.0)] = WATER
    # One river crossing the scene, wandering, 12-28 pixels wide.
    horizontal = rng.random() < 0.5
    along, across = (xs, ys) if horizontal else (ys, xs)
    size = spec.height if horizontal else spec.width
    centre = size * rng.uniform(0.3, 0.7)
    amp, wavelength, phase = (
        size * rng.uniform(0.05, 0.15),
        size * rng.uniform(0.6, 1.4),
        rng.uniform(0, 2 * np.pi),
    )
    width = rng.uniform(12, 28)
    course = (
        centre
        + amp * np.sin(2 * np.pi * along / wavelength + phase)
        + 6 * lat.sample(_S_RIVER, 64.0, xs, ys)
    )
    cls[np.abs(across - course) < width / 2] = WATER
    return cls


def _grid(
    x0: float, y0: float, rows: int, cols: int, dx: float = 0.0, dy: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return xs + np.float32(x0 + dx), ys + np.float32(y0 + dy)


# ---------------------------------------------------------------------------------------------
# Changes


def _polygon(
    rng: np.random.Generator, cx: float, cy: float, area_px: float
) -> list[tuple[float, float]]:
    # A lumpy convex-ish polygon of about area_px pixels: 8 vertices, jittered radii, rotated.
    n = 8
    angles = (
        np.sort(rng.uniform(0, 2 * np.pi, n))
        if rng.random() < 0.3
        else np.linspace(0, 2 * np.pi, n, endpoint=False)
    )
    radii = rng.uniform(0.8, 1.2, n)
    elong = rng.uniform(1.0, 1.8)
    rot = rng.uniform(0, np.pi)
    px = radii * np.cos(angles) * elong
    py = radii * np.sin(angles) / elong
    area = 0.5 * abs(np.dot(px, np.roll(py, 1)) - np.dot(py, np.roll(px, 1)))
    k = math.sqrt(area_px / area)
    xr = k * (px * math.cos(rot) - py * math.sin(rot)) + cx
    yr = k * (px * math.sin(rot) + py * math.cos(rot)) + cy
    return list(zip(xr.tolist(), yr.tolist()))


@dataclass(frozen=True, slots=True)
class _Change:
    kind: str
    ring: tuple[tuple[float, float], ...]  # world pixel coordinates (col, row)


def _place_changes(spec: SceneSpec, lat: _Lattices) -> list[_Change]:
    rng = np.random.default_rng([spec.seed, 99])
    border = spec.nodata_border_px + 48
    placed: list[_Change] = []
    centres: list[tuple[float, float, float]] = []
    # A coarse land-cover map to draw candidate centres from (rare covers such as water included).
    step = max(2, min(spec.width, spec.height) // 256)
    gy, gx = np.mgrid[0 : spec.height : step, 0 : spec.width : step].astype(np.float32)
    coarse = _landcover(lat, gx, gy)
    wanted = [k for _ in range(spec.changes_per_kind) for k in spec.kinds]
    for kind in wanted:
        ok = np.isin(coarse, _SOURCES[kind])
        cand = np.column_stack([gx[ok], gy[ok]])
        for attempt in range(300):
            if not len(cand):
                break
            shrink = 0.5 if attempt > 150 else 1.0  # small water bodies take small changes
            area_px = rng.uniform(*spec.change_ha) * shrink * 1e4 / spec.pixel_m**2
            r = math.sqrt(area_px / math.pi) * 1.9
            cx, cy = cand[rng.integers(len(cand))] + rng.uniform(-step / 2, step / 2, 2)
            if not (
                border + r < cx < spec.width - border - r
                and border + r < cy < spec.height - border - r
            ):
                continue
            if any(math.hypot(cx - x, cy - y) < r + rr + 12 for x, y, rr in centres):
                continue
            ring = _polygon(rng, float(cx), float(cy), area_px)
            x0, y0 = int(cx - r - 2), int(cy - r - 2)
            size = int(2 * r + 5)
            xs, ys = _grid(x0, y0, size, size)
            cls = _landcover(lat, xs, ys)
            shifted = [(x - x0, y - y0) for x, y in ring]
            inside = rasterize(
                [({"type": "Polygon", "coordinates": [shifted + shifted[:1]]}, 1)],
                out_shape=(size, size),
                dtype="uint8",
            ).astype(bool)
            if inside.sum() < 4 or np.isin(cls[inside], _SOURCES[kind]).mean() < 0.9:
                continue
            placed.append(_Change(kind, tuple(ring)))
            centres.append((float(cx), float(cy), r))
            break
        else:
            raise SimulatorError(
                f"could not place a {kind} change in a {spec.width}x{spec.height} scene "
                f"(seed {spec.seed}); enlarge the scene or lower change_ha"
            )
        if not len(cand):
            raise SimulatorError(
                f"no land cover for a {kind} change in a {spec.width}x{spec.height} scene "
                f"(seed {spec.seed}); try another seed or drop the kind"
            )
    return placed


# ---------------------------------------------------------------------------------------------
# Rendering


def _seasonal(spec: SceneSpec, date: int, visit: int = 1) -> tuple[np.ndarray, np.ndarray]:
    if date == 0 or not spec.seasonal:
        return np.ones(6, np.float32), np.zeros(6, np.float32)
    rng = np.random.default_rng([spec.seed, 77] if visit == 1 else [spec.seed, 77, visit])
    return rng.uniform(0.88, 1.12, 6).astype(np.float32), rng.uniform(-0.012, 0.012, 6).astype(
        np.float32
    )


def _cloud_stream(date: int, visit: int) -> int:
    # The first after date keeps the streams it always had, so pairs stay as they were.
    return _S_CLOUD + date if date == 0 or visit == 1 else _S_VISIT_CLOUD + visit


def _cloud_threshold(lat: _Lattices, date: int, cover: float, visit: int = 1) -> float:
    # The cover quantile of the cloud field, measured on a coarse grid of the scene.
    if cover <= 0:
        return math.inf
    spec = lat.spec
    xs, ys = _grid(0, 0, 128, 128)
    field_ = lat.fbm(
        _cloud_stream(date, visit),
        40.0,
        xs * np.float32(spec.width / 128),
        ys * np.float32(spec.height / 128),
    )
    return float(np.quantile(field_, 1.0 - cover)) + 0.1


def _render(
    spec: SceneSpec,
    lat: _Lattices,
    changes: list[_Change],
    date: int,
    win: Window,
    visit: int = 1,
    cover: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Digital numbers (bands[, scl] x rows x cols, uint16) and cloud truth of a window.

    The cloud truth is 1 for cloud, 2 for shadow. ``visit`` numbers the after dates of a series
    (1: the pair's after date), each with its own clouds, phenology, seasonal gain and noise;
    ``cover`` overrides the spec's cloud cover of the date.
    """
    rows, cols = int(win.height), int(win.width)
    ox, oy = spec.offset_px if date else (0, 0)
    dx, dy = spec.shift_px if date else (0.0, 0.0)
    x0, y0 = float(win.col_off + ox), float(win.row_off + oy)
    xs, ys = _grid(x0, y0, rows, cols, dx, dy)
    cls = _landcover(lat, xs, ys)
    spectra = np.array([SPECTRA[c] for c in sorted(SPECTRA)], np.float32)
    refl = spectra[cls - 1].transpose(2, 0, 1).copy()  # 6 x rows x cols
    texture = 1.0 + 0.07 * lat.fbm(_S_TEXTURE, 6.0, xs, ys, octaves=2)
    refl *= texture[None]
    crop = cls == CROP
    if crop.any():
        # Parcels of about 24 x 16 pixels; each date's crop is at its own stage.
        pheno = lat.sample(
            (_S_PHENO + date if visit == 1 else _S_VISIT_PHENO + visit)
            if spec.seasonal and date
            else _S_PHENO,
            20.0,
            xs * np.float32(0.8),
            ys * np.float32(1.25),
            nearest=True,
        )
        refl[3][crop] *= 1.0 + 0.06 * np.clip(pheno[crop], -2, 2)
        refl[2][crop] *= 1.0 - 0.05 * np.clip(pheno[crop], -2, 2)
    changed_kind = np.zeros((rows, cols), np.uint8)
    if date and changes:
        # Rasterise in the after scene's misregistered coordinates: the change moves with the
        # ground.
        shapes = [
            (
                {
                    "type": "Polygon",
                    "coordinates": [[(x - x0 - dx, y - y0 - dy) for x, y in c.ring + c.ring[:1]]],
                },
                KINDS.index(c.kind) + 1,
            )
            for c in changes
        ]
        changed_kind = rasterize(shapes, out_shape=(rows, cols), dtype="uint8")
        for k, kind in enumerate(KINDS, start=1):
            m = changed_kind == k
            if m.any():
                refl[:, m] = np.array(AFTER_SPECTRA[kind], np.float32)[:, None] * texture[m][None]
    gain, offset = _seasonal(spec, date, visit)
    refl = refl * gain[:, None, None] + offset[:, None, None]
    # Clouds and their shadows (cast toward the north-west of each cloud, as the sun is south-east).
    clouds = np.zeros((rows, cols), np.uint8)
    stream = _cloud_stream(date, visit)
    thr = _cloud_threshold(lat, date, spec.cloud_cover[date] if cover is None else cover, visit)
    if math.isfinite(thr):
        c = lat.fbm(stream, 40.0, xs, ys)
        opacity = np.clip((c - thr) / 0.35, 0, 1)
        s = lat.fbm(stream, 40.0, xs + 14, ys + 10)
        shade = np.clip((s - thr) / 0.35, 0, 1)
        shadow = (shade > 0.02) & (opacity <= 0.02)
        refl[:, shadow] *= (1.0 - 0.6 * shade[shadow])[None]
        refl = refl * (1 - opacity[None]) + _CLOUD[:, None, None] * opacity[None]
        clouds[opacity > 0.02] = 1
        clouds[shadow] = 2
    rng = np.random.default_rng(
        [spec.seed, 1000 + (visit if date else 0), int(win.row_off), int(win.col_off)]
    )
    refl += rng.normal(0, spec.noise, refl.shape).astype(np.float32)
    dn = np.clip(np.rint((refl[: spec.bands] - OFFSET) / SCALE), 1, 65535).astype(np.uint16)
    # Slanted swath edge: before on the left, after on the right.
    cc = np.arange(cols, dtype=np.float32)[None, :] + win.col_off
    rr = np.arange(rows, dtype=np.float32)[:, None] + win.row_off
    if date == 0:
        nodata = cc < spec.nodata_border_px * (0.5 + rr / spec.height)
    else:
        nodata = cc >= spec.width - spec.nodata_border_px * (1.5 - rr / spec.height)
    dn[:, nodata] = NODATA
    if spec.scl:
        scl = np.full((rows, cols), 5, np.uint16)  # not vegetated
        ndvi = (refl[3] - refl[2]) / np.maximum(refl[3] + refl[2], 1e-3)
        scl[ndvi > 0.4] = 4
        scl[(cls == WATER) & (changed_kind != KINDS.index("water_loss") + 1)] = 6
        scl[changed_kind == KINDS.index("water_gain") + 1] = 6
        scl[clouds == 2] = 3
        scl[clouds == 1] = 8
        scl[nodata] = 0
        dn = np.concatenate([dn, scl[None]])
    clouds[nodata] = 0
    return dn, clouds


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _write_date(
    spec: SceneSpec,
    lat: _Lattices,
    changes: list[_Change],
    date: int,
    path: Path,
    cloud_path: Path,
    visit: int = 1,
    when: datetime | None = None,
    cover: float | None = None,
) -> np.ndarray:
    """Write one date (0 before, 1 after; ``visit`` of a series) and its cloud truth; returns the
    share of each change under cloud or shadow on it."""
    crs = CRS.from_user_input(spec.crs)
    names = BAND_NAMES[: spec.bands] + (("scl",) if spec.scl else ())
    block = spec.tile * 4
    ox, oy = spec.offset_px if date else (0, 0)
    transform = from_origin(
        spec.origin[0] + ox * spec.pixel_m,
        spec.origin[1] - oy * spec.pixel_m,
        spec.pixel_m,
        spec.pixel_m,
    )
    profile = {
        "driver": "GTiff",
        "width": spec.width,
        "height": spec.height,
        "count": len(names),
        "dtype": "uint16",
        "crs": crs,
        "transform": transform,
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": spec.tile,
        "blockysize": spec.tile,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    cprofile = dict(profile, count=1, dtype="uint8", nodata=None, predictor=1)
    when = when or _date(spec.before_date if date == 0 else spec.after_date)
    with (
        rasterio.open(path, "w", **profile) as dst,
        rasterio.open(cloud_path, "w", **cprofile) as cdst,
    ):
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
        dst.scales = tuple(SCALE if n != "scl" else 1.0 for n in names)
        dst.offsets = tuple(OFFSET if n != "scl" else 0.0 for n in names)
        dst.update_tags(
            ACQUISITION_DATETIME=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            SENSOR="simulated Sentinel-2 L2A",
        )
        for r0 in range(0, spec.height, block):
            for c0 in range(0, spec.width, block):
                win = Window(c0, r0, min(block, spec.width - c0), min(block, spec.height - r0))
                dn, clouds = _render(spec, lat, changes, date, win, visit, cover)
                dst.write(dn, window=win)
                cdst.write(clouds[None], window=win)
    return _cloudy_fraction(changes, cloud_path, ox, oy)


def write_pair(spec: SceneSpec, out_dir: str | Path) -> ScenePair:
    """Write the scene pair of ``spec`` under ``out_dir`` and return its paths and truth.

    Memory stays bounded: both dates are rendered and written one block of ``4 * tile`` pixels
    at a time, whatever the scene size.

    Raises
    ------
    SimulatorError
        If the changes cannot be placed (scene too small for the requested changes).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lat = _Lattices(spec)
    changes = _place_changes(spec, lat)
    crs = CRS.from_user_input(spec.crs)
    paths = (out / "before.tif", out / "after.tif")
    cloud_paths = (out / "before_clouds.tif", out / "after_clouds.tif")
    cloud_cover_in_change = [
        _write_date(spec, lat, changes, date, paths[date], cloud_paths[date]) for date in (0, 1)
    ]
    truth = []
    for i, (c, cb, ca) in enumerate(zip(changes, *cloud_cover_in_change)):
        ring = [
            (spec.origin[0] + x * spec.pixel_m, spec.origin[1] - y * spec.pixel_m)
            for x, y in c.ring
        ]
        geom = {"type": "Polygon", "coordinates": [ring + ring[:1]]}
        ll = transform_geom(crs, "EPSG:4326", geom, precision=8)
        area = _ring_area(c.ring) * spec.pixel_m**2
        truth.append(TruthChange(f"c{i}", c.kind, dict(ll), area, float(1.0 - max(cb, ca))))
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": t.id,
                "geometry": _plain(t.geometry),
                "properties": {
                    "kind": t.kind,
                    "area_m2": round(t.area_m2, 1),
                    "visible": round(t.visible, 3),
                },
            }
            for t in truth
        ],
    }
    (out / "truth.geojson").write_text(json.dumps(fc), encoding="utf-8")
    return ScenePair(
        paths[0], paths[1], out / "truth.geojson", cloud_paths[0], cloud_paths[1], tuple(truth)
    )


@dataclass(frozen=True, slots=True)
class SceneSeries:
    """A reference scene and later visits of one area of interest, and the changes' truth.

    ``visible[v][i]`` is the share of change ``i`` free of cloud and shadow on both the reference
    and visit ``v + 1``; ``changes`` carry their visibility on the reference and the first visit
    (as a pair's do).
    """

    before: Path
    before_clouds: Path
    later: tuple[Path, ...]
    later_clouds: tuple[Path, ...]
    dates: tuple[datetime, ...]
    truth: Path
    changes: tuple[TruthChange, ...]
    visible: tuple[tuple[float, ...], ...]


def write_series(
    spec: SceneSpec,
    out_dir: str | Path,
    visits: int,
    every_days: float = 10.0,
    cloud_cover: tuple[float, ...] | None = None,
) -> SceneSeries:
    """Write a revisit series of one area: the before date of ``spec`` and ``visits`` later
    dates ``every_days`` apart from ``spec.after_date``, each with fresh clouds, crop phenology,
    seasonal gain and noise, the changes persisting from the first later date on.

    The first later date is the after date :func:`write_pair` writes for ``spec`` (unless
    ``cloud_cover`` gives it another). Files: ``before.tif``, ``after_01.tif`` ...
    (``*_clouds.tif`` beside each) and ``truth.geojson``.

    Parameters
    ----------
    spec : SceneSpec
    out_dir : path
    visits : int
        Later dates, 1 to 99.
    every_days : float
        Days between later dates.
    cloud_cover : tuple of float, optional
        Cloud cover of each later date (default: ``spec.cloud_cover[1]`` for every one).

    Raises
    ------
    SimulatorError
        If ``visits`` or ``cloud_cover`` are out of bounds, or the changes cannot be placed.
    """
    if not 1 <= visits <= 99:
        raise SimulatorError(f"visits {visits} must be within 1..99")
    covers = cloud_cover or (spec.cloud_cover[1],) * visits
    if len(covers) != visits or any(not 0 <= c < 0.6 for c in covers):
        raise SimulatorError(f"cloud_cover {covers} must give {visits} values within 0..0.6")
    out = Path(out_dir)
    pair = write_pair(spec, out)
    lat = _Lattices(spec)
    changes = _place_changes(spec, lat)
    first = _date(spec.after_date)
    later, later_clouds, dates, cloudy = [], [], [], []
    for v in range(1, visits + 1):
        path, cpath = out / f"after_{v:02d}.tif", out / f"after_{v:02d}_clouds.tif"
        when = first + timedelta(days=every_days * (v - 1))
        cloudy.append(_write_date(spec, lat, changes, 1, path, cpath, v, when, covers[v - 1]))
        later.append(path)
        later_clouds.append(cpath)
        dates.append(when)
    pair.after.unlink()
    pair.after_clouds.unlink()
    before_cloudy = _cloudy_fraction(changes, pair.before_clouds, 0, 0)
    visible = tuple(
        tuple(float(1.0 - max(b, c)) for b, c in zip(before_cloudy, cv)) for cv in cloudy
    )
    return SceneSeries(
        pair.before,
        pair.before_clouds,
        tuple(later),
        tuple(later_clouds),
        tuple(dates),
        pair.truth,
        pair.changes,
        visible,
    )


def _plain(geom: dict) -> dict:
    return json.loads(json.dumps(geom, default=list))


def _ring_area(ring: tuple[tuple[float, float], ...]) -> float:
    x = np.array([p[0] for p in ring])
    y = np.array([p[1] for p in ring])
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _cloudy_fraction(changes: list[_Change], cloud_path: Path, ox: int, oy: int) -> np.ndarray:
    # Share of each change polygon under cloud or shadow (or outside the scene) on one date.
    out = np.zeros(len(changes))
    with rasterio.open(cloud_path) as src:
        for i, c in enumerate(changes):
            xs = [x - ox for x, _ in c.ring]
            ys = [y - oy for _, y in c.ring]
            c0, r0 = int(min(xs)) - 1, int(min(ys)) - 1
            w, h = int(max(xs)) - c0 + 2, int(max(ys)) - r0 + 2
            win = Window(c0, r0, w, h)
            clouds = src.read(1, window=win, boundless=True, fill_value=1)
            ring = [(x - c0, y - r0) for x, y in zip(xs, ys)]
            inside = rasterize(
                [({"type": "Polygon", "coordinates": [ring + ring[:1]]}, 1)],
                out_shape=(h, w),
                dtype="uint8",
            ).astype(bool)
            out[i] = float((clouds[inside] > 0).mean()) if inside.any() else 1.0
    return out


def read_truth(path: str | Path) -> list[TruthChange]:
    """The truth changes of a ``truth.geojson`` written by :func:`write_pair`."""
    fc = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        TruthChange(
            f.get("id", str(i)),
            f["properties"]["kind"],
            f["geometry"],
            f["properties"]["area_m2"],
            f["properties"].get("visible", 1.0),
        )
        for i, f in enumerate(fc["features"])
    ]


DN_GAINS = {
    8: (620.0, 520.0, 480.0, 400.0, 440.0, 500.0),
    12: (5200.0, 4700.0, 4400.0, 3600.0, 4000.0, 4500.0),
}
"""Default per-band gains (DN per unit reflectance, blue to swir2) of :func:`write_dn_copy`: an
8-bit export that fills its range with land and clips the brightest clouds in blue, and a 12-bit
product well inside its range. They differ band to band, as sensor gains do."""

DN_OFFSETS = {
    8: (14.0, 10.0, 6.0, 4.0, 3.0, 2.0),
    12: (180.0, 140.0, 110.0, 80.0, 60.0, 40.0),
}
"""Default per-band offsets (DN at zero reflectance: path radiance and sensor bias, largest in
blue) of :func:`write_dn_copy`."""


def write_dn_copy(
    pair: ScenePair,
    out_dir: str | Path,
    bits: int = 8,
    gains: tuple[float, ...] | None = None,
    offsets: tuple[float, ...] | None = None,
) -> ScenePair:
    """Write ``pair`` again as ``bits``-bit digital numbers, as a GIS export or a Level-1
    product delivers it: ``DN = round(reflectance * gain + offset)`` per band, clipped to
    ``1..2**bits - 1``, nodata 0, no scale or offset tag and no SCL band (band descriptions and
    acquisition tags kept). The truth files are copied beside the scenes.

    Parameters
    ----------
    pair : ScenePair
        A pair written by :func:`write_pair`.
    out_dir : path
    bits : int
        8 (``uint8``) or 10..16 (``uint16``).
    gains, offsets : tuple of float, optional
        Per band, blue first; by default :data:`DN_GAINS` and :data:`DN_OFFSETS` (for 8 bits, and
        for more bits the 12-bit ones scaled by ``2**(bits - 12)``).

    Raises
    ------
    SimulatorError
        If ``bits`` is outside 8..16 or the gains or offsets are too few for the bands.
    """
    if not 8 <= bits <= 16:
        raise SimulatorError(f"bits {bits} must be within 8..16")
    key = 8 if bits == 8 else 12
    f = 1.0 if bits == 8 else 2.0 ** (bits - 12)
    g = gains or tuple(x * f for x in DN_GAINS[key])
    o = offsets or tuple(x * f for x in DN_OFFSETS[key])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for src_path in (pair.before, pair.after):
        with rasterio.open(src_path) as src:
            names = [d for d in src.descriptions if d and d != "scl"]
            if len(g) < len(names) or len(o) < len(names):
                raise SimulatorError(
                    f"{len(names)} bands need as many gains and offsets, got {len(g)} and {len(o)}"
                )
            dn = src.read(list(range(1, len(names) + 1)))
            tags = src.tags()
            profile = dict(src.profile, count=len(names), dtype="uint8" if bits == 8 else "uint16")
        nodata = (dn == NODATA).all(axis=0)
        refl = dn.astype(np.float64) * SCALE + OFFSET
        top = 2**bits - 1
        data = np.stack(
            [np.clip(np.rint(refl[i] * g[i] + o[i]), 1, top) for i in range(len(names))]
        )
        data[:, nodata] = NODATA
        path = out / src_path.name
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data.astype(profile["dtype"]))
            for i, name in enumerate(names, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(**tags)
        paths.append(path)
    copies = []
    for p in (pair.truth, pair.before_clouds, pair.after_clouds):
        copies.append(out / p.name)
        copies[-1].write_bytes(p.read_bytes())
    return ScenePair(paths[0], paths[1], copies[0], copies[1], copies[2], pair.changes)
