"""The common grid of a scene pair: the overlap of both footprints, in one CRS and resolution.

:func:`common_grid` is pure: it takes each scene's CRS, transform and size and returns the
:class:`Grid` both are resampled onto: the before scene's CRS, the coarser of the two
resolutions (never invent detail by upsampling the coarser date), snapped to the before scene's
pixel phase. When both share a resolution the before scene is then read without resampling and
blocks line up with its tiles; the after scene is read through one ``WarpedVRT`` onto the grid
(or directly, when it too is pixel-aligned), so no pixel is resampled twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rasterio.crs import CRS
from rasterio.transform import Affine, array_bounds
from rasterio.warp import transform_bounds

from farsight.errors import FarsightError


class AlignError(FarsightError):
    """Raised when two scenes do not overlap or a grid is not north-up."""


@dataclass(frozen=True, slots=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.transform.b != 0 or self.transform.d != 0 or self.transform.e >= 0:
            raise AlignError(
                f"grid transform {tuple(self.transform)[:6]} must be north-up "
                "(no rotation, negative y step)"
            )
        if self.width < 1 or self.height < 1:
            raise AlignError(f"grid size {self.width}x{self.height} must be positive")

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units."""
        return self.transform.a, -self.transform.e

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        return array_bounds(self.height, self.width, self.transform)[:4]


def common_grid(
    before: Grid, after: Grid, crs: CRS | None = None, resolution: float | None = None
) -> Grid:
    """The grid covering the overlap of ``before`` and ``after``.

    Parameters
    ----------
    before, after : Grid
        Each scene's own grid.
    crs : CRS, optional
        Target CRS (default: the before scene's).
    resolution : float, optional
        Target pixel size in CRS units (default: the coarser of both scenes, measured in the
        target CRS).

    Returns
    -------
    Grid
        Snapped to the before scene's pixel phase when it shares the target CRS.

    Raises
    ------
    AlignError
        If the footprints do not overlap.
    """
    target = crs or before.crs
    bb = transform_bounds(before.crs, target, *before.bounds, densify_pts=21)
    ab = transform_bounds(after.crs, target, *after.bounds, densify_pts=21)
    left, bottom = max(bb[0], ab[0]), max(bb[1], ab[1])
    right, top = min(bb[2], ab[2]), min(bb[3], ab[3])
    if right <= left or top <= bottom:
        raise AlignError(
            f"the scenes do not overlap (before {bb}, after {ab} in {target.to_string()}); "
            "give two scenes of the same area"
        )
    if resolution is None:
        resolution = max(_res_in(before, target), _res_in(after, target))
    res = float(resolution)
    if before.crs == target:
        # Keep the before scene's pixel phase: at its own resolution it is then read without
        # resampling, and at a coarser one the grid edges still fall on its pixel edges.
        ox, oy = before.transform.c, before.transform.f
        left = ox + math.ceil((left - ox) / res - 1e-9) * res
        top = oy - math.ceil((oy - top) / res - 1e-9) * res
        width = math.floor((right - left) / res + 1e-9)
        height = math.floor((top - bottom) / res + 1e-9)
    else:
        width = max(1, round((right - left) / res))
        height = max(1, round((top - bottom) / res))
    if width < 1 or height < 1:
        raise AlignError("the overlap of the scenes is smaller than one pixel")
    return Grid(target, Affine(res, 0.0, left, 0.0, -res, top), width, height)


def _res_in(grid: Grid, target: CRS) -> float:
    if grid.crs == target:
        return max(grid.res)
    left, bottom, right, top = transform_bounds(grid.crs, target, *grid.bounds, densify_pts=21)
    return max((right - left) / grid.width, (top - bottom) / grid.height)
