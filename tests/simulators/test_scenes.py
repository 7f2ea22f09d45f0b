"""Scene-pair simulator: files shaped like an L2A product, changes exactly where the truth says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import shape

from simulators.scenes import KINDS, SceneSpec, SimulatorError, read_truth, write_pair

QUIET = {
    "width": 256,
    "height": 256,
    "tile": 64,
    "seasonal": False,
    "noise": 0.0,
    "cloud_cover": (0.0, 0.0),
    "shift_px": (0.0, 0.0),
    "offset_px": (0, 0),
    "nodata_border_px": 10,
    "changes_per_kind": 1,
    "change_ha": (0.6, 1.0),
}


def test_files_look_like_an_l2a_product(tmp_path):
    pair = write_pair(
        SceneSpec(
            seed=3,
            width=256,
            height=256,
            tile=64,
            scl=True,
            changes_per_kind=1,
            change_ha=(0.6, 1.0),
        ),
        tmp_path,
    )
    with rasterio.open(pair.before) as src:
        assert src.descriptions == ("blue", "green", "red", "nir", "swir1", "swir2", "scl")
        assert src.scales[:6] == (1e-4,) * 6 and src.offsets[:6] == (-0.1,) * 6
        assert src.scales[6] == 1.0 and src.nodata == 0
        assert src.block_shapes[0] == (64, 64)
        assert src.crs.to_epsg() == 32649
        assert src.tags()["ACQUISITION_DATETIME"] == "2026-03-02T03:10:00Z"
        dn = src.read(1)
        refl = dn[dn > 0] * 1e-4 - 0.1
        assert 0.0 < np.median(refl) < 0.2  # blue reflectance of land
        assert (dn[:, :3] == 0).any(), "the slanted nodata border is on the left of the before date"
    with rasterio.open(pair.after) as src:
        assert src.transform.c != 520000.0, "the after scene's extent is offset"
    fc = json.loads(pair.truth.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(KINDS)
    for f in fc["features"]:
        lon, lat = shape(f["geometry"]).centroid.coords[0]
        assert 111.1 < lon < 111.4 and 30.6 < lat < 30.8  # around Yichang
    assert [t.kind for t in read_truth(pair.truth)] == list(KINDS)


def test_same_spec_same_pixels_other_seed_other_pixels(tmp_path):
    a = write_pair(SceneSpec(seed=5, **QUIET), tmp_path / "a")
    b = write_pair(SceneSpec(seed=5, **QUIET), tmp_path / "b")
    c = write_pair(SceneSpec(seed=6, **QUIET), tmp_path / "c")

    def read(p: Path) -> np.ndarray:
        return rasterio.open(p).read()

    assert np.array_equal(read(a.after), read(b.after))
    assert not np.array_equal(read(a.after), read(c.after))


def test_changes_only_inside_truth_polygons(tmp_path):
    pair = write_pair(SceneSpec(seed=7, **QUIET), tmp_path)
    with rasterio.open(pair.before) as b, rasterio.open(pair.after) as a:
        diff = np.abs(b.read().astype(int) - a.read().astype(int)).max(axis=0)
        from rasterio.features import rasterize
        from rasterio.warp import transform_geom

        inside = rasterize(
            [(transform_geom("EPSG:4326", b.crs, t.geometry), 1) for t in pair.changes],
            out_shape=diff.shape,
            transform=b.transform,
            all_touched=True,
        ).astype(bool)
        valid = (b.read(1) > 0) & (a.read(1) > 0)
    assert diff[~inside & valid].max() == 0, (
        "no seasonal change, noise or shift: outside the truth nothing differs"
    )
    for t in pair.changes:
        one = rasterize(
            [(transform_geom("EPSG:4326", "EPSG:32649", t.geometry), 1)],
            out_shape=diff.shape,
            transform=rasterio.open(pair.before).transform,
        ).astype(bool)
        assert (diff[one] > 100).mean() > 0.9, t.kind


def test_windows_agree_at_seams(tmp_path):
    # Rendering in 256- and 512-pixel blocks gives the same scene: the fields are continuous.
    small = write_pair(
        SceneSpec(seed=8, **{**QUIET, "width": 600, "height": 300, "tile": 64}), tmp_path / "s"
    )
    big = write_pair(
        SceneSpec(seed=8, **{**QUIET, "width": 600, "height": 300, "tile": 128}), tmp_path / "b"
    )
    assert np.array_equal(rasterio.open(small.before).read(), rasterio.open(big.before).read())


def test_clouds_shadows_and_their_truth(tmp_path):
    pair = write_pair(
        SceneSpec(
            seed=9,
            width=256,
            height=256,
            tile=64,
            scl=True,
            changes_per_kind=0,
            cloud_cover=(0.0, 0.15),
        ),
        tmp_path,
    )
    with rasterio.open(pair.after_clouds) as src:
        truth = src.read(1)
    with rasterio.open(pair.after) as src:
        blue = src.read(1) * 1e-4 - 0.1
        scl = src.read(7)
    assert 0.03 < (truth == 1).mean() < 0.4
    assert (truth == 2).any(), "clouds cast shadows"
    assert np.median(blue[truth == 1]) > 2 * np.median(blue[truth == 0])
    assert np.isin(scl[truth == 1], (8, 9)).all() and (scl[truth == 2] == 3).all()
    assert (rasterio.open(pair.before_clouds).read(1) == 0).all()
    assert all(t.visible == 1.0 for t in pair.changes)


def test_truth_visibility_drops_under_cloud(tmp_path):
    pair = write_pair(
        SceneSpec(
            seed=1, width=320, height=320, tile=64, changes_per_kind=2, cloud_cover=(0.0, 0.3)
        ),
        tmp_path,
    )
    vis = [t.visible for t in pair.changes]
    assert min(vis) < 1.0 and max(vis) == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        {"bands": 5},
        {"width": 64},
        {"kinds": ("meteor",)},
        {"shift_px": (1.5, 0.0)},
        {"tile": 100},
    ],
)
def test_bad_specs_are_refused(bad):
    with pytest.raises(SimulatorError):
        SceneSpec(**bad)


def test_unplaceable_change_is_an_error(tmp_path):
    with pytest.raises(SimulatorError, match="could not place|no land cover"):
        write_pair(
            SceneSpec(
                seed=2, width=128, height=128, tile=64, changes_per_kind=3, change_ha=(20.0, 30.0)
            ),
            tmp_path,
        )
