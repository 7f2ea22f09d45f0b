"""The global-change analyser (video/analysers/global_change.py) on seeded synthetic scenes: what
it reports, and what it must not take for a change of the whole view."""

from __future__ import annotations

import numpy as np
import pytest

from farsight.errors import ConfigError
from tests.video import noisy, scene
from video.analysers.global_change import GlobalChangeDetector, GlobalChangeParams

FPS = 5.0


def _run(render, seconds: float, params: GlobalChangeParams | None = None, seed: int = 0):
    det = GlobalChangeDetector(params)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(int(seconds * FPS)):
        t = i / FPS
        findings = det.update(noisy(render(t), rng), t)
        out.append((t, {f.kind for f in findings}, det.view_conditions()))
    return out


def test_an_exposure_step_is_reported_then_learned():
    bg = scene(1)

    def render(t: float) -> np.ndarray:
        return np.clip(bg * (1.5 if t >= 10 else 1.0), 0, 255).astype(np.uint8)

    out = _run(render, 40)
    reported = [t for t, kinds, _ in out if "exposure_change" in kinds]
    assert reported and 10.8 <= reported[0] <= 11.6  # on_s 1 s after the step
    assert max(reported) < 30  # the reference has learned the new exposure
    assert not any(kinds - {"exposure_change"} for _, kinds, _ in out)
    assert any("exposure_change" in cond for t, _, cond in out if 10 <= t < 10.5)


def test_a_plume_over_part_of_the_view_is_no_global_change():
    # A grey plume over a fifth of the frame brightens that part only: the tiles disagree.
    bg = scene(2)

    def render(t: float) -> np.ndarray:
        img = bg.copy()
        if t >= 8:
            grow = min(1.0, (t - 8) / 4)
            y1 = int(360 - 200 * grow)
            img[y1:360, 200:360] = (0.3 * img[y1:360, 200:360] + 0.7 * 190).astype(np.uint8)
        return img

    out = _run(render, 30)
    assert all(not kinds and not cond for _, kinds, cond in out)


def test_colour_to_grey_is_an_infrared_switch_and_nothing_else():
    bg = scene(3)
    grey = np.repeat(bg.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    out = _run(lambda t: grey if t >= 10 else bg, 30)
    kinds = set().union(*(k for _, k, _ in out))
    assert kinds == {"infrared_switch"}


def test_params_are_validated_naming_the_field():
    with pytest.raises(ConfigError, match="exposure_jump"):
        GlobalChangeParams(exposure_jump=0)
    with pytest.raises(ConfigError, match="grey_spread"):
        GlobalChangeParams(grey_spread=10, colour_spread=5)
