"""TamperDetector on seeded synthetic scenes: covered, defocused, moved, and quiet when static."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from farsight.errors import ConfigError
from tests.video import W, noisy, scene
from video.analysers import Analyser, Debounce, TamperDetector, TamperParams
from video.analysers.tamper import COVERED, DEFOCUSED, MOVED

FPS = 5.0
PARAMS = TamperParams(on_s=10.0, off_s=5.0, warmup_s=5.0)


class Clip:
    """Feeds frames at FPS and records (ts, finding) pairs."""

    def __init__(self, seed: int = 0) -> None:
        self.det = TamperDetector(PARAMS)
        self.rng = np.random.default_rng(seed)
        self.i = 0
        self.log: list[tuple[float, object]] = []

    def feed(self, img: np.ndarray, seconds: float) -> list:
        out = []
        for _ in range(round(seconds * FPS)):
            ts = self.i / FPS
            self.i += 1
            for f in self.det.update(noisy(img, self.rng), ts):
                self.log.append((ts, f))
                out.append(f)
        return out

    @property
    def now(self) -> float:
        return self.i / FPS


def test_is_an_analyser():
    assert isinstance(TamperDetector(), Analyser)


def test_static_scene_with_noise_fires_nothing_over_300_frames():
    clip = Clip(seed=1)
    assert clip.feed(scene(1), 300 / FPS) == []
    assert clip.det.active == frozenset()


def test_occlusion_fires_after_debounce_not_before_and_clears():
    bg = scene(2)
    black = np.full_like(bg, 6)
    clip = Clip(seed=2)
    assert clip.feed(bg, 20) == []
    start = clip.now
    assert clip.feed(black, 9.4) == []  # still inside the 10 s debounce
    fired = clip.feed(black, 2)
    assert [f.kind for f in fired] == [COVERED]
    assert (
        fired[0].detail["state"] == "active"
        and fired[0].bbox is None
        and 0.5 <= fired[0].confidence <= 1
    )
    assert clip.log[-1][0] - start == pytest.approx(10.0, abs=0.3)
    assert clip.feed(black, 20) == []  # fires once, not every frame
    back = clip.now
    cleared = clip.feed(bg, 8)
    assert [(f.kind, f.detail["state"]) for f in cleared] == [(COVERED, "cleared")]
    assert clip.log[-1][0] - back == pytest.approx(5.0, abs=0.3)
    assert clip.det.active == frozenset()


def test_bright_cover_fires_too():
    bg = scene(3)
    clip = Clip(seed=3)
    clip.feed(bg, 10)
    fired = clip.feed(np.full_like(bg, 245), 12)
    assert [f.kind for f in fired] == [COVERED]


def test_defocus_fires_after_debounce():
    bg = scene(4)
    blurred = cv2.GaussianBlur(bg, (0, 0), 5)
    clip = Clip(seed=4)
    assert clip.feed(bg, 20) == []
    start = clip.now
    assert clip.feed(blurred, 9.4) == []
    fired = clip.feed(blurred, 2)
    assert [f.kind for f in fired] == [DEFOCUSED]
    assert fired[0].detail["focus_ratio"] < PARAMS.defocus_ratio
    assert clip.log[-1][0] - start == pytest.approx(10.0, abs=0.3)
    assert clip.feed(blurred, 30) == []  # baseline does not learn the blur
    cleared = clip.feed(bg, 8)
    assert [(f.kind, f.detail["state"]) for f in cleared] == [(DEFOCUSED, "cleared")]


def test_translation_of_40_px_fires_camera_moved():
    bg = scene(5, w=W + 80)
    view = bg[:, :W].copy()
    shifted = bg[:, 40 : 40 + W].copy()  # camera panned 40 px
    clip = Clip(seed=5)
    assert clip.feed(view, 20) == []
    assert clip.feed(shifted, 9.4) == []
    fired = clip.feed(shifted, 2)
    assert [f.kind for f in fired] == [MOVED]
    assert abs(fired[0].detail["dx_px"]) == pytest.approx(40, abs=3)
    assert clip.feed(shifted, 30) == []  # reference is not learned while moved
    cleared = clip.feed(view, 8)
    assert [(f.kind, f.detail["state"]) for f in cleared] == [(MOVED, "cleared")]


def test_different_view_fires_camera_moved():
    clip = Clip(seed=6)
    clip.feed(scene(6), 10)
    fired = clip.feed(scene(7), 12)
    assert MOVED in [f.kind for f in fired]


def test_debounce_hysteresis():
    d = Debounce(on_s=2, off_s=1)
    assert [
        d.update(c, t) for c, t in [(True, 0), (True, 1.9), (False, 2.0), (True, 2.1), (True, 4.1)]
    ] == [None, None, None, None, "on"]
    assert [d.update(c, t) for c, t in [(False, 5), (True, 5.5), (False, 6), (False, 7)]] == [
        None,
        None,
        None,
        "off",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"on_s": -1},
        {"defocus_ratio": 0},
        {"defocus_ratio": 1},
        {"moved_shift_px": 0},
        {"covered_dark_max": 220},
        {"baseline_tau_s": 0},
        {"analysis_height": 8},
    ],
)
def test_params_are_validated(kwargs):
    with pytest.raises(ConfigError):
        TamperParams(**kwargs)


def test_frame_size_change_raises():
    det = TamperDetector()
    det.update(scene(8), 0.0)
    with pytest.raises(ConfigError):
        det.update(scene(8, w=W + 2), 0.2)


def test_large_moving_object_is_not_tampering():
    bg = scene(9)
    rng = np.random.default_rng(9)
    det = TamperDetector(PARAMS)
    for i in range(300):
        frame = noisy(bg, rng)
        x = (i * 6) % W
        cv2.rectangle(frame, (x, 100), (x + 120, 300), (20, 200, 20), -1)
        assert det.update(frame, i / FPS) == []
