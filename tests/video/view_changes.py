"""Global-change hard negatives rendered on real photographs: deterministic clip builders.

Each case is a still real photograph (tests/data/real_footage.yaml) seen by a fixed camera,
with seeded sensor noise, in which the *camera* changes and nothing happens in the scene: a
defocus ramp, an exposure jump, a white-balance jump, a day to infrared switch, a slow focus
drift. Smoke, fire and motion must report nothing on any of them; ``expect`` lists the view
findings (tamper or global change) of which at least one should be reported.

:func:`frames` renders a case as ``(offset_s, BGR image)`` pairs; the tests feed them to
:class:`video.pipeline.CameraPipeline`, the benchmark to the analysers directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.real_footage import photo_path

WIDTH = 640
NOISE_SIGMA = 2.0
NOISE_POOL = 16


@dataclass(frozen=True, slots=True)
class HardNegative:
    """One camera change on one real background.

    ``effect(image, t)`` returns the frame the camera delivers at ``t`` from the noiseless
    background; ``expect`` holds the view finding kinds that should be reported.
    """

    name: str
    photo: str
    seconds: float
    effect: Callable[[np.ndarray, float], np.ndarray]
    expect: frozenset[str]
    what: str


def _ramp(t: float, start: float, length: float) -> float:
    return float(np.clip((t - start) / length, 0.0, 1.0)) if length > 0 else float(t >= start)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return img if sigma < 0.05 else cv2.GaussianBlur(img, (0, 0), sigma)


def defocus_ramp(img: np.ndarray, t: float) -> np.ndarray:
    """Sharp to strongly blurred over 10-14 s (sigma 1/80 of the width, the simulator's
    defocus), blurred until 32 s, sharp again after."""
    sigma = WIDTH / 80.0 * _ramp(t, 10.0, 4.0) * (t < 32.0)
    return _blur(img, sigma)


def exposure_jump(img: np.ndarray, t: float) -> np.ndarray:
    """Auto-exposure steps up by 1.6x at 15 s (clipping the highlights), back down at 30 s."""
    gain = 1.6 if 15.0 <= t < 30.0 else 1.0
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def white_balance_jump(img: np.ndarray, t: float) -> np.ndarray:
    """The white balance flips from daylight to a tungsten preset at 15 s: blue up 30 %, red
    down 25 %."""
    if t < 15.0:
        return img
    gains = np.array([1.3, 1.0, 0.75], np.float32)
    return np.clip(img.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def day_to_infrared(img: np.ndarray, t: float) -> np.ndarray:
    """Dusk (the view at 60 % of its daylight), then at 15 s the camera switches to infrared:
    grey, brighter under its own illuminator, foliage pale."""
    f = img.astype(np.float32) * 0.6
    if t < 15.0:
        return np.clip(f, 0, 255).astype(np.uint8)
    b, g, r = cv2.split(f)
    ir = 0.2 * b + 0.5 * g + 0.3 * r  # near infrared: vegetation (green) bright
    ir = np.clip(ir * 1.5 + 10.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR)


def focus_drift(img: np.ndarray, t: float) -> np.ndarray:
    """The focus drifts from sharp at 10 s to a blur of sigma 1.5 px (at 640 px wide) at 70 s."""
    return _blur(img, 1.5 * _ramp(t, 10.0, 60.0))


CASES: dict[str, HardNegative] = {
    c.name: c
    for c in (
        HardNegative(
            "defocus_ramp", "building", 45.0, defocus_ramp,
            frozenset({"camera_defocused", "focus_drift"}),
            "the lens goes out of focus over 4 s above a lawn and an office block, and back",
        ),
        HardNegative(
            "exposure_jump", "leuven", 40.0, exposure_jump, frozenset({"exposure_change"}),
            "auto-exposure steps up and back down over a street under a grey sky",
        ),
        HardNegative(
            "white_balance_jump", "home", 35.0, white_balance_jump, frozenset({"colour_change"}),
            "the white balance flips to tungsten on a yellow building against a blue sky",
        ),
        HardNegative(
            "day_to_infrared", "aero", 40.0, day_to_infrared, frozenset({"infrared_switch"}),
            "dusk over a town, then the camera switches to its infrared mode",
        ),
        HardNegative(
            "focus_drift", "building", 80.0, focus_drift, frozenset({"focus_drift"}),
            "the focus drifts slowly over a minute as the lens warms",
        ),
    )
}  # fmt: skip


def background(photo: str, root: Path | None = None) -> np.ndarray:
    """The photograph ``photo`` as a BGR image ``WIDTH`` pixels wide (even height)."""
    img = cv2.imread(str(photo_path(photo, root)))
    if img is None:
        raise OSError(f"cannot decode photograph {photo}")
    h = 2 * round(img.shape[0] * WIDTH / img.shape[1] / 2)
    return np.asarray(cv2.resize(img, (WIDTH, h), interpolation=cv2.INTER_AREA))


def frames(
    case: HardNegative, fps: float = 5.0, seed: int = 0, root: Path | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Render ``case`` at ``fps``: ``(offset_s, BGR uint8 image)`` pairs.

    Deterministic: the sensor noise (Gaussian, ``NOISE_SIGMA`` gray levels) comes from a pool
    drawn with ``seed`` and is picked per frame by a generator with the same seed.
    """
    img = background(case.photo, root)
    rng = np.random.default_rng(seed)
    pool = np.round(rng.standard_normal((NOISE_POOL, *img.shape), dtype=np.float32) * NOISE_SIGMA)
    pool16 = pool.astype(np.int16)
    for i in range(round(case.seconds * fps)):
        t = i / fps
        clean = case.effect(img, t)
        noise = pool16[int(rng.integers(0, NOISE_POOL))]
        yield t, np.clip(clean.astype(np.int16) + noise, 0, 255).astype(np.uint8)
