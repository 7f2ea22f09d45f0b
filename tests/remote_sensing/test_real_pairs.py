"""Labelled pairs on real backgrounds (simulators/real_pairs.py): the inserter keeps its truth,
is deterministic, refuses kinds the bands cannot tell, and writes files ``farsight rs detect``
reads; detection on one of them end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import rasterio
from scipy import ndimage
from shapely.geometry import shape

from app.cli import main as farsight_main
from remote_sensing.detect import possible_kinds as detector_kinds
from remote_sensing.pipeline import DetectOptions, detect_pair
from simulators.real_pairs import (
    Background,
    RealPairSpec,
    Synthesis,
    fill_mask,
    polygon_mask,
    possible_kinds,
    synthesize,
    write_real_pair,
)
from simulators.scenes import SimulatorError, read_truth
from tests.real_scenes import (
    RealDataError,
    landsat_background,
    overlap_background,
    rgbn_background,
)

# A spec whose after date differs from the before date only by inserted changes and a declared
# per-band gain and offset (no shift, cloud or haze), so the rest can be checked exactly.
PLAIN = {"shift_px": (0.0, 0.0), "cloud_cover": 0.0, "haze": 0.0}

# benchmarks/rs_accuracy.py's BASELINE: CVA + Otsu on the raw bands.
BASELINE = DetectOptions(method="cva", cloud_mask=False, normalise=False, open_px=0, close_px=0)


def _bg(make):
    try:
        return make()
    except RealDataError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def rgbn_bg() -> Background:
    return _bg(rgbn_background)


@pytest.fixture(scope="module")
def l8_bg() -> Background:
    return _bg(lambda: landsat_background("077", 256, 600, 900))


def _dos(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    # Dark-object subtracted with the before date's dark levels.
    dark = np.percentile(ref.reshape(ref.shape[0], -1), 0.5, axis=1)
    return x.astype(np.float64) - dark[:, None, None]


def _undo(syn: Synthesis) -> np.ndarray:
    gain = np.array(syn.gain)[:, None, None]
    offset = np.array(syn.offset)[:, None, None]
    return (syn.after.astype(np.float64) - offset) / gain


def test_possible_kinds_are_the_detectors():
    for roles in (
        ("blue", "green", "red"),
        ("red", "green", "blue", "nir"),
        ("blue", "green", "red", "nir", "swir1", "swir2"),
    ):
        assert possible_kinds(roles) == tuple(
            k for k in detector_kinds(roles) if k != "unclassified"
        )


def test_kinds_the_bands_cannot_tell_are_refused(l8_bg):
    with pytest.raises(SimulatorError, match=r"blue, green, red: they cannot tell vegetation_loss"):
        synthesize(l8_bg, RealPairSpec(kinds=("vegetation_loss", "bare_soil")))


def test_same_seed_same_pair_other_seed_other_pair(l8_bg):
    a = synthesize(l8_bg, RealPairSpec(seed=3, changes_per_kind=2))
    b = synthesize(l8_bg, RealPairSpec(seed=3, changes_per_kind=2))
    c = synthesize(l8_bg, RealPairSpec(seed=4, changes_per_kind=2))
    assert np.array_equal(a.after, b.after) and a.changes == b.changes
    assert not np.array_equal(a.after, c.after)
    assert [x.ring for x in a.changes] != [x.ring for x in c.changes]


def test_rgb_background_gets_construction_and_soil_of_its_own_pixels(l8_bg):
    syn = synthesize(l8_bg, RealPairSpec(seed=5, changes_per_kind=2, **PLAIN))
    assert sorted(c.kind for c in syn.changes) == ["bare_soil"] * 2 + ["new_construction"] * 2
    assert all(c.transplanted for c in syn.changes), "the crop has bare fields and roofs"
    assert syn.after.dtype == np.uint16 and syn.before.dtype == np.uint16
    for c in syn.changes:
        area_px = polygon_mask(c.ring, syn.clouds.shape).sum()
        assert area_px >= 6, "nothing under twice the 30 m mapping unit"


def test_inside_polygons_the_kinds_signature_outside_the_declared_gain_and_offset(rgbn_bg):
    spec = RealPairSpec(seed=7, changes_per_kind=1, gain=(0.9, 1.1), offset=(-0.05, 0.05), **PLAIN)
    syn = synthesize(rgbn_bg, spec)
    kinds = {c.kind for c in syn.changes}
    # rgbn has no open water: water loss is left out with the default kinds.
    assert {"vegetation_loss", "new_construction", "water_gain", "bare_soil"} <= kinds
    before = _dos(syn.before, syn.before)
    after = _dos(_undo(syn), syn.before)
    red, green, _, nir = range(4)

    def ndvi(x: np.ndarray, m: np.ndarray) -> float:
        return float(np.mean((x[nir][m] - x[red][m]) / np.maximum(x[nir][m] + x[red][m], 1)))

    for c in syn.changes:
        m = polygon_mask(c.ring, syn.clouds.shape)
        m = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        vis_b, vis_a = before[:3][:, m].mean(), after[:3][:, m].mean()
        if c.kind == "vegetation_loss":
            assert ndvi(after, m) < ndvi(before, m) - 0.15, c
        elif c.kind == "new_construction":
            assert vis_a > vis_b * 1.2, c
        elif c.kind == "water_gain":
            assert after[nir][m].mean() < after[green][m].mean(), c
            assert ndvi(after, m) < ndvi(before, m) - 0.15, c
        elif c.kind == "bare_soil":
            assert ndvi(after, m) < ndvi(before, m) - 0.05 or vis_a > vis_b * 1.15, c
    # Outside the polygons' soft edges, the after date is gain * before + offset to rounding.
    untouched = syn.changed == 0
    expected = syn.before.astype(np.float64) * np.array(syn.gain)[:, None, None]
    expected += np.array(syn.offset)[:, None, None]
    expected = np.clip(np.rint(expected), 1, 255)
    diff = np.abs(syn.after.astype(np.float64) - expected)[:, untouched]
    assert diff.max() <= 1.0
    assert untouched.mean() > 0.9


def test_after_date_is_shifted_by_the_declared_sub_pixel_amount(l8_bg):
    spec = RealPairSpec(seed=9, changes_per_kind=0, shift_px=(0.4, -0.3), cloud_cover=0, haze=0)
    syn = synthesize(l8_bg, spec)
    b = syn.before[1].astype(np.float32)
    a = _undo(syn)[1].astype(np.float32)
    # The shift (on a 0.1 px grid) that best explains the after date: resampled independently
    # of the simulator (scipy's cubic splines, not cv2.remap).
    inner = (slice(8, -8), slice(8, -8))
    best = min(
        (
            (float(np.mean((ndimage.shift(b, (-y, -x), order=3)[inner] - a[inner]) ** 2)), x, y)
            for x in np.round(np.arange(-0.8, 0.81, 0.1), 1)
            for y in np.round(np.arange(-0.8, 0.81, 0.1), 1)
        ),
    )
    assert best[1:] == (pytest.approx(0.4, abs=0.11), pytest.approx(-0.3, abs=0.11))


def test_clouds_brighten_shadows_darken(l8_bg):
    # No haze: it brightens blue most (towards the flat cloud level), shadows or not.
    syn = synthesize(l8_bg, RealPairSpec(seed=9, changes_per_kind=0, cloud_cover=0.1, haze=0.0))
    assert 0.04 < (syn.clouds == 1).mean() < 0.2
    assert (syn.clouds == 2).any(), "clouds cast shadows"
    cloud = syn.clouds == 1
    assert syn.after[:, cloud].mean() > syn.before[:, cloud].mean() * 1.1
    shadow = syn.clouds == 2
    before = _dos(syn.before, syn.before)[:, shadow]
    after = _dos(_undo(syn), syn.before)[:, shadow]
    # Every band darkened by about the same factor (above its dark level).
    ratios = after.mean(axis=1) / before.mean(axis=1)
    assert ratios.max() < 0.95 and ratios.max() - ratios.min() < 0.15


def test_visible_share_counts_cloud_and_shadow(rgbn_bg):
    syn = synthesize(rgbn_bg, RealPairSpec(seed=2, changes_per_kind=2, cloud_cover=0.25))
    for c in syn.changes:
        m = polygon_mask(c.ring, syn.clouds.shape)
        assert c.visible == pytest.approx((syn.clouds[m] == 0).mean())
    assert any(c.visible < 1 for c in syn.changes)


def test_overlap_background_builds_the_after_date_from_row_078(tmp_path):
    bg = _bg(lambda: overlap_background(256, 500, 300))
    assert bg.after is not None and not np.array_equal(bg.after, bg.data)
    syn = synthesize(bg, RealPairSpec(seed=1, changes_per_kind=1, **PLAIN))
    untouched = syn.changed == 0
    expected = np.rint(
        bg.after.astype(np.float64) * np.array(syn.gain)[:, None, None]
        + np.array(syn.offset)[:, None, None]
    )
    assert np.abs(syn.after.astype(np.float64) - expected)[:, untouched].max() <= 1.0
    assert not fill_mask(bg.data, None).any() and not fill_mask(bg.after, None).any()


def test_written_pair_reads_back_and_rs_detect_reads_it(l8_bg, tmp_path, capsys):
    pair = write_real_pair(l8_bg, RealPairSpec(seed=1, changes_per_kind=1), tmp_path / "p")
    for path in (pair.before, pair.after):
        with rasterio.open(path) as src:
            assert src.dtypes == ("uint16",) * 3 and src.nodata is None
            assert src.descriptions == ("blue", "green", "red")
            assert src.crs == l8_bg.crs and src.transform == l8_bg.transform
    truth = read_truth(pair.truth)
    assert [(t.kind, t.visible) for t in truth] == [
        (c.kind, round(c.visible, 3)) for c in pair.changes
    ]
    for t in truth:
        lon, lat = shape(t.geometry).centroid.coords[0]
        assert -56 < lon < -53 and -26 < lat < -24, "Paraná, where path 224 rows 077/078 lie"
    out = tmp_path / "out.geojson"
    assert (
        farsight_main(["rs", "detect", str(pair.before), str(pair.after), "--out", str(out)]) == 0
    )
    props = json.loads(out.read_text())["properties"]
    assert props["bands"] == ["blue", "green", "red"]
    assert props["radiometry"]["before"] == "dn-16bit (guessed from range)"
    assert "radiometry:" in capsys.readouterr().out


def _recall_precision(pair, regions) -> tuple[float, float]:
    truths = [shape(t.geometry) for t in pair.changes if t.visible >= 0.5]
    dets = [shape(r["geometry"] if isinstance(r, dict) else r.geometry) for r in regions]

    def hit(d, t) -> bool:
        union = d.union(t).area
        return (union > 0 and d.intersection(t).area / union >= 0.3) or d.contains(t.centroid)

    found = sum(any(hit(d, t) for d in dets) for t in truths)
    correct = sum(any(hit(d, t) for t in truths) for d in dets)
    return found / max(len(truths), 1), (correct / len(dets) if dets else 1.0)


@pytest.fixture(scope="module")
def rgbn_labelled(rgbn_bg, tmp_path_factory):
    spec = RealPairSpec(seed=1, changes_per_kind=2, cloud_cover=0.02)
    return write_real_pair(rgbn_bg, spec, tmp_path_factory.mktemp("rgbn-labelled"))


def test_plain_cva_finds_most_inserted_changes_on_the_real_background(rgbn_labelled):
    """The inserted changes stand out of the real scene: the benchmark's baseline (CVA + Otsu on
    the raw bands) finds most of them."""
    res = detect_pair(rgbn_labelled.before, rgbn_labelled.after, BASELINE)
    recall, _ = _recall_precision(rgbn_labelled, res.regions)
    assert recall >= 0.6


def test_rs_detect_index_finds_most_inserted_changes_on_a_real_background(rgbn_labelled, tmp_path):
    """It found 1 of 8 before the cloud and shadow tests stopped taking brightening land for a
    shadowed before date (a date without cloud casts no shadow) and haze-shaped brightening
    away from any cloud for haze on a scene without swir2."""
    out = tmp_path / "out.geojson"
    args = ["rs", "detect", str(rgbn_labelled.before), str(rgbn_labelled.after), "--out", str(out)]
    assert farsight_main(args) == 0
    feats = json.loads(out.read_text())["features"]
    recall, precision = _recall_precision(rgbn_labelled, feats)
    assert recall >= 0.85 and precision >= 0.85
