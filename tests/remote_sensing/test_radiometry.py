"""What a scene's numbers are: :func:`classify` on statistics, and the same pair delivered as
reflectance, as reflectance x 1e4 without a scale tag, and as digital numbers with ``--scale``
giving the same changes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio

from remote_sensing.io import open_scene
from remote_sensing.pipeline import DetectOptions, PairResult, detect_pair
from remote_sensing.radiometry import BandStats, classify, zero_filled

RGBN = ("blue", "green", "red", "nir")


def _stats(*bands: tuple[float, float, float, float]) -> tuple[BandStats, ...]:
    return tuple(BandStats(*b) for b in bands)


def test_file_scale_then_preset_then_range_decide_and_scale_flag_wins():
    st = _stats(*[(1200, 2000, 9000, 12000)] * 4)
    ones, zeros = (1.0,) * 4, (0.0,) * 4
    r = classify(st, RGBN, "uint16", (1e-4,) * 4, (-0.1,) * 4)
    assert (r.kind, r.source, r.scales, r.offsets) == (
        "reflectance",
        "file scale/offset",
        (1e-4,) * 4,
        (-0.1,) * 4,
    )
    r = classify(st, RGBN, "uint16", ones, zeros, preset=(2.75e-5, -0.2))
    assert (r.source, r.scales[0], r.offsets[0]) == ("sensor preset", 2.75e-5, -0.2)
    r = classify(st, RGBN, "uint16", (1e-4,) * 4, zeros, scale=(2e-5, -0.1))
    assert (r.source, r.scales[0], r.offsets[0]) == ("--scale", 2e-5, -0.1)


def test_value_range_tells_reflectance_scaled_reflectance_and_digital_numbers():
    ones, zeros = (1.0,) * 4, (0.0,) * 4
    r = classify(_stats(*[(0.01, 0.08, 0.5, 0.9)] * 4), RGBN, "float32", ones, zeros)
    assert r.describe() == "reflectance (data type)" and not r.relative
    r = classify(_stats(*[(150, 900, 6000, 11000)] * 4), RGBN, "uint16", ones, zeros)
    assert r.describe() == "reflectance-1e4 (guessed from range)" and r.scales == (1e-4,) * 4
    # Landsat 8 Level-1 DNs: the dark end near 7000, no scale tag.
    l1 = _stats((7400, 7800, 8600, 18000), (6400, 6900, 8000, 17000), (5600, 6200, 7900, 20000))
    r = classify(l1, ("blue", "green", "red"), "uint16", ones[:3], zeros[:3])
    assert r.describe() == "dn-16bit (guessed from range)" and r.relative
    r = classify(_stats(*[(39, 100, 240, 255)] * 4), RGBN, "uint8", ones, zeros)
    assert r.describe() == "dn-8bit (guessed from range)"
    # A relative map puts each band's dark end at 0.02 and the median visible at 0.08.
    assert r.scales[0] * 39 + r.offsets[0] == pytest.approx(0.02)
    assert r.scales[0] * 100 + r.offsets[0] == pytest.approx(0.08)
    r = classify(_stats(*[(20, 300, 900, 1023)] * 4), RGBN, "uint16", ones, zeros)
    assert r.kind == "dn-10bit"


def test_zero_filled_edges_need_zeros_in_every_band():
    v = np.full((3, 100, 100), 500, np.uint16)
    v[:, :, :5] = 0
    assert zero_filled(v, "uint16")
    v[1, :, :5] = 3  # a band with data there: dark pixels, not fill
    assert not zero_filled(v, "uint16")
    assert not zero_filled(np.zeros((3, 4, 4), np.float32), "float32")


def _copy(src_path: Path, dst: Path, fn, dtype: str, nodata: float, tags: bool) -> Path:
    with rasterio.open(src_path) as src:
        dn = src.read()
        names = src.descriptions
        profile = dict(src.profile, dtype=dtype, nodata=nodata)
    data = fn(dn.astype(np.float64), dn == 0)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data.astype(dtype))
        for i, n in enumerate(names, start=1):
            out.set_band_description(i, n)
        if not tags:
            out.scales = (1.0,) * len(names)
            out.offsets = (0.0,) * len(names)
    return dst


def _summary(res: PairResult) -> Counter:
    return Counter((r.kind, round(r.area_m2, -3)) for r in res.regions)


def _float_reflectance(v: np.ndarray, nd: np.ndarray) -> np.ndarray:
    return np.where(nd, -9999.0, v * 1e-4 - 0.1)


def _reflectance_1e4(v: np.ndarray, nd: np.ndarray) -> np.ndarray:
    return np.where(nd, 0, np.maximum(v - 1000, 1))


@pytest.mark.parametrize(
    ("fn", "dtype", "nodata", "scale", "expect"),
    [
        (_float_reflectance, "float32", -9999.0, None, "reflectance (data type)"),
        (_reflectance_1e4, "uint16", 0, None, "reflectance-1e4 (guessed from range)"),
        (lambda v, nd: v, "uint16", 0, (1e-4, -0.1), "reflectance (--scale)"),
    ],
    ids=["float-reflectance", "reflectance-1e4-untagged", "dn-with-scale-flag"],
)
def test_the_same_pair_in_other_radiometry_gives_the_same_changes(
    pair6, tmp_path, fn, dtype, nodata, scale, expect
):
    ref = detect_pair(pair6.before, pair6.after)
    assert ref.before.radiometry.describe() == "reflectance (file scale/offset)"
    paths = [
        _copy(p, tmp_path / p.name, fn, dtype, nodata, tags=False)
        for p in (pair6.before, pair6.after)
    ]
    assert open_scene(paths[0], scale=scale).radiometry.describe() == expect
    res = detect_pair(*paths, DetectOptions(scale=scale))
    assert len(ref.regions) >= 4
    assert _summary(res) == _summary(ref)
