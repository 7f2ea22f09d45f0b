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
from typing import Any

import cv2
import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from farsight.errors import ConfigError
from video.analysers.base import BBox, Debounce, Finding, check_bgr
from video.analysers.params import Debounced, off_s_field, opt_in_field

BLACK_SMOKE = "black_smoke"


def check_box(box: BBox, what: str) -> BBox:
    """Validate an ``(x, y, w, h)`` box of pixels; return it as ints.

    Raises
    ------
    ConfigError
        Not four ints, or a negative corner or an empty size.
    """
    try:
        x, y, w, h = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be (x, y, w, h) ints, got {box!r}") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ConfigError(f"{what} {box!r} needs x, y >= 0 and w, h > 0")
    return (x, y, w, h)


class BlackSmokeParams(Debounced):
    """Tuning of :class:`BlackSmokeDetector` (``analysers.black_smoke`` in the camera YAML):
    the plume and clear-sky boxes of this camera, smoothing and the grade reported.

    The boxes are used by the camera config's factory; a detector built in Python takes them as
    arguments. Debounce (``on_s`` / ``off_s``, shared) of the "grade >= min_grade" condition.
    """

    enabled: bool = opt_in_field("the boxes are the camera's own.")
    off_s: float = off_s_field(1.0)
    plume: BBox | None = Field(
        None,
        title="Plume box",
        description="x, y, width, height of the region above the stack top.",
    )
    sky: BBox | None = Field(
        None,
        title="Sky box",
        description="x, y, width, height of clear sky beside the plume (same rows).",
    )
    min_grade: int = Field(
        1,
        title="Minimum grade",
        description=(
            "Lowest Ringelmann grade reported (GB 13271: grade 1 is the limit); grade 0 is clean "
            "air and never reported."
        ),
        ge=1,
        le=5,
    )
    window_s: float = Field(
        3.0,
        title="Smoothing",
        description="Seconds the per-frame opacity is smoothed over (running median).",
        ge=0,
        le=600,
    )
    core_percentile: float = Field(
        99.0,
        title="Core percentile",
        description="Percentile of the per-pixel opacity in the plume box taken as the plume's.",
        ge=50,
        le=100,
    )
    min_sky_luma: float = Field(
        40.0,
        title="Daylight level",
        description="Mean sky luma under which nothing is measured (night, heavy overcast).",
        ge=0,
        le=255,
    )

    @field_validator("plume", "sky")
    @classmethod
    def _box(cls, v: BBox | None, info: ValidationInfo) -> BBox | None:
        try:
            return None if v is None else check_box(v, str(info.field_name))
        except ConfigError as exc:
            raise ValueError(exc.problems[0].message) from None

    @model_validator(mode="after")
    def _boxes_when_enabled(self) -> BlackSmokeParams:
        if self.enabled and (self.plume is None or self.sky is None):
            raise ValueError("an enabled black_smoke analyser needs both 'plume' and 'sky' boxes")
        return self


# --------------------------------------------------------------------------- pure steps


def ringelmann_grade(opacity: float) -> int:
    """Ringelmann grade of an opacity in [0, 1]: ``clamp(round(5 * opacity), 0, 5)``."""
    return int(min(5, max(0, round(5.0 * opacity))))


def grade_confidence(opacity: float) -> float:
    """How far ``5 * opacity`` sits from a grade boundary, in [0.5, 1] (x.5 is a coin toss)."""
    return 0.5 + 0.5 * min(1.0, 2.0 * abs(5.0 * opacity - math.floor(5.0 * opacity) - 0.5))


def boxes_luma(frame: np.ndarray, boxes: tuple[BBox, ...]) -> np.ndarray:
    """Grey image of ``frame`` converted only inside the union box of ``boxes`` (zeros
    elsewhere, cropped at the union's bottom-right corner): the rest is not needed."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    gray = np.zeros((y1, x1), np.uint8)
    gray[y0:y1, x0:x1] = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return gray


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
        self.plume = check_box(plume, "plume")
        self.sky = check_box(sky, "sky")
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
        return boxes_luma(frame, (self.plume, self.sky))

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
        luma = self._luma(frame)
        opacity, sky_luma = plume_opacity(luma, self.plume, self.sky, p.core_percentile)
        hist = self._history
        if sky_luma >= p.min_sky_luma:
            hist.append((ts, opacity))
        while hist and hist[0][0] < ts - p.window_s - 1e-6:
            hist.popleft()
        if not hist:
            self.last_grade = None
            self._debounce.update(False, ts)
            return []
        smoothed = float(np.median([o for _, o in hist]))
        grade = ringelmann_grade(smoothed)
        self.last_grade = grade
        self._debounce.update(grade >= p.min_grade, ts)
        if not self._debounce.active:
            return []
        detail: dict[str, Any] = {
            "ringelmann": grade,
            "present": grade >= p.min_grade,
            "opacity": round(smoothed, 4),
            "sky_luma": round(sky_luma, 1),
        }
        conf = grade_confidence(smoothed)
        return [Finding(BLACK_SMOKE, conf, self.plume, self.zone, detail)]

    @property
    def active(self) -> bool:
        """Whether black smoke is currently reported."""
        return self._debounce.active
