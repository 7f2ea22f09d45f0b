"""``rs detect --quicklook``: before, after and mask PNGs of the whole pair beside the GeoJSON."""

from __future__ import annotations

import json

import cv2
import numpy as np
from rasterio.warp import transform as warp_points
from shapely.geometry import shape

from app.cli import main as farsight_main
from remote_sensing.align import common_grid
from remote_sensing.io import open_scene
from remote_sensing.pair_quicklook import (
    DIM,
    KIND_COLOURS,
    overview_grid,
    quicklook_images,
)
from remote_sensing.pipeline import detect_pair


def _png(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_quicklook_writes_three_pngs_with_changes_painted_by_kind(pair6, tmp_path, capsys):
    out = tmp_path / "site.geojson"
    argv = ["rs", "detect", str(pair6.before), str(pair6.after), "--out", str(out)]
    assert farsight_main([*argv, "--quicklook"]) == 0
    names = [tmp_path / f"site_{n}.png" for n in ("before", "after", "mask")]
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("quicklook:")]
    assert line == "quicklook: " + ", ".join(str(p) for p in names)
    before, after, mask = (_png(p) for p in names)
    grid = common_grid(open_scene(pair6.before).grid, open_scene(pair6.after).grid)
    assert before.shape == after.shape == mask.shape == (grid.height, grid.width, 3)
    fc = json.loads(out.read_text())
    assert fc["features"]
    inv = ~grid.transform
    for f in fc["features"]:
        poly = shape(f["geometry"])
        p = poly.centroid if poly.contains(poly.centroid) else poly.representative_point()
        (x,), (y,) = warp_points("EPSG:4326", grid.crs, [p.x], [p.y])
        col, row = (int(v) for v in inv * (x, y))
        assert tuple(mask[row, col]) == KIND_COLOURS[f["properties"]["kind"]], f["id"]
    # Far from every change: the dimmed after image, no kind colour.
    for row, col in ((5, 5), (grid.height - 5, 5), (5, grid.width - 5)):
        px = mask[row, col].astype(int)
        assert tuple(px) not in KIND_COLOURS.values()
        assert np.abs(px - (after[row, col] * DIM).astype(int)).max() <= 1
    # The dates share one stretch after normalisation: unchanged land looks alike on both.
    unchanged = (mask.max(axis=2) < 100) & (before.sum(axis=2) > 0) & (after.sum(axis=2) > 0)
    diff = np.abs(before.astype(int) - after.astype(int))[unchanged]
    assert np.median(diff) < 20
    # Without the flag no PNG is written.
    for p in names:
        p.unlink()
    assert farsight_main(argv) == 0
    assert not any(p.exists() for p in names)


def test_quicklook_is_downsampled_to_the_longest_side(pair6):
    result = detect_pair(pair6.before, pair6.after)
    g = overview_grid(result.grid, 100)
    assert max(g.width, g.height) <= 100 and g.crs == result.grid.crs
    assert g.transform.a == result.grid.transform.a * -(
        -max(result.grid.width, result.grid.height) // 100
    )
    before, after, mask = quicklook_images(result, result.regions, 100)
    assert before.shape == after.shape == mask.shape == (g.height, g.width, 3)
    # Every change is still painted, however small at this scale.
    painted = np.isin(
        mask.reshape(-1, 3).view([("", np.uint8)] * 3).ravel(),
        np.array(list(KIND_COLOURS.values()), np.uint8).view([("", np.uint8)] * 3).ravel(),
    )
    assert painted.sum() >= len(result.regions)
    assert overview_grid(result.grid, 4096) == result.grid
