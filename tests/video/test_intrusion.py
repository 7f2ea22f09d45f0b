"""IntrusionDetector: a person-shaped blob with its feet in a zone, on seeded simulator clips and
synthetic frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from farsight.errors import ConfigError
from simulators.camera import ClipSpec, EventSpec, render_clip, scene_layout
from tests.video import noisy, scene
from video.analysers.base import Analyser, Finding, Zone
from video.analysers.intrusion import Blob, IntrusionDetector, IntrusionParams, person_like

W, H, FPS = 320, 180, 5.0
HZ = scene_layout("construction", W, H).horizon_y
WALK = (
    20,
    HZ + 8,
    280,
    20,
)  # a strip of the site in front of the building: a 20 px figure walks across
ZONE = (10, HZ + 2, 300, 30)  # the restricted area around it (feet well inside)
START, END = 6.0, 16.0


def box_zone(box, name: str = "site") -> Zone:
    x, y, w, h = box
    return Zone(name, ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def run(det: IntrusionDetector, spec: ClipSpec) -> list[tuple[float, Finding]]:
    return [(t, f) for t, frame in render_clip(spec) for f in det.update(frame, t)]


def clip(night: bool = True, seed: int = 4, walk=WALK, **kw) -> ClipSpec:
    events = (EventSpec("person", START, END, walk),) if walk else ()
    return ClipSpec("construction", W, H, FPS, 24.0, seed=seed, night=night, events=events, **kw)


def test_is_an_analyser():
    assert isinstance(IntrusionDetector(W, H), Analyser)


@pytest.mark.parametrize(
    ("night", "seed", "weather"), [(True, 4, "clear"), (True, 9, "rain"), (False, 5, "fog")]
)
def test_person_walking_through_the_zone_is_reported_after_the_debounce(night, seed, weather):
    log = run(IntrusionDetector(W, H, [box_zone(ZONE)]), clip(night, seed, weather=weather))
    live = [(t, f) for t, f in log if f.detail["present"]]
    assert live, "a person crossing the zone for 10 s must be reported"
    assert START + IntrusionParams().on_s - 1e-6 <= live[0][0] <= START + 3.0
    assert live[-1][0] < END + 0.5  # nobody is seen once the figure is gone
    assert all(t < END + IntrusionParams().off_s + 0.5 for t, _ in log)  # and the debounce clears
    for _, f in log:
        assert f.kind == "intrusion" and f.zone == "site"
        assert overlaps(f.bbox, WALK) and 0.5 <= f.confidence <= 1.0
    # Most of the walk is reported, not just a flicker of it.
    assert len(live) >= 0.7 * (END - START - 1.0) * FPS


def test_zone_elsewhere_gives_nothing():
    far = (20, H - 30, 280, 25)  # the road strip at the bottom: the person walks above it
    assert run(IntrusionDetector(W, H, [box_zone(far)]), clip()) == []


def test_quiet_clips_with_traffic_rain_and_shake_give_nothing():
    road = scene_layout("construction", W, H).road
    zone = box_zone((0, road[0] - 4, W, road[1] - road[0] + 4), "road")
    for spec in (
        clip(walk=None, traffic=30.0, weather="rain", shake_px=1.0),
        clip(False, 2, walk=None, traffic=30.0),
    ):
        assert run(IntrusionDetector(W, H, [zone]), spec) == []  # vehicles are not upright figures


def test_dark_only_reports_at_night_only():
    params = IntrusionParams(dark_only=True)
    assert run(IntrusionDetector(W, H, [box_zone(ZONE)], params), clip(night=False, seed=5)) == []
    assert run(IntrusionDetector(W, H, [box_zone(ZONE)], params), clip(night=True, seed=4))


def test_without_zones_the_whole_frame_is_watched():
    log = run(IntrusionDetector(W, H), clip())
    assert log and {f.zone for _, f in log} == {None}


def test_upright_square_on_synthetic_frames():
    """A 12x36 px figure sliding over a textured background; a 40x12 bar (a vehicle shape) is
    ignored."""
    bg = scene(3, W, H)
    rng = np.random.default_rng(3)
    for size, expect in (((12, 36), True), ((40, 12), False)):
        det = IntrusionDetector(W, H, [box_zone((0, 60, W, 100))], IntrusionParams(threshold=20))
        seen = []
        for i in range(40):
            frame = noisy(bg, rng)
            if i >= 15:
                x = 40 + 6 * (i - 15)
                cv2.rectangle(frame, (x, 140 - size[1]), (x + size[0], 140), (20, 20, 240), -1)
            seen += [f for f in det.update(frame, i / FPS) if f.detail["present"]]
        assert bool(seen) is expect, size


def test_person_like_shape_rules():
    p = IntrusionParams()
    assert person_like(Blob(0, 0, 8, 20, 120), 180, p)
    assert not person_like(Blob(0, 0, 30, 12, 300), 180, p)  # wide: a vehicle
    assert not person_like(Blob(0, 0, 2, 5, 8), 180, p)  # too small
    assert not person_like(Blob(0, 0, 40, 100, 3000), 180, p)  # too tall for the frame
    assert not person_like(Blob(0, 0, 8, 20, 20), 180, p)  # a sparse outline


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"min_height": 0.4, "max_height": 0.3},
        {"min_aspect": 3.0, "max_aspect": 2.0},
        {"min_fill": 1.5},
        {"on_s": -1},
        {"dark_luma_max": 300},
        {"bg_tau_s": 10.0, "fg_tau_s": 5.0},
        {"blur_ksize": 4},
        {"global_change": 0},
    ],
)
def test_params_are_validated(kwargs):
    with pytest.raises(ConfigError):
        IntrusionParams(**kwargs)


def test_bad_arguments_and_frames_raise():
    with pytest.raises(ConfigError):
        IntrusionDetector(0, H)
    with pytest.raises(ConfigError):
        IntrusionDetector(W, H, [box_zone(WALK), box_zone(WALK)])
    det = IntrusionDetector(W, H)
    with pytest.raises(ConfigError):
        det.update(np.zeros((H, W), np.uint8), 0.0)
    with pytest.raises(ConfigError):
        det.update(np.zeros((H + 2, W, 3), np.uint8), 0.0)
