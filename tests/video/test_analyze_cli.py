"""CameraPipeline / analyze_file / `farsight video analyze` on rendered clips with ground truth."""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from farsight.clock import ManualClock
from simulators.camera import ClipSpec, EventSpec, scene_layout, write_mp4
from video.camera_config import parse_camera_config
from video.cli import add_video_parser
from video.episodes import episodes_of
from video.evidence import EvidenceStore
from video.pipeline import CameraPipeline, analyze_file, analyze_file_frames

W, H, FPS, SECONDS = 320, 180, 5.0, 12.0
ON_S = 2.0
COVER = EventSpec("covered", 4.0, 9.0)
STOP_BOX = (120, 110, 60, 40)
ROAD = scene_layout("highway", W, H).road
ROAD_ZONE = [[0, ROAD[0]], [W, ROAD[0]], [W, ROAD[1]], [0, ROAD[1]]]
SKY_ZONE = [[0, 0], [W, 0], [W, 30], [0, 30]]
TAMPER = {"on_s": ON_S, "off_s": 1.0, "warmup_s": 2.0}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    specs = {
        "covered": ClipSpec("stack", W, H, FPS, SECONDS, seed=3, events=(COVER,)),
        "vehicle": ClipSpec(
            "highway",
            W,
            H,
            FPS,
            SECONDS,
            seed=4,
            events=(EventSpec("vehicle_stop", 2.0, 10.0, STOP_BOX),),
        ),
        "clean": ClipSpec("stack", W, H, FPS, SECONDS, seed=5),
    }
    return {k: write_mp4(s, d / f"{k}.mp4") for k, s in specs.items()}


def config(**extra):
    raw = {"camera": "cam-01", "site": "site-001", "analysers": {"motion": {}, "tamper": TAMPER}}
    raw.update(extra)
    return parse_camera_config(raw)


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_covered_lens_fires_after_debounce_with_evidence(clips, tmp_path):
    store = EvidenceStore.for_data_dir(tmp_path)
    rows = list(analyze_file(clips["covered"].path, config(), evidence=store))
    covered = [r for r in rows if r["kind"] == "camera_covered"]
    assert len(covered) == 1, rows
    r = covered[0]
    # Fires once the condition has held on_s seconds; one frame of slack for the grab grid.
    assert COVER.start_s + ON_S - 1e-6 <= r["offset_s"] <= COVER.start_s + ON_S + 1 / FPS + 1e-6
    assert r["offset_s"] < COVER.end_s
    assert (r["site"], r["camera"], r["bbox"], r["zone"]) == ("site-001", "cam-01", None, None)
    assert 0.5 <= r["confidence"] <= 1 and r["detail"]["state"] == "active"
    assert len(r["evidence"]) == 2
    for sha in r["evidence"]:
        p = store.path(sha)
        data = p.read_bytes()
        assert p.name == f"{sha}.jpg" and p.parent.name == sha[:2]
        assert hashlib.sha256(data).hexdigest() == sha
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (H, W, 3)
    assert not [x for x in rows if x["kind"] in ("camera_defocused", "camera_moved")]


def test_clean_clip_has_no_tamper_detections(clips):
    rows = list(analyze_file(clips["clean"].path, config()))
    assert not [r for r in rows if r["kind"].startswith("camera_")]


def test_vehicle_stop_gives_motion_in_the_configured_zone(clips, tmp_path):
    cfg = config(zones=[{"name": "road", "points": ROAD_ZONE}, {"name": "sky", "points": SKY_ZONE}])
    rows = list(analyze_file(clips["vehicle"].path, cfg))
    motion = [r for r in rows if r["kind"] == "motion"]
    assert motion and {r["zone"] for r in motion} == {"road"}
    assert all(r["bbox"][1] + r["bbox"][3] > ROAD[0] and r["bbox"][1] < ROAD[1] for r in motion)
    # The stopping vehicle is seen at its stop box while the event runs.
    assert any(2.0 <= r["offset_s"] < 10.0 and overlaps(r["bbox"], STOP_BOX) for r in motion)


