"""The cross-analyser reasoning stage (video/reasoning.py): pure rules, then wired into the camera
pipeline and the camera YAML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from farsight.errors import ConfigError
from tests.video import scene
from video.analysers.base import Finding
from video.camera_config import CameraConfig, parse_camera_config
from video.pipeline import CameraPipeline
from video.reasoning import ReasoningParams, ReasoningState, reason
from video.sources import Frame

P = ReasoningParams()  # settle 1 s, re-learn after 3 s, hold-off 5 s

SMOKE = Finding("smoke", 0.8, (10, 10, 40, 40))
MOTION = Finding("motion", 0.7, (5, 5, 10, 10))
CROSSING = Finding("vehicle_crossing", 1.0, (1, 1, 5, 5), detail={"direction": "forward"})
EXPOSURE = Finding("exposure_change", 0.6)
COVERED = Finding("camera_covered", 0.9, detail={"state": "active"})


def run(frames: list[tuple[float, list[Finding], set[str]]], params: ReasoningParams = P):
    """Feed (t, findings, conditions) frames; return the kinds passed per frame."""
    state = ReasoningState()
    out = []
    for t, findings, conditions in frames:
        passed, state = reason(findings, frozenset(conditions), t, state, params)
        out.append((t, [f.kind for f in passed]))
    return out, state


def test_without_view_conditions_everything_passes():
    out, state = run([(t / 5, [SMOKE, MOTION, CROSSING], set()) for t in range(20)])
    assert all(kinds == ["smoke", "motion", "vehicle_crossing"] for _, kinds in out)
    assert not state.unsettled


def test_scene_findings_are_held_back_from_settle_until_hold_off_after_the_change():
    frames = [
        (t / 5, [SMOKE, MOTION], {"camera_defocused"} if 2.0 <= t / 5 < 6.0 else set())
        for t in range(80)
    ]
    out, _ = run(frames)
    passed = {t for t, kinds in out if kinds}
    # Condition from 2.0 s, counted from 3.0 s (settle); last held at 5.8 s, so the hold-off
    # runs to 10.8 s.
    assert max(t for t in passed if t < 5) == pytest.approx(2.8)
    assert min(t for t in passed if t > 5) == pytest.approx(11.0)


def test_a_few_odd_frames_do_not_unsettle_the_view():
    frames = [(t / 5, [MOTION], {"camera_moved"} if t % 6 in (1, 2) else set()) for t in range(40)]
    out, _ = run(frames)
    assert all(kinds == ["motion"] for _, kinds in out)


def test_crossings_are_kept_but_marked_unreliable():
    state = ReasoningState()
    for t in range(6):
        passed, state = reason([CROSSING], frozenset({"exposure_change"}), t / 5, state, P)
    assert [f.kind for f in passed] == ["vehicle_crossing"]
    assert passed[0].detail == {"direction": "forward", "unreliable": "exposure_change"}
    assert CROSSING.detail == {"direction": "forward"}  # the analyser's finding is untouched


def test_a_global_change_that_starts_with_tamper_is_its_echo():
    # Covering the lens is also an exposure step: covered is what is reported, the exposure
    # change is dropped until it ends, even after the cover has gone.
    frames = []
    for i in range(100):
        t = i / 5
        findings, cond = [], set()
        if 2 <= t < 10:
            cond.add("camera_covered")
            findings.append(COVERED)
        if 2.4 <= t < 14:
            cond.add("exposure_change")
            findings.append(EXPOSURE)
        frames.append((t, findings, cond))
    out, _ = run(frames)
    assert not any("exposure_change" in kinds for _, kinds in out)
    assert any("camera_covered" in kinds for _, kinds in out)


def test_a_global_change_on_its_own_is_reported_and_holds_scene_findings_back_at_once():
    out, state = run([(t / 5, [EXPOSURE, SMOKE], {"exposure_change"}) for t in range(10)])
    assert all(kinds == ["exposure_change"] for _, kinds in out)
    assert state.cause == "exposure_change"
    _, state = reason([], frozenset({"exposure_change", "camera_moved"}), 2.0, state, P)
    _, state = reason([], frozenset({"exposure_change", "camera_moved"}), 3.0, state, P)
    assert state.cause == "camera_moved"


def _relearn_flags(held_frames: int, frames: int) -> list[bool]:
    state = ReasoningState()
    flags = []
    for i in range(frames):
        cond = frozenset({"focus_drift"} if i < held_frames else ())
        _, state = reason([], cond, i / 5, state, P)
        flags.append(state.relearn)
    return flags


def test_relearn_is_set_on_the_frame_a_long_change_ends():
    # Held 0-5.8 s, counted at once (a global change): more than the 3 s that spoil backgrounds.
    assert _relearn_flags(30, 32) == [False] * 30 + [True, False]
    # Held 0-2.8 s: a shorter change has not spoilt them.
    assert not any(_relearn_flags(14, 20))


def test_disabled_reasoning_passes_everything():
    off = ReasoningParams(enabled=False)
    out, _ = run([(t / 5, [SMOKE], {"camera_covered"}) for t in range(20)], off)
    assert all(kinds == ["smoke"] for _, kinds in out)


def test_camera_yaml_reasoning_section_is_validated_with_key_paths():
    cfg = parse_camera_config({"reasoning": {"hold_off_s": 12, "settle_s": 0}})
    assert cfg.reasoning == ReasoningParams(hold_off_s=12, settle_s=0)
    with pytest.raises(ConfigError) as exc:
        parse_camera_config({"reasoning": {"hold_off_s": -1, "extra": 1}})
    paths = {p.path for p in exc.value.problems}
    assert {"reasoning.hold_off_s", "reasoning.extra"} <= paths
    assert CameraConfig().reasoning.enabled


def test_pipeline_holds_motion_back_while_the_lens_is_covered_and_reports_the_cover():
    # Motion in the scene, then the lens is covered (nearly black) at 8 s for 20 s: the pipeline
    # reports motion before, camera_covered during, and no motion from the cover on.
    rng = np.random.default_rng(3)
    bg = scene(4)
    cfg = CameraConfig(camera="c1", site="s1", analysers={"motion": {}, "tamper": {}})
    pipeline = CameraPipeline(cfg)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    kinds_at: list[tuple[float, set[str]]] = []
    for i in range(5 * 32):
        t = i / 5
        img = bg.copy()
        if t < 8:
            x = 40 + int(12 * t * 5) % 500
            img[150:210, x : x + 40] = (20, 200, 240)  # a walker
        else:
            img = (6 + 0.03 * img).astype(np.uint8) if t < 28 else img
        img = np.clip(img.astype(np.int16) + rng.integers(-2, 3, img.shape), 0, 255)
        obs = pipeline.process(Frame(img.astype(np.uint8), start + timedelta(seconds=t), t, i))
        kinds_at.append((t, {o.detection.kind for o in obs}))
    assert any("motion" in k for t, k in kinds_at if t < 8)
    assert any("camera_covered" in k for t, k in kinds_at)
    assert not any("motion" in k for t, k in kinds_at if t >= 8.6)
