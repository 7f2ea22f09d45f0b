"""Detectors: each kind found with its label; clouds never become change; thresholds and iMAD."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds
from shapely.geometry import shape

from remote_sensing.detect import (
    KINDS,
    Thresholds,
    cva_magnitude,
    em_threshold,
    fit_imad,
    imad_chi2,
    kind_code,
    label_changes,
    otsu_threshold,
)
from remote_sensing.masks import qa_pixel_mask, scl_mask, spectral_cloud_mask
from remote_sensing.pipeline import DetectOptions, change_floor, detect_pair
from simulators.scenes import SceneSpec, write_pair

ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")
SPECTRA = {
    "forest": (0.025, 0.050, 0.030, 0.330, 0.160, 0.070),
    "crop": (0.045, 0.080, 0.060, 0.300, 0.220, 0.120),
    "water": (0.060, 0.070, 0.045, 0.025, 0.012, 0.008),
    "felled": (0.045, 0.075, 0.075, 0.230, 0.240, 0.140),
    "concrete": (0.180, 0.190, 0.185, 0.200, 0.215, 0.200),
    "soil": (0.120, 0.160, 0.210, 0.260, 0.380, 0.340),
    "drained": (0.095, 0.125, 0.150, 0.230, 0.300, 0.250),
}


def _px(name: str, n: int = 1, roles: tuple[str, ...] = ROLES) -> dict[str, np.ndarray]:
    return {r: np.full((1, n), v, np.float32) for r, v in zip(ROLES, SPECTRA[name]) if r in roles}


@pytest.mark.parametrize(
    "before,after,kind",
    [
        ("forest", "felled", "vegetation_loss"),
        ("crop", "concrete", "new_construction"),
        ("crop", "water", "water_gain"),
        ("water", "drained", "water_loss"),
        ("forest", "soil", "bare_soil"),
        ("crop", "crop", None),
    ],
)
@pytest.mark.parametrize("roles", [ROLES, ROLES[:4]], ids=["6 bands", "4 bands"])
def test_index_rules_label_each_kind(before, after, kind, roles):
    codes = label_changes(_px(before, roles=roles), _px(after, roles=roles))
    assert codes[0, 0] == (kind_code(kind) if kind else 0)


def test_cva_otsu_and_em_split_a_bimodal_sample():
    rng = np.random.default_rng(0)
    b = {r: rng.normal(0.2, 0.01, (100, 100)).astype(np.float32) for r in ROLES[:4]}
    a = {r: v + rng.normal(0, 0.01, v.shape).astype(np.float32) for r, v in b.items()}
    a["nir"][:20] += 0.2  # a fifth of the scene changed
    mag = cva_magnitude(b, a)
    for t in (otsu_threshold(mag), em_threshold(mag)):
        assert 0.04 < t < 0.17
        assert (mag[:20] > t).mean() > 0.99 and (mag[20:] > t).mean() < 0.01


def test_imad_statistic_is_high_where_things_changed():
    rng = np.random.default_rng(1)
    base = rng.normal(0.2, 0.05, (6, 80, 80)).astype(np.float32)
    b = {
        r: base[i] + rng.normal(0, 0.005, (80, 80)).astype(np.float32) for i, r in enumerate(ROLES)
    }
    a = {
        r: 1.1 * base[i] + 0.01 + rng.normal(0, 0.005, (80, 80)).astype(np.float32)
        for i, r in enumerate(ROLES)
    }
    a["red"][:10, :10] += 0.2
    a["swir1"][:10, :10] -= 0.1
    model = fit_imad(b, a, np.ones((80, 80), bool))
    chi = imad_chi2(model, b, a)
    assert np.median(chi[:10, :10]) > 50 * np.median(chi[20:, 20:])


def test_qa_masks():
    assert scl_mask(np.array([0, 3, 4, 5, 6, 8, 9, 10, 11])).tolist() == [
        False,
        True,
        False,
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    qa = np.array(
        [0b0, 1 << 3, 1 << 4, 1 << 6, 1 << 1], np.uint16
    )  # clear, cloud, shadow, clear-bit, dilated cloud
    assert qa_pixel_mask(qa).tolist() == [False, True, True, False, True]
    cloud = {r: np.full((1, 1), 0.42, np.float32) for r in ROLES}
    assert spectral_cloud_mask(cloud)[0, 0] and not spectral_cloud_mask(_px("concrete"))[0, 0]


def _truth_hits(pair, result):
    found = {}
    for t in pair.changes:
        g = shape(t.geometry)
        hits = [
            r.kind for r in result.regions if shape(r.geometry).intersection(g).area > 0.3 * g.area
        ]
        found[t.kind] = hits
    return found


def test_every_kind_is_detected_with_its_label(pair6):
    result = detect_pair(pair6.before, pair6.after)
    hits = _truth_hits(pair6, result)
    for t in pair6.changes:
        if t.visible >= 0.9:
            assert hits[t.kind] == [t.kind], f"{t.kind}: {hits[t.kind]}"
    assert sum(t.visible >= 0.9 for t in pair6.changes) >= 4
    unmatched = [
        r
        for r in result.regions
        if not any(shape(r.geometry).intersects(shape(t.geometry)) for t in pair6.changes)
    ]
    assert len(unmatched) <= 1


def test_four_band_scenes_still_label_changes(pair4):
    result = detect_pair(pair4.before, pair4.after)
    hits = _truth_hits(pair4, result)
    for kind in ("vegetation_loss", "water_gain", "water_loss", "new_construction"):
        assert hits[kind] == [kind], f"{kind}: {hits[kind]}"


def test_cloud_masked_pixels_never_become_change(cloudy):
    result = detect_pair(cloudy.before, cloudy.after, keep_codes=True)
    grid = result.grid
    with rasterio.open(cloudy.after) as src:
        win = from_bounds(*grid.bounds, src.transform).round_offsets().round_lengths()
        scl = src.read(7, window=win, boundless=True, fill_value=0)
    masked = scl_mask(scl)
    assert masked.mean() > 0.15, "the scene is cloudy"
    assert not (result.codes[masked] > 0).any()
    # The same pair without its SCL band: the spectral tests must keep clouds out too.
    spectral = detect_pair(
        cloudy.before,
        cloudy.after,
        DetectOptions(bands=("blue", "green", "red", "nir", "swir1", "swir2", "-")),
        keep_codes=True,
    )
    with rasterio.open(cloudy.after_clouds) as src:
        truth = src.read(1, window=win, boundless=True, fill_value=0)
    changed = spectral.codes > 0
    assert (changed & (truth == 1)).sum() <= 0.01 * (truth == 1).sum()
    baseline = detect_pair(
        cloudy.before,
        cloudy.after,
        DetectOptions(method="cva", cloud_mask=False, normalise=False),
        keep_codes=True,
    )
    assert (baseline.codes[truth == 1] > 0).mean() > 0.3, "without masks clouds do become change"


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: vegetation_loss"):
        kind_code("landslide")
    assert len(KINDS) == 6


def test_imad_method_and_imad_chosen_pifs_find_the_changes(pair6):
    for opts in (DetectOptions(method="imad"), DetectOptions(pif_weights="imad")):
        result = detect_pair(pair6.before, pair6.after, opts)
        hits = _truth_hits(pair6, result)
        assert sum(bool(h) for h in hits.values()) >= 4, (opts.method, hits)


def test_change_floor_is_physical_on_a_clean_pair_and_follows_the_noise_on_a_noisy_one():
    rng = np.random.default_rng(7)
    before = {r: rng.uniform(0.02, 0.3, 20_000).astype(np.float32) for r in ("a", "b", "c", "d")}
    same = {r: v.copy() for r, v in before.items()}
    assert change_floor(before, same, 0.015, 6.0) == pytest.approx(0.015 * 2)
    noisy = {r: v + rng.normal(0, 0.01, v.size).astype(np.float32) for r, v in before.items()}
    # 6 sigma of a 4-band noise vector: 6 * 0.01 * sqrt(4), within sampling error.
    assert change_floor(before, noisy, 0.015, 6.0) == pytest.approx(0.12, rel=0.05)
    # A minority of changed pixels does not move the robust spread.
    changed = {r: v.copy() for r, v in noisy.items()}
    changed["a"][:2000] += 0.3
    assert change_floor(before, changed, 0.015, 6.0) == pytest.approx(0.12, rel=0.1)
    assert change_floor(before, noisy, 0.0, 0.0) == 0.0


def test_imad_on_a_pair_without_change_finds_next_to_nothing(tmp_path):
    """iMAD's chi-square test alone calls sensor noise change on a large scene (its variances
    are fitted, not physical); the floor keeps what it reports to what the noise cannot make."""
    quiet = write_pair(
        SceneSpec(seed=1003, width=384, height=384, changes_per_kind=0), tmp_path / "q"
    )
    result = detect_pair(quiet.before, quiet.after, DetectOptions(method="imad"))
    assert len(result.regions) <= 1
    assert result.calibration.floor > 0.015 * 6**0.5, "the noise raised the floor"


def test_rgb_soil_laid_bare_is_told_by_its_redness_gain():
    """A field cleared to dark red soil on a pair without nir brightens little (visible +0.03,
    under the visible-gain rule) but turns much redder: bare soil."""
    shape_ = (8, 8)
    before = {
        r: np.full(shape_, v, np.float32)
        for r, v in (("blue", 0.045), ("green", 0.09), ("red", 0.075))
    }
    after = {
        r: np.full(shape_, v, np.float32)
        for r, v in (("blue", 0.05), ("green", 0.085), ("red", 0.17))
    }
    codes = label_changes(before, after)
    assert (codes == kind_code("bare_soil")).all()
    # Without the redness rule nothing held: brightness alone is under its threshold.
    assert np.mean([after[r] - before[r] for r in after]) < Thresholds().visible_gain
    plain = label_changes(before, after, Thresholds(redness_gain=1.0))
    assert not plain.any()
