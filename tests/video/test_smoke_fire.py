"""SmokeDetector and FireDetector on simulator clips: detect their event, stay quiet otherwise."""

from __future__ import annotations

import pytest

from farsight.errors import ConfigError
from simulators.camera import ClipSpec, EventSpec, render_clip, scene_layout
from video.analysers import Analyser, FireDetector, FireParams, SmokeDetector, SmokeParams, Zone
from video.analysers.base import Finding

W, H, FPS = 320, 180, 5.0
START, END, SECONDS = 5.0, 15.0, 18.0

# Vehicle colours the simulator picks from the seed (palette index of default_rng([seed, 3, 0])):
ORANGE_CAR_SEED, WHITE_CAR_SEED, DARK_CAR_SEED = 2, 3, 7


def event_box(scene: str, kind: str) -> tuple[int, int, int, int]:
    """A plausible place for each event in each scene at W x H."""
    if kind == "vehicle_stop":
        y0, y1 = scene_layout(scene, W, H).road
        return (140, y0 + 4, 70, min(40, y1 - y0 - 8))
    if scene == "stack":
        sx, sy = scene_layout(scene, W, H).stack_top
        return (sx - 20, sy - 35, 40, 35) if kind == "fire" else (sx - 30, sy - 50, 60, 50)
    return {
        "construction": (150, 60, 80, 70),
        "highway": (100, 60, 80, 60),
        "outfall": (120, 40, 80, 60),
    }[scene]


def clip(
    scene: str,
    kind: str | None,
    seed: int,
    night: bool = False,
    noise: float = 2.0,
    shake: float = 0.0,
):
    events = () if kind is None else (EventSpec(kind, START, END, event_box(scene, kind)),)
    return ClipSpec(scene, W, H, FPS, SECONDS, seed, night, noise, shake, events)


def run(det, spec: ClipSpec) -> list[tuple[float, Finding]]:
    return [(t, f) for t, frame in render_clip(spec) for f in det.update(frame, t)]


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def assert_detects(log, kind: str, box, latency_s: float, tail_s: float) -> float:
    """Findings of ``kind`` start within latency, stay on, overlap the event, end after it;
    return the rate."""
    assert log, "nothing detected"
    assert {f.kind for _, f in log} == {kind}
    times = [t for t, _ in log]
    assert START <= times[0] <= START + latency_s, f"first finding at {times[0]}"
    assert times[-1] < END + tail_s, f"still reporting at {times[-1]}"
    assert all(overlaps(f.bbox, box) for _, f in log)
    assert all(0.5 <= f.confidence <= 1.0 for _, f in log)
    # Steady state: every frame from the first finding to the event end has one.
    expected = round((END - times[0]) * FPS)
    inside = sum(1 for t in times if t < END)
    rate = inside / expected
    assert rate >= 0.95, f"only {inside}/{expected} frames reported"
    return rate


# ----------------------------------------------------------------------------------------- API


def test_detectors_are_analysers():
    assert isinstance(SmokeDetector(), Analyser)
    assert isinstance(FireDetector(), Analyser)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SmokeParams(persist_s=0.0),
        lambda: SmokeParams(diff_min=0.0),
        lambda: SmokeParams(bg_tau_s=100.0, fg_tau_s=10.0),
        lambda: SmokeParams(analysis_height=10),
        lambda: SmokeParams(min_area=float("nan")),
        lambda: FireParams(window_s=0.0),
        lambda: FireParams(flicker_min=1.5),
        lambda: FireParams(r_min=300.0),
    ],
)
def test_params_out_of_bounds_raise(make):
    with pytest.raises(ConfigError):
        make()


def test_bad_frames_raise():
    import numpy as np

    for det in (SmokeDetector(), FireDetector()):
        with pytest.raises(ConfigError):
            det.update(np.zeros((10, 10), np.uint8), 0.0)
        det.update(np.zeros((64, 64, 3), np.uint8), 0.0)
        with pytest.raises(ConfigError):
            det.update(np.zeros((64, 80, 3), np.uint8), 0.2)


def test_duplicate_zone_names_raise():
    z = Zone("a", ((0, 0), (10, 0), (10, 10)))
    with pytest.raises(ConfigError):
        SmokeDetector(zones=[z, z])


# ---------------------------------------------------------------------------------------- fire


