"""StoppedVehicleDetector on simulated highway clips with known ground truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from farsight.errors import ConfigError
from simulators.camera import ClipSpec, EventSpec, render_clip, scene_layout
from video.analysers.base import Analyser, Finding, Zone
from video.analysers.stopped import StoppedVehicleDetector, StoppedVehicleParams

W, H, FPS = 320, 180, 5.0
Y0, _Y1 = scene_layout("highway", W, H).road
STOP_BOX = (120, Y0 + 10, 80, 40)  # on the road
ELSEWHERE = (10, Y0 + 10, 60, 40)  # also on the road, well left of the stop box


def box_zone(box, name: str = "no_stop") -> Zone:
    x, y, w, h = box
    return Zone(name, ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))


def overlaps(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def run(
    spec: ClipSpec, zone_box, params: StoppedVehicleParams | None = None
) -> list[tuple[float, list[Finding]]]:
    det = StoppedVehicleDetector(W, H, [box_zone(zone_box)], params)
    assert isinstance(det, Analyser)
    return [(t, det.update(frame, t)) for t, frame in render_clip(spec)]


def clip(*events: EventSpec, seed: int = 3, noise: float = 2.0, seconds: float = 35.0) -> ClipSpec:
    return ClipSpec("highway", W, H, FPS, seconds, seed=seed, noise=noise, events=tuple(events))


@pytest.mark.parametrize("seed", [1, 7])
def test_stop_in_zone_reported_after_dwell(seed):
    start, end = 8.0, 23.0
    out = run(clip(EventSpec("vehicle_stop", start, end, STOP_BOX), seed=seed), STOP_BOX)
    hits = [(t, f) for t, fs in out for f in fs]
    assert hits, "a 15 s stop in the zone must be reported"
    first = hits[0][0]
    assert first >= start + 10.0 - 1e-6  # never before the dwell
    assert first <= start + 10.0 + 3.0  # and soon after it
    # Reported on every update while it holds, until the vehicle leaves.
    times = [t for t, _ in hits]
    assert all(abs(b - a - 1 / FPS) < 1e-6 for a, b in itertools.pairwise(times))
    assert times[-1] <= end + 1.0
    for t, f in hits:
        assert f.kind == "stopped_vehicle" and f.zone == "no_stop"
        assert 0.0 < f.confidence <= 1.0
        assert overlaps(f.bbox, STOP_BOX)
        assert f.detail["dwell_s"] >= 10.0 - 1e-6


def test_stop_outside_zone_gives_nothing():
    out = run(clip(EventSpec("vehicle_stop", 8.0, 23.0, STOP_BOX)), ELSEWHERE)
    assert not any(fs for _, fs in out)


def test_clean_noisy_clip_gives_nothing():
    out = run(clip(noise=4.0, seconds=30.0), STOP_BOX, StoppedVehicleParams(dwell_s=2.0))
    assert not any(fs for _, fs in out)


def test_moving_traffic_gives_nothing():
    # Cars that only drive through the zone: each "stop" is a single frame long.
    events = tuple(EventSpec("vehicle_stop", s, s + 0.2, STOP_BOX) for s in (6.0, 14.0, 22.0))
    out = run(clip(*events, seconds=30.0), STOP_BOX, StoppedVehicleParams(dwell_s=2.0))
    assert not any(fs for _, fs in out)


def test_short_stop_below_dwell_gives_nothing():
    out = run(clip(EventSpec("vehicle_stop", 8.0, 14.0, STOP_BOX), seconds=25.0), STOP_BOX)
    assert not any(fs for _, fs in out)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resize_height": 8},
        {"blur_ksize": 4},
        {"threshold": 0},
        {"fast_alpha": 1.0},
        {"slow_alpha": 0.3},
        {"min_fraction": 0.0},
        {"dwell_s": -1.0},
        {"gap_s": -0.5},
        {"global_change": 0.0},
    ],
)
def test_params_bounds(kwargs):
    with pytest.raises(ConfigError):
        StoppedVehicleParams(**kwargs)


def test_constructor_validation():
    with pytest.raises(ConfigError):
        StoppedVehicleDetector(W, H, [])
    with pytest.raises(ConfigError):
        StoppedVehicleDetector(W, H, [box_zone(STOP_BOX, "a"), box_zone(ELSEWHERE, "a")])
    with pytest.raises(ConfigError):
        StoppedVehicleDetector(0, H, [box_zone(STOP_BOX)])
    det = StoppedVehicleDetector(W, H, [box_zone(STOP_BOX)])
    with pytest.raises(ConfigError):
        det.update(np.zeros((H, W + 2, 3), np.uint8), 0.0)
