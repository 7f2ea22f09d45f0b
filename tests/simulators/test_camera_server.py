"""The simulated camera server: capture times on every frame, clips that start with their first
viewer, and playback faster than real time."""

from __future__ import annotations

import time

import httpx

from simulators.camera import ClipSpec
from simulators.camera_server import CameraServer
from video.sources import Frame, MjpegSource


def test_frames_carry_capture_times_from_the_first_request_at_the_chosen_speed() -> None:
    spec = ClipSpec("construction", 160, 90, 5.0, 30.0, 1)
    with CameraServer({"c": spec}, speed=4.0) as cams:
        time.sleep(0.5)  # the clip has not started: nobody asked for it yet
        assert cams.feeds["c"].frames == 0
        asked = time.time()
        src = MjpegSource(cams.url("c"), timeout_s=5, camera_time=True)
        frames: list[Frame] = []
        wall0 = time.monotonic()
        try:
            for item in src.frames():
                if isinstance(item, Frame):
                    frames.append(item)
                if len(frames) >= 20:
                    break
        finally:
            src.close()
        wall = time.monotonic() - wall0
        snap = httpx.get(cams.url("c", "jpg"), timeout=5)
    # The clip's time starts when it was first asked for, in steps of its frame period.
    first = frames[0].ts.timestamp()
    assert asked - 0.5 < first < asked + 2.0
    steps = [(f.ts.timestamp() - first) / 0.2 for f in frames]
    assert all(abs(s - round(s)) < 1e-3 for s in steps), steps
    # Four clip seconds a second: the capture times run well ahead of the wall clock.
    span = frames[-1].ts.timestamp() - first
    assert span > 2.0 * wall, (span, wall)
    assert snap.status_code == 200 and float(snap.headers["x-timestamp"]) > first
