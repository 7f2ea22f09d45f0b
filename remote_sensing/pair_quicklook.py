"""Whole-pair quicklooks for ``rs detect --quicklook``: before, after and the changes as PNGs.

For a user who is not running the platform: the pair on its common grid, downsampled so the long
side is at most :data:`MAX_SIDE` pixels (read through :class:`~remote_sensing.io.AlignedReader`
onto a coarser grid with average resampling, so a large scene is never loaded whole), in true
colour. The after date is normalised as the detection normalised it and both dates share one
2-98 % stretch, so a brightness difference on the PNGs is one the detection saw. The mask PNG is
the after image dimmed, each change painted in its kind's colour (:data:`KIND_COLOURS`).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.warp import transform_geom
from rasterio.windows import Window

from farsight.errors import StoreError
from farsight.evidence import atomic_write
from remote_sensing.align import Grid
from remote_sensing.io import AlignedReader, reading_env
from remote_sensing.output import to_u8
from remote_sensing.pipeline import PairResult, Region, prepared
from remote_sensing.postprocess import WGS84

MAX_SIDE = 1024
"""Longest side of the quicklook PNGs, in pixels."""

KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "new_construction": (255, 40, 40),
    "vegetation_loss": (255, 160, 0),
    "bare_soil": (230, 0, 230),
    "water_gain": (40, 110, 255),
    "water_loss": (0, 230, 230),
    "unclassified": (255, 255, 255),
}
"""RGB colour of each change kind on the mask PNG: new construction red, vegetation loss orange,
bare soil magenta, water gain blue, water loss cyan, unclassified white."""

DIM = 0.35
"""Brightness of the after image under the mask."""

RGB_ROLES = ("red", "green", "blue")


def overview_grid(grid: Grid, max_side: int = MAX_SIDE) -> Grid:
    """``grid`` coarsened by a whole factor so that its long side is at most ``max_side``."""
    f = max(1, math.ceil(max(grid.width, grid.height) / max_side))
    if f == 1:
        return grid
    return Grid(
        grid.crs,
        grid.transform * Affine.scale(f),
        math.ceil(grid.width / f),
        math.ceil(grid.height / f),
    )


def _rgb(bands: dict[str, np.ndarray]) -> np.ndarray:
    # True colour where the pair has it; grey from the first shared band otherwise.
    roles = [r for r in RGB_ROLES if r in bands] or [next(iter(bands))]
    chans = [bands[r] for r in roles]
    while len(chans) < 3:
        chans.append(chans[0])
    return np.stack(chans, axis=-1)


def kind_raster(regions: tuple[Region, ...] | list[Region], grid: Grid) -> np.ndarray:
    """Per pixel of ``grid``: 0, or 1 + the index in :data:`KIND_COLOURS` of the region's kind
    (every pixel a region touches, so small changes stay visible when downsampled)."""
    kinds = list(KIND_COLOURS)
    shapes = [
        (
            transform_geom(WGS84, grid.crs, r.geometry),
            kinds.index(r.kind if r.kind in KIND_COLOURS else "unclassified") + 1,
        )
        for r in regions
    ]
    if not shapes:
        return np.zeros((grid.height, grid.width), np.uint8)
    return rasterize(
        shapes,
        out_shape=(grid.height, grid.width),
        transform=grid.transform,
        all_touched=True,
        dtype="uint8",
    )


def quicklook_images(
    result: PairResult, regions: tuple[Region, ...] | list[Region], max_side: int = MAX_SIDE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Before, after and mask images (RGB ``uint8``, rows x cols x 3) of the whole pair."""
    grid = overview_grid(result.grid, max_side)
    win = Window(0, 0, grid.width, grid.height)
    with (
        reading_env(),
        AlignedReader(result.before, grid, Resampling.average) as rb,
        AlignedReader(result.after, grid, Resampling.average) as ra,
    ):
        b, a = rb.read(win), ra.read(win)
    before, after = prepared(b, a, result.calibration)
    valid = b.valid & a.valid
    brgb, argb = _rgb(before), _rgb(after)
    both = np.concatenate([brgb[valid].ravel(), argb[valid].ravel()])
    lo, hi = np.percentile(both, (2, 98)) if both.size else (0.0, 1.0)
    out = []
    for rgb, ok in ((brgb, b.valid), (argb, a.valid)):
        img = to_u8(rgb, float(lo), float(hi))
        img[~ok] = 0
        out.append(img)
    mask = (out[1] * DIM).astype(np.uint8)
    codes = kind_raster(regions, grid)
    palette = np.array([(0, 0, 0), *KIND_COLOURS.values()], np.uint8)
    mask[codes > 0] = palette[codes[codes > 0]]
    return out[0], out[1], mask


def quicklook_paths(out: Path) -> tuple[Path, Path, Path]:
    """``<stem>_before.png``, ``<stem>_after.png``, ``<stem>_mask.png`` beside ``out``."""

    def beside(name: str) -> Path:
        return out.with_name(f"{out.stem}_{name}.png")

    return beside("before"), beside("after"), beside("mask")


def write_quicklooks(
    result: PairResult,
    regions: tuple[Region, ...] | list[Region],
    out: Path,
    max_side: int = MAX_SIDE,
) -> tuple[Path, Path, Path]:
    """Write the before, after and mask PNGs of the pair beside ``out`` (the GeoJSON path).

    Raises
    ------
    StoreError
        If a PNG cannot be encoded.
    """
    paths = quicklook_paths(out)
    for path, img in zip(paths, quicklook_images(result, regions, max_side)):
        ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if not ok:
            raise StoreError(f"PNG encoding of {path} failed")
        atomic_write(path, buf.tobytes())
    return paths
