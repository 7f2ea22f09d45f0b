"""MotionDetector on seeded synthetic scenes with known ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from farsight.errors import ConfigError
from tests.video import H, W, noisy, scene
from video.analysers import Analyser, Finding, MotionDetector, MotionParams, Zone

SIDE = 30
YARD = Zone("yard", ((0, 0), (320, 0), (320, 360), (0, 360)))
GATE = Zone("gate", ((320, 0), (640, 0), (640, 360), (320, 360)))


def square_frames(n: int = 25, seed: int = 0):
    """Yield (frame, square box) with a dark square moving right through x 60..260 at y 150."""
    bg = scene(seed)
    rng = np.random.default_rng(seed + 100)
    for i in range(n):
        frame = noisy(bg, rng)
        if i < 5:  # background only, so the detector learns the scene first
            yield frame, None
            continue
        x, y = 60 + 8 * (i - 5), 150
        cv2.rectangle(frame, (x, y), (x + SIDE - 1, y + SIDE - 1), (15, 15, 15), -1)
        yield frame, (x, y, SIDE, SIDE)


def overlaps(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def run(det: MotionDetector, frames, fps: float = 10.0):
    out = []
    for i, (frame, truth) in enumerate(frames):
        out.append((det.update(frame, i / fps), truth))
    return out


def test_is_an_analyser():
    assert isinstance(MotionDetector(W, H), Analyser)


def test_moving_square_in_zone_is_detected_with_zone_name():
    det = MotionDetector(W, H, zones=[YARD, GATE])
    results = run(det, square_frames())
    for findings, truth in results[:5]:
        assert findings == []
    for findings, truth in results[6:]:
        hits = [f for f in findings if overlaps(f.bbox, truth)]
        assert hits, f"no box overlapping {truth}: {findings}"
        assert all(f.kind == "motion" and f.zone == "yard" for f in findings)
        assert all(0.0 <= f.confidence <= 1.0 for f in findings)
        # The box covers the square (and possibly its trail), not the whole frame.
        box = hits[0].bbox
        assert box[2] * box[3] < 0.1 * W * H
        cx, cy = truth[0] + SIDE // 2, truth[1] + SIDE // 2
        assert any(
            f.bbox[0] <= cx < f.bbox[0] + f.bbox[2] and f.bbox[1] <= cy < f.bbox[1] + f.bbox[3]
            for f in hits
        )


def test_without_zones_boxes_have_no_zone():
    det = MotionDetector(W, H)
    results = run(det, square_frames())
    found = [f for findings, _ in results for f in findings]
    assert found and all(f.zone is None for f in found)


def test_motion_inside_mask_is_ignored():
    mask = [(40, 130), (320, 130), (320, 200), (40, 200)]
    det = MotionDetector(W, H, zones=[YARD, GATE], masks=[mask])
    assert all(findings == [] for findings, _ in run(det, square_frames()))


def test_motion_outside_every_zone_is_dropped():
    det = MotionDetector(W, H, zones=[GATE])
    assert all(findings == [] for findings, _ in run(det, square_frames()))


def test_sensor_noise_alone_gives_nothing_over_200_frames():
    bg = scene(3)
    rng = np.random.default_rng(3)
    det = MotionDetector(W, H)
    for i in range(200):
        assert det.update(noisy(bg, rng, sigma=3.0), i / 10) == []


def test_global_brightness_jump_is_not_motion():
    bg = scene(4)
    bright = cv2.convertScaleAbs(bg, alpha=1.0, beta=60)
    rng = np.random.default_rng(4)
    det = MotionDetector(W, H)
    for i in range(10):
        assert det.update(noisy(bg, rng), i / 10) == []
    for i in range(10, 30):
        assert det.update(noisy(bright, rng), i / 10) == []
    assert det.last_changed_fraction < 0.01  # background re-learned


def test_full_resolution_boxes_inside_frame():
    # One frame of change: persistence 1 reports it at once (the geometry is what is tested).
    det = MotionDetector(1280, 720, params=MotionParams(resize_height=180, min_frames=1))
    bg = cv2.resize(scene(5), (1280, 720))
    rng = np.random.default_rng(5)
    det.update(noisy(bg, rng), 0.0)
    frame = noisy(bg, rng)
    cv2.rectangle(frame, (1200, 660), (1279, 719), (0, 0, 0), -1)
    (f,) = det.update(frame, 0.1)
    x, y, w, h = f.bbox
    # Blur and dilation grow the box by a few analysis pixels (4 full-res px each) at most.
    assert 1170 <= x <= 1200 and 630 <= y <= 660 and x + w == 1280 and y + h == 720


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"threshold": 256},
        {"alpha": 0.0},
        {"alpha": 1.0},
        {"min_area": 1.0},
        {"blur_ksize": 4},
        {"global_change": 0.0},
        {"resize_height": 8},
    ],
)
def test_params_are_validated(kwargs):
    with pytest.raises(ConfigError):
        MotionParams(**kwargs)


def test_bad_frame_and_zone_arguments_raise():
    det = MotionDetector(W, H)
    with pytest.raises(ConfigError):
        det.update(np.zeros((H, W), np.uint8), 0.0)
    with pytest.raises(ConfigError):
        det.update(np.zeros((H + 1, W, 3), np.uint8), 0.0)
    with pytest.raises(ConfigError):
        Zone("z", ((0, 0), (1, 1)))
    with pytest.raises(ConfigError):
        MotionDetector(W, H, zones=[YARD, YARD])
    with pytest.raises(ConfigError):
        Finding(kind="motion", confidence=1.5, bbox=None, zone=None, detail={})
