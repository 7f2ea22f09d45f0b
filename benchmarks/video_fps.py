"""Video analysis rate: analysed frames per second at 1280x720 for the full analyser set,
including JPEG decode, against the decode-only rate measured in the same run.

Each worker process is one camera: it decodes a camera's JPEG frames (rendered by the camera
simulator, encoded once before timing) and runs every registered analyser on each, with
``cv2.setNumThreads(1)`` so that processes, not OpenCV threads, use the cores (as ``farsight video
run`` deploys them). Workers run in parallel; the rate is frames over wall time.

    .venv/bin/python benchmarks/video_fps.py [--workers 2] [--frames 300] [--cameras 20]

The last line printed is the figure.
"""

from __future__ import annotations

import os
import sys

# benchmarks/queue.py shares its name with the standard library's queue module, which
# multiprocessing imports: this folder must not be first on the import path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from simulators.camera import ClipSpec, EventSpec, render_clip, scene_layout

W, H = 1280, 720
SCENES = ("stack", "construction", "highway", "outfall")


def camera_frames(index: int, n: int, fps: float = 5.0) -> list[bytes]:
    """``n`` JPEG frames of one simulated camera (a scene with an event, seeded by ``index``)."""
    scene = SCENES[index % len(SCENES)]
    lay = scene_layout(scene, W, H)
    if scene == "stack":
        sx, sy = lay.stack_top
        event = EventSpec(
            "black_smoke", 10.0, 40.0, (sx - W // 10, sy - H // 4, W // 5, H // 4), grade=3
        )
    elif scene == "highway":
        y0, y1 = lay.road
        event = EventSpec("vehicle_stop", 10.0, 40.0, (W // 2 - 120, y0, 240, y1 - y0))
    else:
        event = EventSpec("smoke", 10.0, 40.0, (W // 4, H // 2, W // 3, H // 3))
    spec = ClipSpec(scene, W, H, fps, n / fps, seed=index, events=(event,), noise=2.0)
    return [
        cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        for _, frame in render_clip(spec)
    ]


def _analysers(scene: str) -> list:
    """Every analyser a camera of this scene runs: the defaults, and black smoke at a stack
    (it needs the camera's plume and sky boxes)."""
    from video.analysers import BlackSmokeParams
    from video.camera_config import FrameGeometry, analyser_entry, parse_camera_config

    geometry = FrameGeometry(W, H)
    sections = dict(parse_camera_config({"camera": "cam1", "site": "bench"}).enabled_analysers())
    if scene == "stack":
        sx, sy = scene_layout(scene, W, H).stack_top
        plume = (sx - W // 10, sy - H // 4, W // 5, H // 4)
        sections["black_smoke"] = BlackSmokeParams(
            enabled=True, plume=plume, sky=(plume[0] - W // 4, plume[1], W // 6, plume[3])
        )
    return [analyser_entry(name).factory(section, geometry) for name, section in sections.items()]


def run_worker(args: tuple[list[bytes], bool, str]) -> tuple[int, float, list[str]]:
    """Decode (and analyse) one camera's frames; returns (frames, seconds, analyser names)."""
    frames, analyse, scene = args
    cv2.setNumThreads(1)
    analysers = _analysers(scene) if analyse else []
    names = [type(a).__name__ for a in analysers]
    t = time.perf_counter()
    for i, data in enumerate(frames):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        for a in analysers:
            a.update(img, i / 5.0)
    return len(frames), time.perf_counter() - t, names


def measure(
    pool: ProcessPoolExecutor, cams: list[list[bytes]], analyse: bool
) -> tuple[float, list[str]]:
    t = time.perf_counter()
    results = list(
        pool.map(
            run_worker,
            [(frames, analyse, SCENES[i % len(SCENES)]) for i, frames in enumerate(cams)],
        )
    )
    wall = time.perf_counter() - t
    return sum(n for n, _, _ in results) / wall, sorted(
        {name for _, _, names in results for name in names}
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--workers", type=int, default=2, help="worker processes (default: the 2 cores here)"
    )
    ap.add_argument("--cameras", type=int, default=4, help="simulated cameras (one task each)")
    ap.add_argument("--frames", type=int, default=250, help="frames per camera (5 fps)")
    args = ap.parse_args()
    cams = [camera_frames(i, args.frames) for i in range(args.cameras)]
    # spawn, not fork: a forked child inherits OpenCV's thread pool in whatever state it was.
    with ProcessPoolExecutor(
        max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        measure(pool, cams[:1], True)  # start the workers and import everything before timing
        decode, _ = measure(pool, cams, False)
        analysed, names = measure(pool, cams, True)
    print(f"decode only: {decode:,.0f} frames/s ({args.workers} workers, 1280x720 JPEG)")
    print(f"analysers: {', '.join(names)}")
    print(
        f"video: {analysed:,.0f} analysed frames/s at 1280x720 incl. decode, "
        f"{args.workers} workers; "
        f"decode only {decode:,.0f} frames/s; ratio {analysed / decode:.2f}"
    )


if __name__ == "__main__":
    main()
