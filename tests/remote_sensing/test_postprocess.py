"""Post-processing: morphology, MMU sieve, polygons with equal-area m2 and lon/lat centroid."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from remote_sensing.postprocess import (
    clean,
    confidence,
    equal_area_m2,
    measure,
    mmu_pixels,
    regions,
    sieve,
    vectorise,
)

UTM = CRS.from_epsg(32649)
T = from_origin(520000.0, 3400000.0, 10.0, 10.0)


def test_opening_removes_misregistration_slivers_but_keeps_blobs():
    m = np.zeros((40, 40), bool)
    m[5, 2:38] = True  # one-pixel sliver along an edge
    m[20:30, 20:30] = True
    out = clean(m)
    assert not out[5].any()
    assert out[21:29, 21:29].all() and out[20:30, 20:30].sum() >= 96  # only the corners round off


def test_mmu_sieve_keeps_exactly_the_regions_at_or_above_the_unit():
    codes = np.zeros((60, 60), np.uint8)
    codes[2:7, 2:7] = 1  # 25 px = 0.25 ha at 10 m
    codes[20:24, 20:26] = 2  # 24 px
    assert mmu_pixels(0.25, T) == 25
    out = sieve(codes, mmu_pixels(0.25, T))
    assert out[2:7, 2:7].all() and not out[20:24, 20:26].any()


def test_regions_take_the_majority_kind_and_keep_edge_regions_in_blocks():
    codes = np.zeros((20, 20), np.uint8)
    codes[5:10, 5:10] = 2
    codes[5, 5] = 1
    codes[0:2, 0:2] = 3  # small, touches the border
    mask = codes > 0
    out = regions(mask, codes, min_px=10, keep_edge=True)
    assert (out[5:10, 5:10] == 2).all() and (out[0:2, 0:2] == 3).all()
    assert not regions(mask, codes, min_px=10, keep_edge=False)[0:2, 0:2].any()


def test_area_centroid_and_bbox_of_a_known_square():
    codes = np.zeros((50, 50), np.uint8)
    codes[10:20, 30:40] = 1  # 100 m x 100 m
    ((geom, _value),) = vectorise(codes, T)
    m = measure(geom, UTM)
    # UTM is conformal, not equal-area: near the central meridian its scale factor k ~ 0.9996
    # so a 1 ha UTM square is 1 ha / k^2 on the ground.
    lon_c, lat_c = warp_transform(UTM, "EPSG:4326", [520000 + 350], [3400000 - 150])
    assert m.area_m2 == pytest.approx(10000 / 0.9996**2, rel=2e-3)
    assert m.centroid.lon == pytest.approx(lon_c[0], abs=1e-6) and m.centroid.lat == pytest.approx(
        lat_c[0], abs=1e-6
    )
    lo, la = warp_transform(UTM, "EPSG:4326", [520300, 520400], [3399800, 3399900])
    assert m.bbox[0] == pytest.approx(min(lo), abs=2e-6) and m.bbox[3] == pytest.approx(
        max(la), abs=2e-6
    )
    assert equal_area_m2(m.geometry) == pytest.approx(m.area_m2, rel=1e-9)


def test_equal_area_of_a_lonlat_square_at_high_latitude():
    # One degree of longitude shrinks with cos(latitude): a 0.01 x 0.01 degree cell at 60 N.
    g = {
        "type": "Polygon",
        "coordinates": [[(10.0, 60.0), (10.01, 60.0), (10.01, 60.01), (10.0, 60.01), (10.0, 60.0)]],
    }
    expected = (0.01 * 111_412 * np.cos(np.radians(60.005))) * (0.01 * 111_412)
    assert equal_area_m2(g) == pytest.approx(expected, rel=0.01)


def test_confidence_grows_with_strength_agreement_and_size():
    weak = confidence(1.0, 0.5, 1.0)
    strong = confidence(4.0, 1.0, 10.0)
    assert 0.0 <= weak < 0.3
    assert 0.9 < strong <= 1.0
