"""Scene input: band roles, scale, offset and nodata, clear errors for unusable files."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from farsight.errors import ConfigError
from remote_sensing.io import AlignedReader, SceneError, open_scene, resolve_roles
from tests.remote_sensing.conftest import write_raster


def test_roles_from_descriptions_aliases_sensor_and_list():
    assert resolve_roles(("B02", "B03", "B04", "B08", "B11", "B12", "SCL")) == {
        "blue": 1,
        "green": 2,
        "red": 3,
        "nir": 4,
        "swir1": 5,
        "swir2": 6,
        "scl": 7,
    }
    assert resolve_roles((None,) * 8, sensor="landsat-c2l2")["nir"] == 5
    assert resolve_roles((None,) * 7, sensor="landsat-c2l2")["swir2"] == 7  # without QA_PIXEL
    assert resolve_roles((None,) * 4, sensor="gf1-wfv") == {
        "blue": 1,
        "green": 2,
        "red": 3,
        "nir": 4,
    }
    assert resolve_roles(("x",) * 5, bands=("nir", "red", "green", "blue", "-")) == {
        "nir": 1,
        "red": 2,
        "green": 3,
        "blue": 4,
    }


def test_unresolvable_roles_name_the_file_and_the_fix():
    with pytest.raises(
        ConfigError, match=r"scene\.tif.*no band for blue, green, red, nir.*--sensor"
    ):
        resolve_roles((None, None, None), source="scene.tif")
    with pytest.raises(ConfigError, match="unknown sensor; known: sentinel2-l2a"):
        resolve_roles((None,) * 4, sensor="spot9")
    with pytest.raises(ConfigError, match="has 4 bands: give 4 names"):
        resolve_roles((None,) * 4, bands=("blue", "green"))


def test_scale_offset_and_nodata_are_honoured(tmp_path):
    dn = np.full((4, 32, 32), 2000, np.uint16)
    dn[:, :, :4] = 0  # nodata border
    dn[3, 10, 10] = 0  # one band missing makes the pixel invalid
    path = write_raster(
        tmp_path / "s.tif",
        dn,
        nodata=0,
        descriptions=("blue", "green", "red", "nir"),
        scales=(1e-4, 1e-4, 2e-4, 1e-4),
        offsets=(-0.1, -0.1, 0.0, -0.1),
    )
    scene = open_scene(path)
    with AlignedReader(scene, scene.grid) as r:
        b = r.read(Window(0, 0, 32, 32))
    assert b.data["blue"][5, 20] == pytest.approx(0.1)
    assert b.data["red"][5, 20] == pytest.approx(0.4)
    assert not b.valid[:, :4].any() and not b.valid[10, 10] and b.valid[5, 20]


def test_sensor_preset_scaling_applies_when_the_file_has_none(tmp_path):
    dn = np.full((7, 16, 16), 20000, np.uint16)
    path = write_raster(tmp_path / "l8.tif", dn, nodata=0)
    scene = open_scene(path, sensor="landsat-c2l2")
    assert scene.roles == ("blue", "green", "red", "nir", "swir1", "swir2")
    assert scene.scales[0] == pytest.approx(2.75e-5) and scene.offsets[0] == pytest.approx(-0.2)
    with AlignedReader(scene, scene.grid) as r:
        assert r.read(Window(0, 0, 16, 16)).data["nir"][0, 0] == pytest.approx(
            20000 * 2.75e-5 - 0.2, abs=1e-6
        )


def test_qa_band_and_acquisition_time_are_found(pair6, cloudy):
    s = open_scene(cloudy.after)
    assert s.qa == ("scl", 7) and s.roles[-1] == "swir2"
    assert s.acquired is not None and s.acquired.isoformat() == "2026-05-11T03:10:00+00:00"
    assert open_scene(pair6.before).qa is None


def test_unreadable_file_is_a_scene_error(tmp_path):
    bad = tmp_path / "x.tif"
    bad.write_text("not a tiff")
    with pytest.raises(SceneError, match="cannot open as a raster"):
        open_scene(bad)


def test_descriptions_win_over_a_sensor_preset_but_not_over_an_explicit_list():
    described = ("nir", "red", "green", "blue")
    assert resolve_roles(described, sensor="gf1-wfv") == {"nir": 1, "red": 2, "green": 3, "blue": 4}
    assert resolve_roles(described, bands=("blue", "green", "red", "nir"))["blue"] == 1
