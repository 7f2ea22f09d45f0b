"""Stack black smoke: Ringelmann grade from the darkness of the plume against the sky.

The Ringelmann method (GB/T 5468-1991, HJ/T 398-2007; ASTM D3211 for the chart) grades a
plume 0 to 5 by how much of the background light it blocks, 20 % per grade. With a configured
*plume* box just above the stack mouth and a *sky* reference box of clear sky beside it, the
plume's opacity is ``1 - plume_luma / sky_luma`` and::

    grade = clamp(round(5 * opacity), 0, 5)

Two choices make this robust on a real sky:

* The reference is taken per row where the sky box covers the plume's rows (skies brighten
  towards the horizon, often by 30 % over the height of a plume box), else its mean.
* The plume box is larger than the plume core, so the opacity of a frame is a high percentile
  (``core_percentile``) of the per-pixel opacity, not the mean; then a running median over
  ``window_s`` seconds is rounded, so one gust or noisy frame does not move the grade while
  the start and end of an episode still show within half a window (a mean would smear them).

Findings: one ``kind="black_smoke"`` finding with ``detail["ringelmann"]`` on every update while
the smoothed grade is at least ``min_grade``, debounced by ``on_s`` / ``off_s``: while the
debounce waits out ``off_s`` the findings carry the current, lower grade and
``detail["present"] = False``, as smoke and fire findings do. A sky darker
than ``min_sky_luma`` (night, heavy overcast) gives no measurement: the method needs daylight.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import BBox, Debounce, Finding, check_bgr
from video.analysers.smoke import _check_finite

BLACK_SMOKE = "black_smoke"


@dataclass(frozen=True, slots=True)
class BlackSmokeParams:
    """Tuning of :class:`BlackSmokeDetector`.

    Parameters
    ----------
    window_s : float, default 3.0
        Window of the running median of the per-frame opacity, seconds (0..600).
    min_grade : int, default 1
        Smallest Ringelmann grade reported (1..5); grade 0 is clean air and never reported.
    core_percentile : float, default 99.0
        Percentile of the per-pixel opacity in the plume box taken as the plume's (50..100).
    min_sky_luma : float, default 40.0
        Mean sky luma under which nothing is measured (0..255).
    on_s, off_s : float, default 1.0, 1.0
        Debounce of the "grade >= min_grade" condition (0..600).
    """

    window_s: float = 3.0
    min_grade: int = 1
    core_percentile: float = 99.0
    min_sky_luma: float = 40.0
    on_s: float = 1.0
    off_s: float = 1.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        _check_finite(self, ("window_s", "on_s", "off_s"), 0, 600, problems)
        if not (isinstance(self.min_grade, int) and 1 <= self.min_grade <= 5):
            problems.append(f"min_grade must be an int in 1..5, got {self.min_grade!r}")
        _check_finite(self, ("core_percentile",), 50, 100, problems)
        _check_finite(self, ("min_sky_luma",), 0, 255, problems)
        if problems:
            raise ConfigError("; ".join(problems), source="BlackSmokeParams")


def ringelmann_grade(opacity: float) -> int:
    """Ringelmann grade of an opacity in [0, 1]: ``clamp(round(5 * opacity), 0, 5)``."""
    return int(min(5, max(0, round(5.0 * opacity))))


def _check_box(box: BBox, what: str) -> BBox:
    try:
        x, y, w, h = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be (x, y, w, h) ints, got {box!r}") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ConfigError(f"{what} {box!r} needs x, y >= 0 and w, h > 0")
    return (x, y, w, h)


def plume_opacity(
    luma: np.ndarray, plume: BBox, sky: BBox, percentile: float
) -> tuple[float, float]:
    """Opacity of the plume box against the sky box in one grey image.

    Parameters
    ----------
    luma : numpy.ndarray
        2-D ``uint8`` grey image containing both boxes.
    plume, sky : tuple of int
        Boxes ``(x, y, w, h)`` in pixels of ``luma``.
    percentile : float
        Percentile of the per-pixel opacity returned as the plume's opacity.

    Returns
    -------
    opacity : float
        In ``[0, 1]``.
    sky_luma : float
        Mean luma of the sky box.
    """
    px, py, pw, ph = plume
    sx, sy, sw, sh = sky
    plume_px = luma[py : py + ph, px : px + pw].astype(np.float32)
    sky_px = luma[sy : sy + sh, sx : sx + sw].astype(np.float32)
    sky_mean = float(sky_px.mean())
    ref = np.full(ph, sky_mean, np.float32)
    rows = np.arange(py, py + ph)
    inside = (rows >= sy) & (rows < sy + sh)
    if inside.any():
        ref[inside] = sky_px.mean(axis=1)[rows[inside] - sy]  # same-row sky: follows the gradient
    opacity = 1.0 - plume_px / np.maximum(ref[:, None], 1.0)
    return float(np.clip(np.percentile(opacity, percentile), 0.0, 1.0)), sky_mean


class BlackSmokeDetector:
    """Ringelmann grading of one stack's plume; see the module docstring.

    Parameters
    ----------
    plume : tuple of int
        ``(x, y, w, h)`` box in full-resolution pixels where the plume leaves the stack.
    sky : tuple of int
        ``(x, y, w, h)`` box of clear sky near the plume, ideally over the same rows.
    params : BlackSmokeParams, optional
    zone : str, optional
        Reported as the findings' ``zone`` (e.g. the stack's name).

    Raises
    ------
    ConfigError
        If a box is malformed, or (on the first frame) lies outside the frame.

    Notes
    -----
    Reads only the two boxes of each frame; state is the last ``window_s`` of opacities.
    """

    def __init__(
        self,
        plume: BBox,
        sky: BBox,
        params: BlackSmokeParams | None = None,
        zone: str | None = None,
    ) -> None:
        self.plume = _check_box(plume, "plume")
        self.sky = _check_box(sky, "sky")
        self.params = params if params is not None else BlackSmokeParams()
        self.zone = zone
        self._debounce = Debounce(self.params.on_s, self.params.off_s)
        self._history: collections.deque[tuple[float, float]] = collections.deque()
        self._checked: tuple[int, int] | None = None
        self.last_grade: int | None = None
        """Smoothed grade of the most recent frame (None without a measurement), for diagnostics."""

    def _luma(self, frame: np.ndarray) -> np.ndarray:
        check_bgr(frame)
        h, w = frame.shape[:2]
        if self._checked != (h, w):
            for name, (x, y, bw, bh) in (("plume", self.plume), ("sky", self.sky)):
                if x + bw > w or y + bh > h:
                    raise ConfigError(f"{name} box {(x, y, bw, bh)} leaves the {w}x{h} frame")
            self._checked = (h, w)
        # Only the union of the two boxes is converted: the rest of the frame is not needed.
        x0, y0 = min(self.plume[0], self.sky[0]), min(self.plume[1], self.sky[1])
        x1 = max(self.plume[0] + self.plume[2], self.sky[0] + self.sky[2])
        y1 = max(self.plume[1] + self.plume[3], self.sky[1] + self.sky[3])
        gray = np.zeros((y1, x1), np.uint8)
        gray[y0:y1, x0:x1] = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        return gray

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Grade the plume in one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing.

        Returns
        -------
        list of Finding
            One ``black_smoke`` finding while the smoothed grade is at least ``min_grade``.

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` or a box leaves it.
        """
        p = self.params
        opacity, sky_luma = plume_opacity(
            self._luma(frame), self.plume, self.sky, p.core_percentile
        )
        hist = self._history
        if sky_luma >= p.min_sky_luma:
            hist.append((ts, opacity))
        while hist and hist[0][0] < ts - p.window_s - 1e-6:
            hist.popleft()
        if not hist:
            self.last_grade = None
            self._debounce.update(False, ts)
            return []
        mean = float(np.median([o for _, o in hist]))
        grade = ringelmann_grade(mean)
        self.last_grade = grade
        self._debounce.update(grade >= p.min_grade, ts)
        if not self._debounce.active:
            return []
        # Confidence: how far the smoothed value sits from a grade boundary (x.5 is a coin toss).
        conf = 0.5 + 0.5 * min(1.0, 2.0 * abs(5.0 * mean - math.floor(5.0 * mean) - 0.5))
        detail = {
            "ringelmann": grade,
            "present": grade >= p.min_grade,
            "opacity": round(mean, 4),
            "sky_luma": round(sky_luma, 1),
        }
        return [Finding(BLACK_SMOKE, conf, self.plume, self.zone, detail)]

    @property
    def active(self) -> bool:
        """Whether black smoke is currently reported."""
        return self._debounce.active