def test_snapshots_are_bounded_per_kind(clips, tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    cfg = config(zones=[{"name": "road", "points": ROAD_ZONE}], evidence={"snapshot_interval_s": 5})
    pipeline = CameraPipeline(cfg.model_copy(update={"source": str(clips["vehicle"].path)}), store)
    obs = list(pipeline.run())
    with_evidence = [o for o in obs if o.detection.evidence]
    frames_with_motion = {o.offset_s for o in obs}
    assert len(frames_with_motion) > 30
    assert 1 <= pipeline.snapshots < len(frames_with_motion) / 2
    files = [p for p in (tmp_path / "ev").rglob("*.jpg")]
    assert len(files) <= 2 * pipeline.snapshots
    assert with_evidence[0].offset_s == min(frames_with_motion)  # first start is always captured


def test_without_config_every_analyser_runs_with_defaults(clips):
    start = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    rows = list(analyze_file(clips["vehicle"].path, clock=ManualClock(start)))
    assert rows and {r["kind"] for r in rows} == {
        "motion"
    }  # tamper defaults: 10 s debounce, nothing fires
    assert all(
        r["site"] == "local" and r["camera"] == "vehicle" and r["zone"] is None for r in rows
    )
    assert all(r["evidence"] == [] for r in rows)
    r = rows[0]
    assert datetime.fromisoformat(r["ts"]) == start + timedelta(seconds=r["offset_s"])


def test_rate_override_decimates(clips):
    slow = list(analyze_file(clips["vehicle"].path, config(), rate_fps=1.0))
    assert slow and all(abs(r["offset_s"] - round(r["offset_s"])) < 1e-6 for r in slow)


# --------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="farsight")
    add_video_parser(p.add_subparsers(dest="command"))
    return p


def run_cli(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


def test_cli_writes_jsonl_file_and_evidence(clips, tmp_path):
    cam = tmp_path / "cam.yaml"
    cam.write_text(
        "camera: cam-01\nsite: site-001\nanalysers:\n  motion: {}\n"
        "  tamper: {on_s: 2, off_s: 1, warmup_s: 2}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out" / "events.jsonl"
    ev = tmp_path / "evidence"
    rc = run_cli(
        [
            "video",
            "analyze",
            str(clips["covered"].path),
            "--camera",
            str(cam),
            "--out",
            str(out),
            "--evidence",
            str(ev),
            "--frames",
        ]
    )
    assert rc == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows and all(
        {"kind", "offset_s", "site", "camera", "confidence", "ts", "bbox", "zone", "evidence"}
        <= set(r)
        for r in rows
    )
    covered = [r for r in rows if r["kind"] == "camera_covered"]
    assert len(covered) == 1
    for sha in covered[0]["evidence"]:
        assert (ev / sha[:2] / f"{sha}.jpg").is_file()


def test_cli_stdout_when_no_out(clips, capsys):
    assert run_cli(["video", "analyze", str(clips["vehicle"].path), "--rate", "2", "--frames"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert rows and {r["kind"] for r in rows} == {"motion"}
    assert "detection(s)" in captured.err


def test_cli_bad_config_prints_key_path_and_exits_2(clips, tmp_path, capsys):
    cam = tmp_path / "bad.yaml"
    cam.write_text("zones:\n  - name: gate\n    points: [[0, 0], [1, 1]]\n", encoding="utf-8")
    assert run_cli(["video", "analyze", str(clips["clean"].path), "--camera", str(cam)]) == 2
    err = capsys.readouterr().err
    assert "zones.0.points" in err and str(cam) in err


def test_cli_bad_rate_exits_2_missing_clip_exits_1(clips, tmp_path, capsys):
    assert run_cli(["video", "analyze", str(clips["clean"].path), "--rate", "0"]) == 2
    assert run_cli(["video", "analyze", str(tmp_path / "nope.mp4")]) == 1
    assert "not found" in capsys.readouterr().err


def test_farsight_video_analyze_as_a_user_runs_it(clips, tmp_path):
    import os
    import subprocess
    import sys

    cam = tmp_path / "cam.yaml"
    cam.write_text(
        "camera: cam-01\nsite: site-001\nanalysers:\n  tamper: {on_s: 2, off_s: 1, warmup_s: 2}\n",
        encoding="utf-8",
    )
    out = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "video",
            "analyze",
            str(clips["covered"].path),
            "--camera",
            str(cam),
            "--out",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FARSIGHT_DATA_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    (covered,) = [r for r in rows if r["kind"] == "camera_covered"]
    truth = clips["covered"].events[0]
    assert truth.start_s <= covered["offset_s"] <= truth.end_s
    # The default output is episodes: the cover's end is in it too.
    assert truth.end_s <= covered["end_s"] <= truth.end_s + 2.0 and not covered["ongoing"]


# --------------------------------------------------------------------------- episodes

FIRE = EventSpec("fire", 20.0, 40.0, (150, 60, 80, 70))


@pytest.fixture(scope="module")
def fire_minute(tmp_path_factory):
    """A minute of the construction scene with one fire from 20 s to 40 s."""
    spec = ClipSpec("construction", W, H, FPS, 60.0, seed=1, events=(FIRE,))
    return write_mp4(spec, tmp_path_factory.mktemp("fire") / "fire.mp4")


def test_a_minute_with_one_event_is_one_line(fire_minute, tmp_path, capsys):
    cam = tmp_path / "cam.yaml"
    cam.write_text("camera: cam-02\nsite: site-001\nanalysers:\n  fire: {}\n", encoding="utf-8")
    base = ["video", "analyze", str(fire_minute.path), "--camera", str(cam)]
    assert run_cli([*base, "--out", str(tmp_path / "frames.jsonl"), "--frames"]) == 0
    frames = (tmp_path / "frames.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(frames) > 50, "per frame: a line for every analysed frame of the fire"
    assert run_cli(base) == 0
    out = capsys.readouterr()
    (line,) = out.out.splitlines()
    ep = json.loads(line)
    assert "1 episode(s)" in out.err
    assert (ep["kind"], ep["camera"], ep["site"], ep["zone"]) == (
        "fire",
        "cam-02",
        "site-001",
        None,
    )
    rows = [json.loads(f) for f in frames]
    # The episode is the per-frame rows summed up: first and last row, the peak among them.
    assert ep["offset_s"] == rows[0]["offset_s"] and ep["end_s"] == rows[-1]["offset_s"]
    assert ep["confidence"] == max(r["confidence"] for r in rows)
    peak = next(r for r in rows if r["confidence"] == ep["confidence"])
    assert (ep["peak_offset_s"], ep["bbox"]) == (peak["offset_s"], peak["bbox"])
    assert ep["frames"] == len({r["offset_s"] for r in rows})
    assert ep["snapshot"] is None and ep["evidence"] == []


def test_episode_start_end_and_peak_match_the_simulator_truth(fire_minute, tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    cfg = parse_camera_config({"camera": "cam-02", "site": "s", "analysers": {"fire": {}}})
    (ep,) = episodes_of(analyze_file_frames(fire_minute.path, cfg, evidence=store))
    (truth,) = fire_minute.events
    # The fire analyser's latency (<= 3 s) and its tail after the flames go (< 2.5 s), as in
    # tests/video/test_smoke_fire.py.
    assert truth.start_s <= ep["offset_s"] <= truth.start_s + 3.0
    assert truth.end_s - 1 / FPS - 1e-6 <= ep["end_s"] < truth.end_s + 2.5
    assert ep["offset_s"] <= ep["peak_offset_s"] <= ep["end_s"] and 0.5 <= ep["confidence"] <= 1
    assert overlaps(ep["bbox"], truth.bbox) and not ep["ongoing"]
    assert ep["frames"] >= 0.95 * (truth.end_s - ep["offset_s"]) * FPS
    assert len(ep["peak_evidence"]) == 2 and set(ep["peak_evidence"]) <= set(ep["evidence"])
    assert all(store.path(sha).is_file() for sha in ep["evidence"])


def test_cli_episode_names_the_peak_snapshot_and_a_latched_cover_ends_when_cleared(clips, tmp_path):
    cam = tmp_path / "cam.yaml"
    cam.write_text(
        "camera: cam-01\nsite: site-001\nanalysers:\n  tamper: {on_s: 2, off_s: 1, warmup_s: 2}\n",
        encoding="utf-8",
    )
    out, ev = tmp_path / "episodes.jsonl", tmp_path / "evidence"
    argv = ["video", "analyze", str(clips["covered"].path), "--camera", str(cam)]
    assert run_cli([*argv, "--out", str(out), "--evidence", str(ev)]) == 0
    (ep,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert ep["kind"] == "camera_covered" and ep["detail"]["state"] == "active"
    # Confirmed on_s after the cover starts; ended by the analyser's clear, off_s after the
    # cover is taken away (one frame of slack each for the grab grid).
    assert COVER.start_s + ON_S - 1e-6 <= ep["offset_s"] <= COVER.start_s + ON_S + 1 / FPS + 1e-6
    assert COVER.end_s <= ep["end_s"] <= COVER.end_s + 1.0 + 2 / FPS and not ep["ongoing"]
    assert ep["peak_offset_s"] == ep["offset_s"] and ep["frames"] == 1
    snap = Path(ep["snapshot"])
    assert snap == ev / ep["peak_evidence"][0][:2] / f"{ep['peak_evidence'][0]}.jpg"
    img = cv2.imread(str(snap))
    assert img is not None and img.shape == (H, W, 3)
