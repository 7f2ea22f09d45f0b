"""BlackSmokeDetector on simulated stack plumes: Ringelmann grade within one of the truth, none
for clean air."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from farsight.errors import ConfigError
from simulators.camera import ClipSpec, EventSpec, render_clip, scene_layout
from video.analysers import Analyser, BlackSmokeDetector, BlackSmokeParams, ringelmann_grade

W, H, FPS = 320, 180, 5.0
START, END, SECONDS = 5.0, 15.0, 18.0
SX, SY = scene_layout("stack", W, H).stack_top
PLUME = (SX - 30, SY - 50, 60, 50)  # bottom centre on the stack mouth, as the simulator expects
SKY = (SX - 100, SY - 50, 50, 50)  # clear sky left of the plume, over the same rows


def run(spec: ClipSpec, params: BlackSmokeParams | None = None):
    det = BlackSmokeDetector(PLUME, SKY, params, zone="stack-1")
    return [(t, f) for t, frame in render_clip(spec) for f in det.update(frame, t)]


def plume_clip(grade: int, seed: int, shake: float = 0.0, night: bool = False) -> ClipSpec:
    return ClipSpec("stack", W, H, FPS, SECONDS, seed, night, 2.0, shake,
                    (EventSpec("black_smoke", START, END, PLUME, grade=grade),))  # fmt: skip


def test_is_an_analyser():
    assert isinstance(BlackSmokeDetector(PLUME, SKY), Analyser)


@pytest.mark.parametrize(
    "opacity,grade", [(0.0, 0), (0.09, 0), (0.11, 1), (0.5, 2), (0.62, 3), (0.95, 5), (1.0, 5)]
)
def test_ringelmann_grade_rounds_and_clamps(opacity, grade):
    assert ringelmann_grade(opacity) == grade


@pytest.mark.parametrize(
    "make",
    [lambda: BlackSmokeParams(min_grade=0), lambda: BlackSmokeParams(min_grade=6),
     lambda: BlackSmokeParams(core_percentile=20.0), lambda: BlackSmokeParams(window_s=-1.0),
     lambda: BlackSmokeDetector((0, 0, 0, 10), SKY),
     lambda: BlackSmokeDetector(PLUME, (-1, 0, 5, 5))],
)  # fmt: skip
def test_bad_config_raises(make):
    with pytest.raises(ConfigError):
        make()


def test_box_outside_the_frame_raises_on_first_frame():
    det = BlackSmokeDetector((300, 0, 40, 40), SKY)
    with pytest.raises(ConfigError):
        det.update(np.zeros((H, W, 3), np.uint8), 0.0)


@pytest.mark.parametrize("grade", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed,shake", [(1, 0.0), (2, 1.5), (3, 0.0)])
def test_grade_within_one_of_truth(grade, seed, shake):
    log = run(plume_clip(grade, seed, shake))
    assert log, "plume not reported"
    assert all(f.kind == "black_smoke" and f.zone == "stack-1" and f.bbox == PLUME for _, f in log)
    times = [t for t, _ in log]
    assert START <= times[0] <= START + 3.0
    assert times[-1] < END + 3.0  # half the median window plus off_s after the plume stops
    inside = [f.detail["ringelmann"] for t, f in log if t < END]
    assert len(inside) >= 0.95 * (END - times[0]) * FPS  # on every frame once reported
    assert all(abs(g - grade) <= 1 for g in inside), collections.Counter(inside)
    assert collections.Counter(inside).most_common(1)[0][0] == grade


@pytest.mark.parametrize("seed,shake", [(1, 0.0), (2, 1.5), (3, 0.0)])
def test_grade_zero_and_clean_air_report_nothing(seed, shake):
    assert run(plume_clip(0, seed, shake)) == []
    clean = ClipSpec("stack", W, H, FPS, SECONDS, seed, False, 3.0, shake)
    assert run(clean) == []


def test_min_grade_filters_light_plumes():
    assert run(plume_clip(2, 1), BlackSmokeParams(min_grade=3)) == []
    log = run(plume_clip(4, 1), BlackSmokeParams(min_grade=3))
    assert {f.detail["ringelmann"] for _, f in log if f.detail["present"]} == {4}
    # The off_s tail reports the falling grade, flagged as no longer present.
    assert all(t >= END for t, f in log if not f.detail["present"])


def test_night_sky_gives_no_measurement():
    # The Ringelmann method needs a lit sky; at night the reference is below min_sky_luma.
    det = BlackSmokeDetector(PLUME, SKY)
    for t, frame in render_clip(plume_clip(5, 1, night=True)):
        assert det.update(frame, t) == []
        assert det.last_grade is None
