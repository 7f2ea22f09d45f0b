"""Normalisation that degrades instead of refusing (issue 16, radiometry): histogram matching
when pseudo-invariant pixels are few, a refusal naming the cause and the flag when the pair
cannot be compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.cli import main as farsight_main
from remote_sensing.normalise import (
    DEGRADED_CONFIDENCE,
    NormaliseError,
    fit,
    fit_histogram,
    refusal,
)
from remote_sensing.output import feature_collection
from remote_sensing.pipeline import DetectOptions, detect_pair
from tests.remote_sensing.conftest import write_raster

ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")
VEG = np.array([0.03, 0.06, 0.04, 0.35, 0.18, 0.09])
SOIL = np.array([0.10, 0.14, 0.18, 0.25, 0.32, 0.28])
WATER = np.array([0.04, 0.05, 0.03, 0.02, 0.01, 0.01])
BUILT = np.array([0.12, 0.13, 0.14, 0.16, 0.20, 0.19])


def _bands(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {r: rng.uniform(0.02, 0.3, n).astype(np.float32) for r in ROLES}


def test_histogram_match_maps_a_nonlinear_radiometry_back():
    before = _bands(5000, 1)
    after = {r: np.sqrt(v) * 0.7 + 0.05 for r, v in before.items()}
    usable = np.ones(5000, bool)
    norm = fit_histogram(before, after, usable, pif_count=12)
    out = norm.apply(after)
    for r in ROLES:
        assert np.abs(out[r] - before[r]).max() < 0.005
    assert norm.degraded and norm.method == "histogram" and norm.pif_count == 12
    assert norm.describe() == "histogram (degraded; 12 PIFs)"
    # Values beyond the sample keep their distance to its end: a brighter cloud stays brighter.
    top = float(max(after["red"]))
    bright = norm.apply({"red": np.array([top + 0.2], np.float32)})["red"][0]
    assert bright > float(before["red"].max()) + 0.15


def test_fit_degrades_when_pifs_are_few_and_refuses_when_the_overlap_is_small():
    before = _bands(3000, 2)
    after = {r: v * 1.1 for r, v in before.items()}
    usable = np.ones(3000, bool)
    weights = np.zeros(3000)
    weights[:150] = 1.0  # 150 invariant pixels, under the 200 the linear fit needs
    assert not fit(before, after, usable).degraded
    degraded = fit(before, after, usable, weights=weights)
    assert degraded.degraded and degraded.pif_count == 150
    small = np.zeros(3000, bool)
    small[:800] = True
    with pytest.raises(NormaliseError, match="150 pseudo-invariant and 800 usable"):
        fit(before, after, small, weights=weights)


def test_refusal_names_the_cause_and_the_flag():
    assert refusal(5000, 5000, 4000, False, 1000) is None
    assert "overlap by only 300 pixels" in (refusal(300, 300, 300, False, 1000) or "")
    nodata = refusal(5000, 400, 400, True, 1000) or ""
    assert "hold data on both dates" in nodata and "zeros were taken as nodata" in nodata
    assert "--bands" in nodata
    cloud = refusal(5000, 5000, 200, False, 1000) or ""
    assert "masked as cloud" in cloud and "--scale or --sensor" in cloud


def _block_pair(tmp_path: Path, seed: int = 7) -> tuple[Path, Path, tuple[int, int]]:
    """8 x 8 blocks of 8 px, each a random land mixture; on the after date every block but two
    stable ones is swapped with another (change nearly everywhere, histograms kept), and the
    last block is cleared (vegetation to soil; the soil block beside it takes the vegetation).
    Returns the two paths and the (row, col) of the cleared block's centre."""
    rng = np.random.default_rng(seed)
    size, n = 8, 8
    spectra = rng.dirichlet([0.3] * 4, n * n) @ np.stack([VEG, SOIL, WATER, BUILT])
    spectra[n * n - 1], spectra[n * n - 2] = VEG, SOIL
    order_b = np.arange(n * n)
    order_a = order_b.copy()
    order_a[2 : n * n - 2] = rng.permutation(order_b[2 : n * n - 2])
    order_a[n * n - 1], order_a[n * n - 2] = n * n - 2, n * n - 1

    def image(order: np.ndarray) -> np.ndarray:
        out = np.zeros((6, n * size, n * size), np.float32)
        for k, s in enumerate(order):
            r, c = divmod(k, n)
            out[:, r * size : (r + 1) * size, c * size : (c + 1) * size] = spectra[s][:, None, None]
        return out + rng.normal(0, 0.003, out.shape).astype(np.float32)

    b = write_raster(tmp_path / "before.tif", image(order_b), descriptions=ROLES)
    a = write_raster(tmp_path / "after.tif", image(order_a), descriptions=ROLES)
    return b, a, (n * size - size // 2, n * size - size // 2)


def test_detect_degrades_says_so_and_still_finds_the_clearing(tmp_path):
    before, after, (row, col) = _block_pair(tmp_path)
    # iMAD no-change weights find 1400-2100 invariant pixels in the 4096 (the stable blocks and
    # the swaps iMAD's linear map absorbs); demanding more forces the fallback.
    opts = DetectOptions(pif_weights="imad", min_pif_pixels=3000, mmu_ha=0.2)
    res = detect_pair(before, after, opts)
    norm = res.calibration.normalisation
    assert norm.degraded and 0 < norm.pif_count < 3000
    # Vegetation to soil: the rules call it vegetation loss or bare soil.
    hits = [
        r
        for r in res.regions
        if r.kind in ("vegetation_loss", "bare_soil")
        and r.window[0] <= col < r.window[0] + r.window[2]
        and r.window[1] <= row < r.window[1] + r.window[3]
    ]
    assert hits
    props = feature_collection(res)["properties"]["normalisation"]
    assert props == {
        "method": "histogram",
        "pif_count": norm.pif_count,
        "degraded": True,
        "confidence_factor": DEGRADED_CONFIDENCE,
    }
    # The same pair normalised linearly scores the same region higher by the documented factor.
    linear = detect_pair(before, after, DetectOptions(pif_weights="imad", mmu_ha=0.2))
    assert not linear.calibration.normalisation.degraded
    assert max(r.confidence for r in res.regions) <= DEGRADED_CONFIDENCE + 1e-9


def test_a_pair_with_no_valid_overlap_is_refused_naming_the_cause(tmp_path, capsys):
    rng = np.random.default_rng(3)
    data = (rng.uniform(0.02, 0.2, (6, 48, 48))).astype(np.float32)
    after = data.copy()
    after[:, :, 2:] = -9999.0  # nodata beyond a strip of 2 columns: 96 pixels in common
    b = write_raster(tmp_path / "b.tif", data, descriptions=ROLES, nodata=-9999.0)
    a = write_raster(tmp_path / "a.tif", after, descriptions=ROLES, nodata=-9999.0)
    rc = farsight_main(["rs", "detect", str(b), str(a), "--out", str(tmp_path / "o.geojson")])
    assert rc == 1  # a domain error, not a usage error
    err = capsys.readouterr().err
    assert "cannot be compared" in err and "96 of 2304 overlap pixels hold data" in err
    assert "--bands" in err
    assert not (tmp_path / "o.geojson").exists()
