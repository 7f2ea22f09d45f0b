"""Alignment: the common grid of scenes in different CRS, resolution and extent."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window

from remote_sensing.align import AlignError, Grid, common_grid
from remote_sensing.io import AlignedReader, open_scene
from remote_sensing.pipeline import detect_pair
from tests.remote_sensing.conftest import write_raster


def _reproject(src_path, dst_path, crs, res=None):
    with rasterio.open(src_path) as src:
        transform, w, h = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=res
        )
        profile = src.profile | {
            "crs": crs,
            "transform": transform,
            "width": w,
            "height": h,
            "blockxsize": 64,
            "blockysize": 64,
        }
        with rasterio.open(dst_path, "w", **profile) as dst:
            for i in range(1, src.count + 1):
                reproject(
                    rasterio.band(src, i),
                    rasterio.band(dst, i),
                    resampling=Resampling.bilinear,
                    src_nodata=0,
                    dst_nodata=0,
                )
            dst.descriptions = src.descriptions
            dst.scales, dst.offsets = src.scales, src.offsets
            dst.update_tags(**src.tags())
    return dst_path


def test_grid_is_the_overlap_in_the_before_crs_at_the_coarser_resolution():
    utm = CRS.from_epsg(32649)
    from rasterio.transform import from_origin

    before = Grid(utm, from_origin(520000, 3400000, 10, 10), 300, 200)
    after = Grid(utm, from_origin(520555, 3399500, 20, 20), 300, 200)
    g = common_grid(before, after)
    assert g.crs == utm and g.res == (20.0, 20.0)
    left, bottom, right, top = g.bounds
    assert left >= 520555 and top <= 3399500 and right <= 523000 and bottom >= 3398000
    assert (left - 520000) % 20 == pytest.approx(0)  # the before scene's pixel phase is kept
    with pytest.raises(AlignError, match="do not overlap"):
        common_grid(before, Grid(utm, from_origin(600000, 3400000, 10, 10), 10, 10))


def test_pixel_aligned_scene_is_read_without_resampling(tmp_path):
    data = np.arange(4 * 40 * 40, dtype=np.uint16).reshape(4, 40, 40) + 1
    a = write_raster(
        tmp_path / "a.tif", data, nodata=0, descriptions=("blue", "green", "red", "nir")
    )
    b = write_raster(
        tmp_path / "b.tif",
        data[:, 5:, 3:].copy(),
        origin=(520030.0, 3399950.0),
        nodata=0,
        descriptions=("blue", "green", "red", "nir"),
    )
    sa, sb = open_scene(a), open_scene(b)
    g = common_grid(sa.grid, sb.grid)
    assert (g.width, g.height) == (37, 35)
    with AlignedReader(sa, g) as ra, AlignedReader(sb, g) as rb:
        assert ra.offset == (3, 5) and rb.offset == (0, 0)
        x, y = ra.read(Window(0, 0, 37, 35)), rb.read(Window(0, 0, 37, 35))
    assert np.array_equal(x.data["red"], y.data["red"])


def test_after_scene_in_another_crs_and_resolution_is_aligned_and_changes_found(pair6, tmp_path):
    # The after date delivered in lon/lat at about 15 m: one warp onto the before grid.
    after_ll = _reproject(
        pair6.after, tmp_path / "after_4326.tif", "EPSG:4326", res=(0.00015, 0.00015)
    )
    sb, sa = open_scene(pair6.before), open_scene(after_ll)
    g = common_grid(sb.grid, sa.grid)
    assert g.crs == sb.crs and g.res[0] > 10.0
    with AlignedReader(sb, g) as rb, AlignedReader(sa, g) as ra:
        assert ra.offset is None
        b, a = rb.read(Window(0, 0, g.width, g.height)), ra.read(Window(0, 0, g.width, g.height))
    both = b.valid & a.valid
    corr = np.corrcoef(b.data["nir"][both], a.data["nir"][both])[0, 1]
    assert corr > 0.8, "the warped after date lines up with the before date"
    result = detect_pair(pair6.before, after_ll)
    kinds = {r.kind for r in result.regions}
    assert {"water_gain", "new_construction", "bare_soil"} <= kinds
