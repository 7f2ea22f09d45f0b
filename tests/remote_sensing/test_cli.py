"""``rs detect`` and ``rs watch`` through the command-line entry point."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from collections import Counter

import pytest
from shapely.geometry import shape

from app.cli import main as farsight_main
from remote_sensing.cli import watch_once
from remote_sensing.pipeline import DetectOptions
from remote_sensing.revisits import FIRST_LATER
from simulators.scenes import SceneSpec, write_pair

FIRST = ["--confirm", "first_later"]


def _ccw(ring):
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))
    return area2 > 0


def test_detect_writes_rfc7946_geojson_with_quicklooks(pair6, tmp_path, capsys):
    out = tmp_path / "changes.geojson"
    ev = tmp_path / "evidence"
    assert (
        farsight_main(
            [
                "rs",
                "detect",
                str(pair6.before),
                str(pair6.after),
                "--out",
                str(out),
                "--evidence",
                str(ev),
                "--workers",
                "2",
                "--block",
                "128",
            ]
        )
        == 0
    )
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert len(fc["features"]) >= 4
    # The one-line summary: the count, changes by kind, their area and the masked share, as
    # the GeoJSON has them.
    printed = capsys.readouterr().out
    (summary,) = [ln for ln in printed.splitlines() if ln.startswith("summary:")]
    kinds = Counter(f["properties"]["kind"] for f in fc["features"])
    assert summary.startswith(f"summary: {len(fc['features'])} changes (")
    for kind, n in kinds.items():
        assert f"{kind} {n}" in summary
    area_ha = sum(f["properties"]["area_m2"] for f in fc["features"]) / 10_000
    assert f", {area_ha:.2f} ha; " in summary
    masked = float(summary.split("ha; ")[1].split(" %")[0])
    assert 0.0 < masked < 50.0  # light clouds after: some, not most, pixels masked
    assert summary.endswith("; radiometry reflectance")  # the simulator's scale/offset tags
    for f in fc["features"]:
        g = f["geometry"]
        assert g["type"] == "Polygon" and _ccw(g["coordinates"][0])
        lon, lat = f["properties"]["centroid"]
        assert 111 < lon < 112 and 30 < lat < 31
        minx, miny, maxx, maxy = f["bbox"]
        assert minx <= lon <= maxx and miny <= lat <= maxy
        assert f["properties"]["area_m2"] >= 2500 and 0 <= f["properties"]["confidence"] <= 1
        (sha,) = f["properties"]["evidence"]
        png = ev / sha[:2] / f"{sha}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "changes written" in printed


def test_zones_filter_changes_unless_all(pair6, tmp_path):
    truth = json.loads(pair6.truth.read_text())["features"]
    target = next(f for f in truth if f["properties"]["kind"] == "water_gain")
    zone = shape(target["geometry"]).buffer(0.001)
    zones = tmp_path / "zones.geojson"
    zones.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": "river-buffer-1",
                        "properties": {"kind": "river_buffer", "name": "River buffer"},
                        "geometry": zone.__geo_interface__,
                    }
                ],
            }
        )
    )
    out = tmp_path / "in_zone.geojson"
    assert (
        farsight_main(
            [
                "rs",
                "detect",
                str(pair6.before),
                str(pair6.after),
                "--zones",
                str(zones),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    feats = json.loads(out.read_text())["features"]
    assert [f["properties"]["kind"] for f in feats] == ["water_gain"]
    (hit,) = feats[0]["properties"]["zones"]
    assert hit["zone"] == "river-buffer-1" and hit["overlap_m2"] == pytest.approx(
        feats[0]["properties"]["area_m2"], rel=0.02
    )
    every = tmp_path / "all.geojson"
    assert (
        farsight_main(
            [
                "rs",
                "detect",
                str(pair6.before),
                str(pair6.after),
                "--zones",
                str(zones),
                "--all",
                "--out",
                str(every),
                "--mmu-ha",
                "1.0",
            ]
        )
        == 0
    )
    big = json.loads(every.read_text())["features"]
    assert len(big) > 1 and all(f["properties"]["area_m2"] >= 9900 for f in big)


def test_bad_inputs_exit_2_naming_the_file(tmp_path, capsys, pair6):
    assert (
        farsight_main(
            [
                "rs",
                "detect",
                str(tmp_path / "nope.tif"),
                str(pair6.after),
                "--out",
                str(tmp_path / "x.geojson"),
            ]
        )
        == 2
    )
    assert "nope.tif" in capsys.readouterr().err
    assert (
        farsight_main(
            [
                "rs",
                "detect",
                str(pair6.before),
                str(pair6.after),
                "--zones",
                str(tmp_path / "z.geojson"),
                "--out",
                str(tmp_path / "x.geojson"),
            ]
        )
        == 2
    )
    assert "z.geojson: 1 configuration error(s)" in capsys.readouterr().err


def test_watch_confirms_a_change_seen_in_a_later_scene(tmp_path):
    spec = {
        "seed": 21,
        "width": 256,
        "height": 256,
        "tile": 64,
        "changes_per_kind": 1,
        "kinds": ("new_construction", "water_gain"),
        "cloud_cover": (0.0, 0.0),
        "change_ha": (0.8, 1.2),
    }
    first = write_pair(SceneSpec(**spec), tmp_path / "sim1")
    later = write_pair(SceneSpec(**spec, after_date="2026-06-20T03:10:00Z"), tmp_path / "sim2")
    aoi = tmp_path / "inbox" / "yichang-east"
    aoi.mkdir(parents=True)
    shutil.copy(first.before, aoi / "s1.tif")
    shutil.copy(first.after, aoi / "s2.tif")
    out = tmp_path / "out"
    assert (
        farsight_main(
            ["rs", "watch", str(tmp_path / "inbox"), "--out-dir", str(out), "--once"] + FIRST
        )
        == 0
    )
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sorted(e["change"]["kind"] for e in events) == ["new_construction", "water_gain"]
    assert {e["state"] for e in events} == {"possible"} and events[0]["change"][
        "aoi"
    ] == "yichang-east"
    shutil.copy(later.after, aoi / "s3.tif")
    changes = []
    watch_once(
        tmp_path / "inbox", out, DetectOptions(), on_change=changes.append, policy=FIRST_LATER
    )
    assert sorted((c.region.kind, c.state, c.sightings) for c in changes) == [
        ("new_construction", "confirmed", 2),
        ("water_gain", "confirmed", 2),
    ]
    assert all(
        c.region.aoi == "yichang-east" and c.region.after.isoformat().startswith("2026-06-20")
        for c in changes
    )
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    confirmed = [e for e in events if e["state"] == "confirmed"]
    assert sorted(e["change"]["kind"] for e in confirmed) == ["new_construction", "water_gain"]
    assert all(e["previous"] == "possible" and e["sightings"] == 2 for e in confirmed)
    assert confirmed[0]["change"]["after"].startswith("2026-06-20")
    # Nothing new: a third run adds no event.
    assert (
        farsight_main(
            ["rs", "watch", str(tmp_path / "inbox"), "--out-dir", str(out), "--once"] + FIRST
        )
        == 0
    )
    assert len((out / "events.jsonl").read_text().splitlines()) == len(events)


def test_cva_method_with_em_threshold_runs_from_the_cli(pair6, tmp_path):
    out = tmp_path / "cva.geojson"
    assert (
        farsight_main(
            [
                "rs",
                "detect",
                str(pair6.before),
                str(pair6.after),
                "--method",
                "cva",
                "--threshold",
                "em",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    kinds = {f["properties"]["kind"] for f in json.loads(out.read_text())["features"]}
    assert kinds and kinds <= {
        "vegetation_loss",
        "new_construction",
        "water_gain",
        "water_loss",
        "bare_soil",
        "unclassified",
    }


def _detect_stderr(pair, tmp_path, terminal: bool, *extra: str) -> str:
    """Run ``farsight rs detect`` in a process whose stderr is a terminal (a pseudo-terminal of
    100 columns) or a file; return what it wrote there."""
    cmd = [sys.executable, "-m", "app", "rs", "detect", str(pair.before)]
    cmd += [str(pair.after), "--out", str(tmp_path / "changes.geojson"), "--block", "64", *extra]
    if not terminal:
        log = tmp_path / "stderr.log"
        with open(log, "wb") as fh:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=fh, timeout=120, check=True)
        return log.read_text(encoding="utf-8")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal's last open end
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait(timeout=120)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_detect_draws_a_progress_bar_on_a_terminal_unless_told_not_to(pair6, tmp_path):
    bar = _detect_stderr(pair6, tmp_path, True)
    assert "rs detect: 100%" in bar and "25/25" in bar and "block/s" in bar
    assert "block/s" not in _detect_stderr(pair6, tmp_path, True, "--no-progress")


def test_no_progress_bar_when_stderr_is_not_a_terminal(pair6, tmp_path):
    err = _detect_stderr(pair6, tmp_path, False)
    assert "block/s" not in err and "\r" not in err
