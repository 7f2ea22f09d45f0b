"""``rs watch`` under confirmation policies: k of n on a simulated revisit series, expiry when a
change is not seen again, the policy from settings, and what a pair observed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import rasterio
from rasterio.warp import transform_geom

from app.cli import main as farsight_main
from farsight.errors import ConfigError
from farsight.settings import load_settings
from remote_sensing.cli import watch_policy
from remote_sensing.footprint import observed_share
from remote_sensing.pipeline import DetectOptions, detect_pair
from remote_sensing.revisits import DEFAULT_POLICY, FIRST_LATER, ConfirmationPolicy
from simulators.scenes import SceneSeries, SceneSpec, write_series

SPEC = SceneSpec(
    seed=21,
    width=256,
    height=256,
    tile=64,
    changes_per_kind=1,
    kinds=("new_construction", "water_gain"),
    cloud_cover=(0.0, 0.0),
    change_ha=(0.8, 1.2),
)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> SceneSeries:
    return write_series(SPEC, tmp_path_factory.mktemp("series"), 3, cloud_cover=(0.0, 0.0, 0.0))


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _watch(inbox: Path, out: Path, *extra: str) -> None:
    argv = ["rs", "watch", str(inbox), "--out-dir", str(out), "--once", *extra]
    assert farsight_main(argv) == 0


def test_two_of_three_confirms_on_the_second_later_sighting(series, tmp_path):
    aoi = tmp_path / "inbox" / "aoi"
    aoi.mkdir(parents=True)
    shutil.copy(series.before, aoi / "s0.tif")
    for i, p in enumerate(series.later, start=1):
        shutil.copy(p, aoi / f"s{i}.tif")
    out = tmp_path / "out"
    _watch(tmp_path / "inbox", out, "--confirm", "2of3")
    events = _events(out)
    got = sorted((e["change"]["kind"], e["state"], e["sightings"], e["ts"][:10]) for e in events)
    d1, d3 = (d.date().isoformat() for d in (series.dates[0], series.dates[2]))
    assert got == [
        ("new_construction", "confirmed", 3, d3),
        ("new_construction", "possible", 1, d1),
        ("water_gain", "confirmed", 3, d3),
        ("water_gain", "possible", 1, d1),
    ]
    state = json.loads((out / "rs-state.json").read_text())
    assert state["version"] == 2
    assert sorted((t["state"], t["looks"]) for t in state["tracks"]) == [("confirmed", 2)] * 2
    # A run over the same scenes adds nothing.
    _watch(tmp_path / "inbox", out, "--confirm", "2of3")
    assert len(_events(out)) == len(events)


def test_a_change_not_seen_again_expires(series, tmp_path):
    aoi = tmp_path / "inbox" / "aoi"
    aoi.mkdir(parents=True)
    shutil.copy(series.before, aoi / "s0.tif")
    shutil.copy(series.later[0], aoi / "s1.tif")
    # A later scene where the changes are gone: the reference again, dated after s1.
    gone = shutil.copy(series.before, aoi / "s2.tif")
    with rasterio.open(gone, "r+") as dst:
        dst.update_tags(ACQUISITION_DATETIME="2026-07-01T03:10:00Z")
    out = tmp_path / "out"
    _watch(tmp_path / "inbox", out, "--confirm", "1of1")
    expired = [e for e in _events(out) if e["state"] == "expired"]
    assert sorted(e["change"]["kind"] for e in expired) == ["new_construction", "water_gain"]
    assert all(e["previous"] == "possible" and e["ts"].startswith("2026-07-01") for e in expired)


def test_policy_comes_from_the_flag_else_the_settings(tmp_path, monkeypatch):
    s = load_settings(None, {}).remote_sensing.confirmation
    assert ConfirmationPolicy(s.rule, s.k, s.n) == DEFAULT_POLICY
    assert watch_policy("3of4", None) == ConfirmationPolicy("k_of_n", 3, 4)
    cfg = tmp_path / "farsight.yaml"
    cfg.write_text("remote_sensing: {confirmation: {rule: first_later}}\n")
    assert watch_policy(None, cfg) == FIRST_LATER
    monkeypatch.setenv("FARSIGHT__REMOTE_SENSING__CONFIRMATION__K", "2")
    monkeypatch.setenv("FARSIGHT__REMOTE_SENSING__CONFIRMATION__N", "1")
    with pytest.raises(ConfigError, match=r"remote_sensing\.confirmation\.n"):
        watch_policy(None, None)
    assert farsight_main(["rs", "watch", str(tmp_path), "--once", "--confirm", "often"]) == 2


def _box(grid, c0: int, r0: int, size: int) -> dict:
    t = grid.transform
    x0, y0 = t * (c0, r0)
    x1, y1 = t * (c0 + size, r0 + size)
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return transform_geom(grid.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})


def test_observed_share_is_low_under_cloud_and_off_the_grid(cloudy):
    opts = DetectOptions()
    result = detect_pair(cloudy.before, cloudy.after, opts)
    grid = result.grid
    with rasterio.open(cloudy.after_clouds) as src:
        # The truth on the grid: the after scene's pixels shifted by its offset to the grid.
        col, row = ~src.transform * (grid.transform.c, grid.transform.f)
        clouds = src.read(1)[round(row) :, round(col) :]
    size = 16
    cells = [
        (c, r, clouds[r : r + size, c : c + size])
        for r in range(40, clouds.shape[0] - 40 - size, 8)
        for c in range(40, clouds.shape[1] - 40 - size, 8)
    ]
    cloudy_cell = next((c, r) for c, r, v in cells if (v == 1).all())
    clear_cell = next(
        (c, r)
        for c, r, v in cells
        if not clouds[max(0, r - 24) : r + size + 24, max(0, c - 24) : c + size + 24].any()
    )
    assert observed_share(result, _box(grid, *cloudy_cell, size), opts) < 0.2
    assert observed_share(result, _box(grid, *clear_cell, size), opts) > 0.9
    assert observed_share(result, _box(grid, grid.width + 50, 10, size), opts) == 0.0
    # Half off the grid: at most the half on it.
    assert observed_share(result, _box(grid, -size // 2, 100, size), opts) <= 0.55
