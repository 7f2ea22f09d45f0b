"""Scene input: open a GeoTIFF/COG, resolve band roles, read aligned windows as reflectance.

:func:`open_scene` reads metadata only and returns a :class:`Scene`: which band holds which role
(from band descriptions, else a sensor preset; an explicit list overrides), each band's scale and
offset, nodata, the QA band (Sentinel-2 SCL or Landsat QA_PIXEL) and the acquisition time.
:class:`AlignedReader` reads windows of a scene on a common :class:`~remote_sensing.align.Grid`:
straight from the file when the scene already lies on the grid (a pixel-aligned translation),
else through one ``WarpedVRT`` (one resampling, no intermediate file). Values come back as
float32 reflectance, ``DN * scale + offset``, with a validity mask where every band had data.

This is the only module of the package that opens rasters; zones and revisit state files are read
here too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from farsight.errors import ConfigError, ConfigProblem, FarsightError
from remote_sensing.align import Grid
from remote_sensing.bands import (
    INSTRUMENT_ALIASES,
    BandSource,
    PairMatch,
    band_of_role,
    instrument_of,
    match_pair,
    roles_by_wavelength,
    wavelength,
)
from remote_sensing.radiometry import ProductScaling, Radiometry, band_stats, classify, zero_filled
from remote_sensing.sidecar import Sidecar, band_id, find_sidecar, read_sidecar

log = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")
"""Spectral roles the detectors use; ``blue, green, red`` are required (without ``nir`` fewer
change kinds can be told, see :func:`remote_sensing.detect.possible_kinds`)."""

REQUIRED_ROLES: tuple[str, ...] = ("blue", "green", "red")

NAMED_ROLES: tuple[str, ...] = ("blue", "green", "red", "nir")
"""The roles a scene without band names is asked to name (nir is wanted, not required)."""


class SceneError(FarsightError):
    """Raised when a scene file cannot be opened or read, or lacks the bands the analysis needs."""


@dataclass(frozen=True, slots=True)
class SensorPreset:
    """Band order of a product: the role of each band (``None`` for bands not used)."""

    name: str
    roles: tuple[str | None, ...]
    scale: float = 1.0
    offset: float = 0.0
    qa: str | None = None
    instrument: str | None = None


_S2 = (None, "blue", "green", "red", None, None, None, "nir", None, None, "swir1", "swir2")
SENSORS: dict[str, SensorPreset] = {
    p.name: p
    for p in (
        # Sentinel-2 L2A: B01..B12 without B10, then SCL; baseline >= 04.00 adds -1000 DN offset.
        SensorPreset("sentinel2-l2a", _S2 + ("scl",), 1e-4, -0.1, "scl", "sentinel2-msi"),
        # The 10/20 m bands most stacks keep: B02 B03 B04 B08 B11 B12 (SCL optional).
        SensorPreset(
            "sentinel2-l2a-stack",
            ("blue", "green", "red", "nir", "swir1", "swir2", "scl"),
            1e-4,
            -0.1,
            "scl",
            "sentinel2-msi",
        ),
        # Landsat 8/9 Collection 2 Level-2: SR_B1..SR_B7 then QA_PIXEL; USGS scale and offset.
        SensorPreset(
            "landsat-c2l2",
            (None, "blue", "green", "red", "nir", "swir1", "swir2", "qa_pixel"),
            2.75e-5,
            -0.2,
            "qa_pixel",
            "landsat8-oli",
        ),
        # Gaofen WFV/PMS multispectral: blue green red nir (GF-6 WFV adds red edges, purple,
        # yellow).
        SensorPreset("gf1-wfv", ("blue", "green", "red", "nir"), instrument="gf1-wfv"),
        SensorPreset(
            "gf6-wfv",
            ("blue", "green", "red", "nir", None, None, None, None),
            instrument="gf6-wfv",
        ),
        SensorPreset("gf2-pms", ("blue", "green", "red", "nir"), instrument="gf2-pms"),
    )
}
"""Sensor presets by name (``--sensor``): band order and product scaling."""

SENSOR_NAMES: tuple[str, ...] = tuple(sorted({*SENSORS, *INSTRUMENT_ALIASES}))
"""What ``--sensor`` accepts: a preset (band order) or an instrument (``landsat8``,
``sentinel2-msi``: bands named by number in the descriptions get roles by wavelength)."""

_ALIASES = {
    "blue": "blue",
    "green": "green",
    "red": "red",
    "nir": "nir",
    "near infrared": "nir",
    "nir08": "nir",
    "swir1": "swir1",
    "swir16": "swir1",
    "swir 1": "swir1",
    "swir2": "swir2",
    "swir22": "swir2",
    "swir 2": "swir2",
    "b02": "blue",
    "b03": "green",
    "b04": "red",
    "b08": "nir",
    "b11": "swir1",
    "b12": "swir2",
    "sr_b2": "blue",
    "sr_b3": "green",
    "sr_b4": "red",
    "sr_b5": "nir",
    "sr_b6": "swir1",
    "sr_b7": "swir2",
    "scl": "scl",
    "qa_pixel": "qa_pixel",
}


@dataclass(frozen=True, slots=True)
class Scene:
    """Metadata of one scene: grid, band roles, scaling, nodata, QA band and date.

    ``roles[i]`` is held by 1-based band ``indexes[i]``, whose reflectance is
    ``DN * scales[i] + offsets[i]``.
    """

    path: Path
    crs: CRS
    transform: Affine
    width: int
    height: int
    roles: tuple[str, ...]
    indexes: tuple[int, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    nodata: float | None
    qa: tuple[str, int] | None
    acquired: datetime | None
    block_shape: tuple[int, int]
    dtype: str
    radiometry: Radiometry | None = None
    sources: tuple[BandSource, ...] = ()
    instrument: str | None = None
    sidecar: Path | None = None

    def only(self, roles: tuple[str, ...]) -> Scene:
        """This scene restricted to ``roles`` (kept in the scene's order)."""
        keep = [i for i, r in enumerate(self.roles) if r in roles]

        def pick(values: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(values[i] for i in keep) if values else values

        rad = self.radiometry
        if rad is not None:
            rad = replace(rad, scales=pick(rad.scales), offsets=pick(rad.offsets))
        return replace(
            self,
            roles=pick(self.roles),
            indexes=pick(self.indexes),
            scales=pick(self.scales),
            offsets=pick(self.offsets),
            sources=pick(self.sources),
            radiometry=rad,
        )

    @property
    def grid(self) -> Grid:
        """The scene's own pixel grid."""
        return Grid(self.crs, self.transform, self.width, self.height)


def _described(descriptions: tuple[str | None, ...]) -> set[str]:
    return {
        _ALIASES[d.strip().lower()] for d in descriptions if d and d.strip().lower() in _ALIASES
    }


def resolve_roles(
    descriptions: tuple[str | None, ...],
    sensor: str | None = None,
    bands: tuple[str, ...] | None = None,
    source: str = "",
) -> dict[str, int]:
    """Map roles (and ``scl``/``qa_pixel``) to 1-based band indexes.

    The band descriptions decide when they name the required roles; otherwise the ``sensor``
    preset's band order. An explicit ``bands`` list overrides both (for files whose descriptions
    are wrong).

    Raises
    ------
    ConfigError
        If the sensor is unknown, the list does not match the band count, or a required role is
        missing; the message names the file and the fix.
    """
    count = len(descriptions)
    if bands:
        if len(bands) != count:
            raise ConfigError(
                [
                    ConfigProblem(
                        "--bands",
                        ",".join(bands),
                        f"{source} has {count} bands: give {count} names "
                        "(use '-' for a band to skip)",
                    )
                ],
                source,
            )
        names = tuple(
            None if b in ("-", "", "none") else _ALIASES.get(b.strip().lower(), b.strip().lower())
            for b in bands
        )
    elif sensor and not all(r in _described(descriptions) for r in NAMED_ROLES):
        if sensor not in SENSORS:
            raise ConfigError(
                [ConfigProblem("--sensor", sensor, f"unknown sensor; known: {', '.join(SENSORS)}")],
                source,
            )
        preset = SENSORS[sensor].roles
        if count not in (
            len(preset),
            len(preset) - (1 if preset[-1] in ("scl", "qa_pixel") else 0),
        ):
            raise ConfigError(
                [
                    ConfigProblem(
                        "--sensor",
                        sensor,
                        f"{source} has {count} bands but preset {sensor} expects "
                        f"{len(preset)}; use --bands",
                    )
                ],
                source,
            )
        names = preset[:count]
    else:
        if sensor and sensor not in SENSORS:
            raise ConfigError(
                [ConfigProblem("--sensor", sensor, f"unknown sensor; known: {', '.join(SENSORS)}")],
                source,
            )
        names = tuple(_ALIASES.get((d or "").strip().lower()) for d in descriptions)
    found: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name and name not in found:
            found[name] = i
    missing = [r for r in NAMED_ROLES if r not in found]
    if any(r in missing for r in REQUIRED_ROLES):
        raise ConfigError(
            [
                ConfigProblem(
                    "bands",
                    list(descriptions),
                    f"{source}: no band for {', '.join(missing)}; name the bands in the file's "
                    f"descriptions, or pass --sensor ({', '.join(SENSORS)}) "
                    "or --bands blue,green,red,nir,...",
                )
            ],
            source,
        )
    return found


def _acquired(tags: dict[str, str]) -> datetime | None:
    for key in ("ACQUISITION_DATETIME", "DATETIME", "TIFFTAG_DATETIME", "SENSING_TIME"):
        text = tags.get(key)
        if not text:
            continue
        for parse in (
            datetime.fromisoformat,
            lambda t: datetime.strptime(t, "%Y:%m:%d %H:%M:%S"),
        ):
            try:
                ts = parse(text.strip())
            except ValueError:
                continue
            return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return None


STATS_SIZE = 512
"""Longest side of the decimated read whose statistics tell what a scene's numbers are."""


def _radiometry(
    src: Any,
    idx: tuple[int, ...],
    roles: tuple[str, ...],
    preset: SensorPreset | None,
    scale: tuple[float, float] | None,
    sidecar: ProductScaling | None = None,
) -> tuple[Radiometry, float | None]:
    # A decimated read (an overview where the file has one) is enough for percentiles.
    f = max(1, math.ceil(max(src.width, src.height) / STATS_SIZE))
    shape = (len(idx), max(1, src.height // f), max(1, src.width // f))
    values = src.read(list(idx), out_shape=shape, resampling=Resampling.nearest)
    nodata = src.nodata
    zero = nodata is None and zero_filled(values, src.dtypes[0])
    if zero:
        nodata = 0.0
    valid = np.ones(shape[1:], bool)
    if nodata is not None:
        valid &= ~(values == nodata).any(axis=0)
    if src.dtypes[0].startswith("float"):
        valid &= np.isfinite(values).all(axis=0)
    stats = band_stats(values, valid)
    rad = classify(
        stats,
        roles,
        src.dtypes[0],
        tuple(float(src.scales[i - 1] or 1.0) for i in idx),
        tuple(float(src.offsets[i - 1] or 0.0) for i in idx),
        (preset.scale, preset.offset) if preset is not None and preset.scale != 1.0 else None,
        scale,
        sidecar,
    )
    if zero:
        rad = Radiometry(rad.kind, rad.source, rad.scales, rad.offsets, rad.relative, True)
    return rad, nodata


def _band_ids(
    descriptions: tuple[str | None, ...], path: Path, side: Sidecar | None
) -> tuple[str | None, ...]:
    ids = tuple(band_id(d) for d in descriptions)
    if side is None or any(ids):
        return ids
    if len(ids) == 1:
        # A per-band file the MTL names (LC08_..._B4.TIF) knows its band number.
        return (side.band_of_file(path.name),)
    # A stack without descriptions holding every band the metadata lists (CRESDA's
    # <Bands>1,2,3,4</Bands>) holds them in that order.
    return side.bands if len(side.bands) == len(ids) else ids


def _role_descriptions(
    descriptions: tuple[str | None, ...], ids: tuple[str | None, ...], instrument: str | None
) -> tuple[str | None, ...]:
    # Band numbers (B2, B02, SR_B2) mean different bands on different instruments: with the
    # instrument known they get roles by wavelength, unless the descriptions already name them.
    if (
        instrument is None
        or not any(ids)
        or all(r in _described(descriptions) for r in REQUIRED_ROLES)
    ):
        return descriptions
    by_wavelength = roles_by_wavelength(instrument, ids)
    return tuple(r or d for r, d in zip(by_wavelength, descriptions))


def _band_sources(
    roles: tuple[str, ...],
    idx: tuple[int, ...],
    descriptions: tuple[str | None, ...],
    ids: tuple[str | None, ...],
    instrument: str | None,
) -> tuple[tuple[BandSource, ...], tuple[str | None, ...]]:
    sources, role_ids = [], []
    for role, i in zip(roles, idx):
        bid = ids[i - 1] or band_of_role(instrument, role)
        name = descriptions[i - 1] or f"band {i}"
        sources.append(BandSource(name, instrument, wavelength(instrument, bid)))
        role_ids.append(bid)
    return tuple(sources), tuple(role_ids)


def _calibration(side: Sidecar | None, role_ids: tuple[str | None, ...]) -> ProductScaling | None:
    if side is None:
        return None
    if side.product == "dn":
        return ProductScaling(side.source())
    pairs = [side.calibration(b) for b in role_ids]
    if any(p is None for p in pairs):
        log.warning(
            "%s: its bands %s are not all in the metadata file; the file's coefficients are not"
            " used",
            side.path,
            list(role_ids),
        )
        return None
    return ProductScaling(
        side.source(),
        "reflectance",
        tuple(p[0] for p in pairs if p is not None),
        tuple(p[1] for p in pairs if p is not None),
    )


def open_scene(
    path: str | Path,
    sensor: str | None = None,
    bands: tuple[str, ...] | None = None,
    scale: tuple[float, float] | None = None,
) -> Scene:
    """Read the metadata of a scene file and what its numbers are (a decimated read).

    Band roles come from ``bands`` (``--bands``), else the band descriptions, else the
    ``sensor`` preset's band order. Bands named by number (``B2``, ``B02``, ``SR_B2``) get
    roles by wavelength when the instrument is known: from ``sensor`` (a preset or an
    instrument name such as ``landsat8``) or from the product metadata file beside the scene
    (:func:`remote_sensing.sidecar.find_sidecar`).

    Each band is mapped to reflectance as :func:`remote_sensing.radiometry.classify` decides:
    ``scale`` (the user's ``--scale``: scale and offset) wins; then the file's scale and offset;
    then the product metadata file (Landsat MTL: TOA or surface reflectance; Sentinel-2 MTD:
    quantification and offset); then the sensor preset's product scaling; else the data type
    and value range tell reflectance, reflectance x 1e4 or digital numbers (a relative map). An
    integer file without a nodata tag but zero-filled outside its footprint gets nodata 0.

    A metadata file found beside the scene that cannot be parsed is an error, not ignored: it
    decides the radiometry, and silently guessing instead would change what is found.

    Raises
    ------
    SceneError
        If the file cannot be opened or is not georeferenced.
    SidecarError
        If the scene's product metadata file is malformed (the message names it and the key).
    ConfigError
        If band roles cannot be resolved (see :func:`resolve_roles`).
    """
    p = Path(path)
    instrument = instrument_of(sensor)
    preset_name = None if instrument is not None and sensor not in SENSORS else sensor
    found_sidecar = find_sidecar(p) if p.is_file() else None
    side = read_sidecar(found_sidecar) if found_sidecar is not None else None
    try:
        with rasterio.open(p) as src:
            if src.crs is None or src.transform.is_identity:
                raise SceneError(
                    f"{p}: not georeferenced (no CRS or geotransform); give a GeoTIFF with a CRS"
                )
            preset = SENSORS.get(preset_name or "")
            instrument = instrument or (preset.instrument if preset else None)
            instrument = instrument or (side.instrument if side else None)
            descriptions = tuple(src.descriptions)
            ids = _band_ids(descriptions, p, side)
            found = resolve_roles(
                _role_descriptions(descriptions, ids, instrument), preset_name, bands, str(p)
            )
            roles = tuple(r for r in ROLES if r in found)
            idx = tuple(found[r] for r in roles)
            sources, role_ids = _band_sources(roles, idx, descriptions, ids, instrument)
            rad, nodata = _radiometry(src, idx, roles, preset, scale, _calibration(side, role_ids))
            qa = next(((k, found[k]) for k in ("scl", "qa_pixel") if k in found), None)
            acquired = _acquired(src.tags()) or (side.acquired if side else None)
            return Scene(
                path=p,
                crs=src.crs,
                transform=src.transform,
                width=src.width,
                height=src.height,
                roles=roles,
                indexes=idx,
                scales=rad.scales,
                offsets=rad.offsets,
                nodata=nodata,
                qa=qa,
                acquired=acquired,
                block_shape=tuple(src.block_shapes[0]),
                dtype=src.dtypes[0],
                radiometry=rad,
                sources=sources,
                instrument=instrument,
                sidecar=found_sidecar,
            )
    except RasterioError as exc:
        raise SceneError(
            f"{p}: cannot open as a raster ({exc}); give a GeoTIFF or COG path"
        ) from None


def match_scenes(before: Scene, after: Scene) -> tuple[Scene, Scene, PairMatch]:
    """The two scenes restricted to the roles both have (by wavelength where the instruments
    are known, :func:`remote_sensing.bands.match_pair`), and the match that says how.

    Raises
    ------
    ConfigError
        If blue, green or red cannot be paired (bands too far apart in wavelength).
    """

    def by_role(s: Scene) -> dict[str, BandSource]:
        sources = s.sources or tuple(BandSource(r) for r in s.roles)
        return dict(zip(s.roles, sources))

    match = match_pair(by_role(before), by_role(after), ROLES)
    lost = [r for r in REQUIRED_ROLES if r not in match.roles]
    if lost:
        raise ConfigError(
            [
                ConfigProblem(f"bands.{r}", why, "the two dates' bands cannot be compared")
                for r, why in match.dropped
                if r in lost
            ],
            f"{before.path} / {after.path}",
        )
    return before.only(match.roles), after.only(match.roles), match


@dataclass(frozen=True, slots=True)
class Bands:
    """Reflectance of one window: ``data[role]`` float32 arrays, ``valid`` where every band had
    data, ``qa`` the QA band (or ``None``), ``saturated`` where an integer band sits at its data
    type's maximum (``None`` for float files)."""

    data: dict[str, np.ndarray]
    valid: np.ndarray
    qa: np.ndarray | None = None
    qa_kind: str | None = None
    saturated: np.ndarray | None = None


def _integer_offset(scene: Scene, grid: Grid) -> tuple[int, int] | None:
    # Same CRS, same pixel size, origin a whole number of pixels away: read the file directly.
    if scene.crs != grid.crs:
        return None
    a, b = scene.transform, grid.transform
    if not all(
        math.isclose(x, y, rel_tol=0, abs_tol=1e-9 * max(1.0, abs(y)))
        for x, y in ((a.a, b.a), (a.b, b.b), (a.d, b.d), (a.e, b.e))
    ):
        return None
    col = (b.c - a.c) / a.a
    row = (b.f - a.f) / a.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(col), round(row)


class AlignedReader:
    """Reads windows of a scene resampled onto ``grid`` (bilinear for reflectance, nearest for QA).

    Thread-safe for reads from several threads: each thread opens its own dataset handles, as
    GDAL dataset handles must not be shared between threads.
    """

    def __init__(
        self, scene: Scene, grid: Grid, resampling: Resampling = Resampling.bilinear
    ) -> None:
        self.scene = scene
        self.grid = grid
        self.resampling = resampling
        self.offset = _integer_offset(scene, grid)
        self._local = threading.local()
        self._all: list[Any] = []

    def _handles(self) -> tuple[Any, Any, Any]:
        h = getattr(self._local, "h", None)
        if h is None:
            try:
                src = rasterio.open(self.scene.path)
            except RasterioError as exc:
                raise SceneError(f"{self.scene.path}: cannot open ({exc})") from None
            if self.offset is not None:
                h = (src, src, src)
            else:
                g = self.grid
                opts = {
                    "crs": g.crs,
                    "transform": g.transform,
                    "width": g.width,
                    "height": g.height,
                    "src_nodata": self.scene.nodata,
                    "nodata": self.scene.nodata if self.scene.nodata is not None else 0,
                }
                h = (
                    src,
                    WarpedVRT(src, resampling=self.resampling, **opts),
                    WarpedVRT(src, resampling=Resampling.nearest, **opts),
                )
            self._local.h = h
            self._all.append(h)
        return h

    def _read(self, ds: Any, indexes: list[int], win: Window) -> np.ndarray:
        fill = self.scene.nodata if self.scene.nodata is not None else 0
        if self.offset is None:
            return ds.read(indexes, window=win)
        # Pixel-aligned: read the part of the window inside the file, pad the rest with nodata.
        c0, r0 = int(win.col_off) + self.offset[0], int(win.row_off) + self.offset[1]
        w, h = int(win.width), int(win.height)
        if c0 >= 0 and r0 >= 0 and c0 + w <= self.scene.width and r0 + h <= self.scene.height:
            return ds.read(indexes, window=Window(c0, r0, w, h))  # inside the file: no padding copy
        out = np.full((len(indexes), h, w), fill, dtype=self.scene.dtype)
        cc0, rr0 = max(c0, 0), max(r0, 0)
        cc1, rr1 = min(c0 + w, self.scene.width), min(r0 + h, self.scene.height)
        if cc1 > cc0 and rr1 > rr0:
            out[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = ds.read(
                indexes, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
            )
        return out

    def read(self, win: Window) -> Bands:
        """Reflectance of ``win`` of the grid.

        Raises
        ------
        SceneError
            If the file cannot be read.
        """
        _, vrt, vrt_nearest = self._handles()
        s = self.scene
        try:
            dn = self._read(vrt, list(s.indexes), win)
            qa = self._read(vrt_nearest, [s.qa[1]], win)[0] if s.qa else None
        except RasterioError as exc:
            raise SceneError(f"{s.path}: cannot read window {win} ({exc})") from None
        valid = np.ones(dn.shape[1:], bool) if s.nodata is None else ~(dn == s.nodata).any(axis=0)
        data = {}
        for i, role in enumerate(s.roles):
            # One pass to float32 with the scale, one in-place add: no extra temporaries.
            band = np.multiply(dn[i], np.float32(s.scales[i]), dtype=np.float32)
            if s.offsets[i]:
                band += np.float32(s.offsets[i])
            data[role] = band
        saturated = None
        if np.issubdtype(dn.dtype, np.integer):
            # Clipped pixels are equal on both dates whatever changed; fits must not use them.
            saturated = (dn == np.iinfo(dn.dtype).max).any(axis=0)
        return Bands(data, valid, qa, s.qa[0] if s.qa else None, saturated)

    def close(self) -> None:
        """Close every handle opened by any thread."""
        for h in self._all:
            for ds in {id(x): x for x in h}.values():
                ds.close()
        self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


GDAL_CACHE_MB = 384
"""GDAL block-cache cap (MB) while scenes are read. Block cores sit on tiles, but their overlaps
reach into the neighbouring tiles: the cache keeps about one row of blocks' tiles of both scenes
(each tile is then decoded once); GDAL's default, 5 % of RAM, would dominate peak RSS."""


def reading_env(cache_mb: int = GDAL_CACHE_MB) -> rasterio.Env:
    """A ``rasterio.Env`` for scene reading: bounded block cache, no directory listing on open.

    GDAL sizes its block cache once, on first use; a ``GDAL_CACHEMAX`` set in the environment
    wins over ``cache_mb``.
    """
    if os.environ.get("GDAL_CACHEMAX"):
        return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")
    return rasterio.Env(
        GDAL_CACHEMAX=cache_mb * 1024 * 1024, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"
    )


def read_geojson(path: str | Path) -> dict[str, Any]:
    """Parse a GeoJSON file.

    Raises
    ------
    ConfigError
        If the file is missing or not JSON.
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigProblem(
                    "--zones", str(p), "file not found; give a GeoJSON FeatureCollection of zones"
                )
            ],
            str(p),
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "--zones", str(p), f"not valid JSON ({exc}); give a GeoJSON FeatureCollection"
                )
            ],
            str(p),
        ) from None


def read_state(path: str | Path) -> dict[str, Any]:
    """The revisit state file as JSON (empty when the file does not exist yet)."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "state",
                    str(p),
                    f"revisit state is not valid JSON ({exc}); delete the file to start afresh",
                )
            ],
            str(p),
        ) from None