@pytest.mark.parametrize(
    "scene,seed,night",
    [("stack", 2, False), ("construction", 1, False), ("construction", 2, False),
     ("highway", 1, False), ("outfall", 3, False), ("construction", 1, True), ("highway", 2, True),
     ("stack", 1, True)],
)  # fmt: skip
def test_fire_detected_day_and_night(scene, seed, night):
    log = run(FireDetector(), clip(scene, "fire", seed, night))
    assert_detects(log, "fire", event_box(scene, "fire"), latency_s=3.0, tail_s=2.5)


@pytest.mark.parametrize("scene", ["stack", "construction", "highway", "outfall"])
@pytest.mark.parametrize("night", [False, True])
def test_fire_quiet_on_clean_noisy_shaky_clips(scene, night):
    # Night stack: lit windows and the red aviation lamp pass the colour rules and shake makes
    # them flicker; the blob-size filter is what keeps this quiet.
    assert run(FireDetector(), clip(scene, None, 1, night, noise=3.0, shake=1.5)) == []


@pytest.mark.parametrize(
    "scene,kind,seed,night",
    [("stack", "smoke", 1, False), ("construction", "smoke", 2, True),
     ("highway", "vehicle_stop", ORANGE_CAR_SEED, False),
     ("highway", "vehicle_stop", ORANGE_CAR_SEED, True),
     ("highway", "vehicle_stop", DARK_CAR_SEED, True),
     ("highway", "vehicle_stop", WHITE_CAR_SEED, True)],
)  # fmt: skip
def test_fire_quiet_on_other_events(scene, kind, seed, night):
    assert run(FireDetector(), clip(scene, kind, seed, night)) == []


def test_fire_needs_flicker_a_static_flame_coloured_patch_is_not_fire():
    # Same fire, but a flicker threshold no frame-to-frame step reaches: the colour alone must not
    # fire.
    assert run(FireDetector(FireParams(flicker_step=250.0)), clip("highway", "fire", 1)) == []


# --------------------------------------------------------------------------------------- smoke


@pytest.mark.parametrize(
    "scene,seed,night",
    [("stack", 1, False), ("stack", 2, False), ("construction", 1, False), ("highway", 3, False),
     ("outfall", 2, False), ("stack", 1, True), ("construction", 2, True), ("outfall", 1, True)],
)  # fmt: skip
def test_smoke_detected_after_persisting(scene, seed, night):
    log = run(SmokeDetector(), clip(scene, "smoke", seed, night))
    # persist_s 3 s + on_s 1 s, plus the plume needs a moment to grow past diff_min.
    rate = assert_detects(log, "smoke", event_box(scene, "smoke"), latency_s=6.5, tail_s=3.0)
    assert log[0][0] >= START + SmokeParams().persist_s  # never before it could have persisted
    assert rate >= 0.95


@pytest.mark.parametrize("scene", ["stack", "construction", "highway", "outfall"])
@pytest.mark.parametrize("night", [False, True])
def test_smoke_quiet_on_clean_noisy_shaky_clips(scene, night):
    assert run(SmokeDetector(), clip(scene, None, 2, night, noise=3.0, shake=1.5)) == []


@pytest.mark.parametrize(
    "scene,kind,seed,night",
    [("stack", "fire", 1, False), ("construction", "fire", 2, True), ("highway", "fire", 1, True),
     ("highway", "vehicle_stop", WHITE_CAR_SEED, False),
     ("highway", "vehicle_stop", DARK_CAR_SEED, False),
     ("highway", "vehicle_stop", WHITE_CAR_SEED, True)],
)  # fmt: skip
def test_smoke_quiet_on_other_events(scene, kind, seed, night):
    assert run(SmokeDetector(), clip(scene, kind, seed, night)) == []


def test_smoke_reported_per_zone():
    x, y, w, h = event_box("construction", "smoke")
    over = Zone("site", ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))
    away = Zone("road", ((0, 150), (100, 150), (100, 175), (0, 175)))
    log = run(SmokeDetector(zones=[over, away]), clip("construction", "smoke", 1))
    assert log and {f.zone for _, f in log} == {"site"}
    for _, f in log:
        fx, fy, fw, fh = f.bbox
        assert (
            x - 2 <= fx and fx + fw <= x + w + 2 and y - 2 <= fy and fy + fh <= y + h + 2
        )  # clipped to the zone


def test_smoke_works_on_full_resolution_frames_with_bbox_in_full_pixels():
    spec = ClipSpec(
        "construction",
        640,
        360,
        FPS,
        SECONDS,
        1,
        events=(EventSpec("smoke", START, END, (300, 120, 160, 140)),),
    )
    log = run(SmokeDetector(), spec)
    assert log
    assert all(overlaps(f.bbox, (300, 120, 160, 140)) and f.bbox[2] > 40 for _, f in log)
