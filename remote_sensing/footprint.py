"""What a scene pair observed: whether a change's area held data on both dates, free of cloud and
shadow, so a revisit that could not have seen a change is not counted against it
(:func:`remote_sensing.revisits.update`'s ``observed``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import shape

from remote_sensing.io import AlignedReader, reading_env
from remote_sensing.pipeline import DetectOptions, PairResult, usable_mask
from remote_sensing.postprocess import WGS84
from remote_sensing.revisits import Observed, Track

MIN_OBSERVED_SHARE = 0.5
"""A track's area counts as observed when at least this share of it was usable, the share the
accuracy benchmark counts a truth change as visible at."""


def _window(result: PairResult, geom: dict[str, Any], pad: int, step: int) -> Window | None:
    # The geometry's pixel box on the grid, padded for the reach of the cloud tests and aligned to
    # the mask phase the detection used; None when it lies off the grid.
    grid = result.grid
    minx, miny, maxx, maxy = shape(geom).bounds
    inv = ~grid.transform
    c0, r0 = inv * (minx, maxy)
    c1, r1 = inv * (maxx, miny)
    c0, r0 = max(0, int(c0) - pad), max(0, int(r0) - pad)
    c0, r0 = c0 - c0 % step, r0 - r0 % step
    c1, r1 = min(grid.width, int(c1) + 1 + pad), min(grid.height, int(r1) + 1 + pad)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def observed_share(result: PairResult, geometry: dict[str, Any], opts: DetectOptions) -> float:
    """Share of ``geometry`` (lon/lat) that the pair observed: inside the grid, with data on both
    dates and, unless ``opts`` turns the cloud mask off, free of cloud and shadow (0 when it
    lies off the grid)."""
    geom = transform_geom(WGS84, result.grid.crs, geometry)
    win = _window(result, geom, opts.overlap, opts.mask_step)
    if win is None:
        return 0.0
    shape_ = (int(win.height), int(win.width))
    inside = rasterize(
        [(geom, 1)], out_shape=shape_, transform=window_transform(win, result.grid.transform)
    ).astype(bool)
    if not inside.any():
        return 0.0
    with (
        reading_env(),
        AlignedReader(result.before, result.grid) as rb,
        AlignedReader(result.after, result.grid) as ra,
    ):
        usable = usable_mask(rb.read(win), ra.read(win), opts, result.calibration)
    # Pixels of the geometry off the grid were not observed either.
    total = shape(geom).area / abs(result.grid.transform.a * result.grid.transform.e)
    return float(np.count_nonzero(usable & inside) / max(total, float(inside.sum())))


def observer(
    result: PairResult, opts: DetectOptions, min_share: float = MIN_OBSERVED_SHARE
) -> Observed:
    """``observed(track)`` for :func:`remote_sensing.revisits.update`: whether the pair observed
    at least ``min_share`` of the track's area."""

    def observed(track: Track) -> bool:
        return observed_share(result, track.geometry, opts) >= min_share

    return observed
