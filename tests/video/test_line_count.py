"""LineCounter: vehicles counted per direction across a line, against simulator truth and on
synthetic frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from farsight.errors import ConfigError
from simulators.camera import ClipSpec, line_crossings, render_clip, scene_layout, truth_for
from tests.video import noisy, scene
from video.analysers.base import Analyser, Finding
from video.analysers.line_count import LineCounter, LineCountParams, check_line, crossing_direction

W, H, FPS = 320, 180, 5.0
Y0, Y1 = scene_layout("highway", W, H).road
LINE = ((W // 2, Y0), (W // 2, Y1))  # drawn top to bottom: forward is left to right


def run(counter: LineCounter, frames) -> list[tuple[float, Finding]]:
    return [(t, f) for t, frame in frames for f in counter.update(frame, t)]


def test_is_an_analyser():
    assert isinstance(LineCounter(W, H, LINE), Analyser)


@pytest.mark.parametrize(
    ("seed", "night", "weather"), [(2, False, "clear"), (5, True, "rain"), (8, False, "fog")]
)
def test_counts_match_the_simulator_truth(seed, night, weather):
    spec = ClipSpec(
        "highway", W, H, FPS, 40.0, seed=seed, night=night, weather=weather, traffic=30.0
    )
    truth = line_crossings(truth_for(spec), LINE)
    assert len(truth) >= 10 and {c.direction for c in truth} == {"forward", "backward"}
    log = run(LineCounter(W, H, LINE, name="road"), render_clip(spec))
    counted = {d: sum(f.detail["direction"] == d for _, f in log) for d in ("forward", "backward")}
    expected = {d: sum(c.direction == d for c in truth) for d in ("forward", "backward")}
    for d, n in counted.items():
        assert abs(n - expected[d]) <= max(1, round(0.1 * expected[d])), (
            d,
            counted,
            expected,
        )
    # Each count is a real crossing: same direction, within a second of the vehicle's centre
    # crossing.
    for t, f in log:
        assert any(c.direction == f.detail["direction"] and abs(c.t - t) <= 1.0 for c in truth), (
            t,
            f.detail,
        )
        assert f.kind == "vehicle_crossing" and f.zone == "road" and 0.5 <= f.confidence <= 1.0
    # Running totals count up by one per finding.
    last = log[-1][1].detail
    assert last["count_forward"] + last["count_backward"] == len(log)


def moving_box(direction: int, size=(30, 14), stop_at: int | None = None, seed: int = 1):
    """Frames of a box sliding across a textured background, 8 px per frame, left to right or
    back."""
    bg = scene(seed, W, H)
    rng = np.random.default_rng(seed)
    for i in range(60):
        frame = noisy(bg, rng)
        if i >= 15:
            step = 8 * (i - 15)
            x = 10 + step if direction > 0 else W - 10 - size[0] - step
            if stop_at is not None:
                x = min(x, stop_at) if direction > 0 else max(x, stop_at)
            if -size[0] < x < W:
                cv2.rectangle(frame, (x, 100), (x + size[0], 100 + size[1]), (30, 30, 220), -1)
        yield i / FPS, frame


@pytest.mark.parametrize(("direction", "expected"), [(1, "forward"), (-1, "backward")])
def test_one_box_is_counted_once_in_its_direction(direction, expected):
    counter = LineCounter(W, H, ((160, 60), (160, 160)))
    log = run(counter, moving_box(direction))
    assert [f.detail["direction"] for _, f in log] == [expected]
    assert counter.counts[expected] == 1 and sum(counter.counts.values()) == 1
    assert log[0][1].bbox[0] < 160 + 40 and log[0][1].bbox[0] + log[0][1].bbox[2] > 160 - 40


def test_box_stopping_before_the_line_or_crossing_beside_it_is_not_counted():
    assert run(LineCounter(W, H, ((160, 60), (160, 160))), moving_box(1, stop_at=120)) == []
    assert (
        run(LineCounter(W, H, ((160, 10), (160, 60))), moving_box(1)) == []
    )  # passes below the segment


def test_upright_blob_is_not_a_vehicle():
    assert run(LineCounter(W, H, ((160, 60), (160, 160))), moving_box(1, size=(10, 40))) == []


def test_crossing_direction_of_segments():
    a, b = (10.0, 0.0), (10.0, 20.0)
    assert crossing_direction((5, 10), (15, 10), a, b) == 1
    assert crossing_direction((15, 10), (5, 10), a, b) == -1
    assert crossing_direction((5, 10), (9, 10), a, b) == 0  # stops short
    assert crossing_direction((5, 30), (15, 30), a, b) == 0  # beyond the segment's end
    assert crossing_direction((5, 10), (10, 10), a, b) == 0  # touching is not crossing


@pytest.mark.parametrize(
    "line", [((0, 0), (0, 0)), ((0, 0),), "ab", ((1, 2), (3, float("nan"))), ((-1, 0), (5, 5))]
)
def test_bad_lines_raise(line):
    with pytest.raises(ConfigError):
        check_line(line)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"min_area": 0.3, "max_area": 0.2},
        {"max_aspect": 0.0},
        {"max_speed": 0},
        {"max_gap_s": -1},
        {"bg_tau_s": 5.0, "fg_tau_s": 1.0},
        {"blur_ksize": 2},
        {"global_change": 2.0},
    ],
)
def test_params_are_validated(kwargs):
    with pytest.raises(ConfigError):
        LineCountParams(**kwargs)


def test_bad_arguments_and_frames_raise():
    with pytest.raises(ConfigError):
        LineCounter(W, H, ((0, 0), (W + 10, 0)))  # leaves the frame
    with pytest.raises(ConfigError):
        LineCounter(-1, H, LINE)
    counter = LineCounter(W, H, LINE)
    with pytest.raises(ConfigError):
        counter.update(np.zeros((H, W, 3), np.float32), 0.0)
