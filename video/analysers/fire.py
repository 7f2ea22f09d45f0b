"""Fire detection: YCbCr flame-colour rules plus temporal flicker energy over a window.

Colour (Celik & Demirel, "Fire detection in video sequences using a generic color model",
Fire Safety Journal 44(2), 2009): flame pixels satisfy ``R > G > B``, ``Cr > Cb`` by a margin
and are bright (here: ``R >= r_min`` and ``Y >= y_min``). Lit windows, lamps and orange cars
pass the colour rules too, which is why the second cue is required:

Flicker (Toreyin et al., "Computer vision based method for real-time fire and flame detection",
Pattern Recognition Letters 27(1), 2006): flames change luma from frame to frame all the time;
a pixel flickers when at least ``flicker_min`` of the frame-to-frame luma steps in the last
``window_s`` seconds exceed ``flicker_step`` grey levels. A passing car changes a pixel once or
twice, a static lamp never.

A fire pixel is flame-coloured in at least ``colour_min`` of the window's frames and flickers;
the mask is opened (3x3), connected regions under ``min_blob`` are dropped, and it is reported
per zone through the same debounced gate as smoke: one ``kind="fire"`` finding per active zone
on every update while active.

Three guards keep flicker that is not flames out:

* a camera that pans or shakes makes every edge step from frame to frame: the window's frames
  are shifted onto the newest by the global translation (phase correlation), when that
  translation explains the change; while the whole view still moves (median step over
  ``view_motion``: a hand-held pan with parallax, a cut), the window restarts;
* a lamp on mains power flickers at 100 or 120 Hz, which the frame rate aliases to one regular
  oscillation: a region whose mean luma over the window one sinusoid explains to more than
  ``max_periodic`` is dropped (:func:`sinusoid_share`); flame flicker is irregular and
  broadband (Toreyin et al. 2006);
* a region is only reported once the window holds ``MIN_SPECTRUM_FRAMES`` frames.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from video.analysers.base import Finding, Zone, prepare
from video.analysers.params import Debounced, Downscaled
from video.analysers.zone_gate import ZoneGate

FIRE = "fire"

MIN_SPECTRUM_FRAMES = 6
"""Fewest frames in the window for telling a periodic flicker from an irregular one: one
sinusoid and a constant fit any 4 points, and 5 leave a single degree of freedom."""

SHIFT_RESPONSE_MIN = 0.3
"""Phase-correlation peak below which a global shift estimate is not trusted (measured: 0.3 to
0.99 while the bikes clip pans, 0.07 to 0.37 on night scenes where only the flames change)."""


class FireParams(Downscaled, Debounced):
    """Tuning of :class:`FireDetector` (``analysers.fire`` in the camera YAML).

    Besides the shared ``analysis_height`` and ``on_s`` / ``off_s`` (see
    :mod:`video.analysers.params`), the flame-colour rules and the flicker window.
    """

    r_min: float = Field(
        150.0,
        title="Red minimum",
        description=(
            "Minimum red channel of a flame pixel; not higher, since flames seen through haze "
            "or smoke lose saturation at their edges (flicker rules out lamps)."
        ),
        ge=0,
        le=255,
    )
    y_min: float = Field(
        70.0, title="Luma minimum", description="Minimum luma of a flame pixel.", ge=0, le=255
    )
    cr_cb_min: float = Field(
        40.0, title="Cr - Cb minimum", description="Minimum Cr - Cb of a flame pixel.", ge=0, le=255
    )
    window_s: float = Field(
        2.0,
        title="Flicker window",
        description="Seconds of frames the flicker is measured over (needs 6 frames in it).",
        ge=0.2,
        le=60,
    )
    flicker_step: float = Field(
        12.0,
        title="Flicker step",
        description="Frame-to-frame luma step counted as a flicker event.",
        ge=1,
        le=255,
    )
    flicker_min: float = Field(
        0.4,
        title="Flicker share",
        description="Share of the window's luma steps that must be flicker events.",
        gt=0,
        le=1,
    )
    colour_min: float = Field(
        0.3,
        title="Colour share",
        description="Share of the window's frames in which a pixel must be flame-coloured.",
        ge=0,
        le=1,
    )
    min_blob: float = Field(
        0.0006,
        title="Minimum region",
        description=(
            "Smallest connected fire region kept, as a fraction of the analysed frame (about "
            "35 pixels at 320x180), larger than a lit window that camera shake makes flicker."
        ),
        ge=0,
        le=1,
    )
    max_periodic: float = Field(
        0.97,
        title="Periodic flicker",
        description=(
            "Largest share of a region's mean-luma variance over the window that one sinusoid "
            "may explain: a lamp's mains flicker aliased by the frame rate is a regular "
            "oscillation, a flame's flicker is irregular (fire needs 6 frames in the window)."
        ),
        gt=0,
        le=1,
    )
    max_shift: float = Field(
        0.25,
        title="View shift",
        description=(
            "Global shift between consecutive frames, as a share of the analysed height, from "
            "which the camera moved too far or cut to another view to compare the frames: the "
            "flicker window restarts. Smaller shifts (a pan, shake) are compensated."
        ),
        gt=0,
        le=1,
    )
    view_motion: float = Field(
        4.0,
        title="View motion",
        description=(
            "Median frame-to-frame luma change (grey levels, after compensating a global "
            "shift) above which the whole view moves and the flicker window restarts: measured "
            "at most 1 on fixed simulator cameras with shake, 4 to 66 while a hand-held camera "
            "pans."
        ),
        gt=0,
        le=255,
    )
    min_area: float = Field(
        0.002,
        title="Minimum area",
        description="Smallest total fire area as a fraction of the analysed frame (or zone).",
        ge=0,
        le=1,
    )


# --------------------------------------------------------------------------- pure steps


def flame_colour(bgr: np.ndarray, ycrcb: np.ndarray, p: FireParams) -> np.ndarray:
    """Boolean mask of pixels passing the flame-colour rules.

    Parameters
    ----------
    bgr, ycrcb : numpy.ndarray
        The same image as BGR and as OpenCV YCrCb, ``uint8`` of shape ``(h, w, 3)``.
    p : FireParams

    Returns
    -------
    numpy.ndarray
        ``bool`` of shape ``(h, w)``.
    """
    b, g, r = (bgr[..., i].astype(np.int16) for i in range(3))
    y, cr, cb = (ycrcb[..., i].astype(np.int16) for i in range(3))
    return (r > g) & (g > b) & (r >= p.r_min) & (y >= p.y_min) & (cr - cb >= p.cr_cb_min)


def flicker_fraction(lumas: np.ndarray, step: float) -> np.ndarray:
    """Per pixel, the share of frame-to-frame steps of ``lumas`` (``(n, h, w)``, n >= 2) of at
    least ``step`` grey levels."""
    return np.asarray((np.abs(np.diff(lumas, axis=0)) >= step).mean(axis=0))


def large_regions(mask: np.ndarray, min_blob: float, kernel: np.ndarray) -> np.ndarray:
    """``mask`` (bool) opened by ``kernel`` (isolated lit-window and lamp pixels that camera
    shake makes flicker), keeping connected regions of at least ``min_blob`` of the frame: many
    small flickering lights can add up to ``min_area``, a flame is one sizeable blob."""
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_blob * opened.size)
    keep = keep[keep > 0]
    return np.isin(labels, keep) if keep.size else np.zeros(mask.shape, bool)


def fire_mask(
    lumas: np.ndarray,
    colours: np.ndarray,
    colour_now: np.ndarray,
    p: FireParams,
    kernel: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fire pixels of a window: flame-coloured now and in ``colour_min`` of the window's frames,
    flickering in ``flicker_min`` of its steps, in a region of at least ``min_blob``.

    Parameters
    ----------
    lumas : numpy.ndarray
        ``int16`` luma of the window's frames, ``(n, h, w)`` with n >= 3.
    colours : numpy.ndarray
        ``bool`` flame-colour masks of the same frames.
    colour_now : numpy.ndarray
        Flame-colour mask of the newest frame.

    Returns
    -------
    mask : numpy.ndarray
        ``bool`` fire mask.
    flicker : numpy.ndarray
        Per-pixel flicker share, the confidence source.
    """
    flicker = flicker_fraction(lumas, p.flicker_step)
    raw = (flicker >= p.flicker_min) & (colours.mean(axis=0) >= p.colour_min) & colour_now
    return large_regions(raw, p.min_blob, kernel), flicker


def global_shift(prev: np.ndarray, luma: np.ndarray) -> tuple[float, float, float]:
    """Translation of the whole view from ``prev`` to ``luma`` (``float32``, same shape) by
    phase correlation (Kuglin & Hines 1975) at half resolution, Hann-windowed.

    Returns
    -------
    dx, dy : float
        Shift in pixels of the full input size: content at ``(x, y)`` in ``prev`` is at
        ``(x + dx, y + dy)`` in ``luma``.
    response : float
        Peak height in [0, 1]: near 1 for one clean translation, low when the views differ
        (a cut, a cover) and the shift means nothing.
    """
    a = cv2.pyrDown(prev)
    b = cv2.pyrDown(luma)
    window = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    return 2.0 * float(dx), 2.0 * float(dy), float(response)


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``img`` translated by ``(dx, dy)`` pixels (bilinear, edges replicated), so that a frame
    taken before a pan lines up with the frame after it."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
    h, w = img.shape[:2]
    return np.asarray(
        cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    )


def sinusoid_share(series: np.ndarray, ts: np.ndarray) -> float:
    """Largest share of the variance of ``series`` (sampled at times ``ts``) that a single
    sinusoid explains, over frequencies from two cycles per window to the Nyquist rate.

    Least squares of ``a + b cos(2 pi f t) + c sin(2 pi f t)`` at each frequency (a
    Lomb-Scargle periodogram normalised as R^2). A lamp flickering at the mains frequency is
    seen through the frame rate as one aliased sinusoid (R^2 near 1); flame flicker is
    broadband and irregular (Toreyin et al. 2006 model it as a random process), so no single
    frequency explains most of it. Returns 0 for a constant series.
    """
    y = series.astype(np.float64) - float(series.mean())
    total = float(y @ y)
    n = len(y)
    if n < 4 or total <= 1e-9:
        return 0.0
    t = ts.astype(np.float64) - float(ts[0])
    span = float(t[-1]) if t[-1] > 0 else 1.0
    nyquist = 0.5 * (n - 1) / span
    best = 0.0
    # From two cycles per window up: a repeating pattern, not the slow swell of a fire that
    # grows (one cycle fits any trend).
    for f in np.linspace(min(2.0 / span, nyquist), nyquist, 4 * n):
        phase = 2 * np.pi * f * t
        design = np.column_stack([np.ones(n), np.cos(phase), np.sin(phase)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ coef
        best = max(best, 1.0 - float(resid @ resid) / total)
    return best


def irregular_regions(
    mask: np.ndarray, lumas: np.ndarray, ts: np.ndarray, max_periodic: float
) -> np.ndarray:
    """``mask`` without the connected regions whose mean luma over the window's frames
    (``lumas``, ``(n, h, w)``; ``ts`` their times) one sinusoid explains to more than
    ``max_periodic`` (:func:`sinusoid_share`): periodic lamps, not flames. A window of fewer
    than ``MIN_SPECTRUM_FRAMES`` frames is too short to tell: nothing is kept yet (after a
    start or a change of view a flame waits that long, a lamp is never let through)."""
    if len(lumas) < MIN_SPECTRUM_FRAMES:
        return np.zeros(mask.shape, bool)
    if not mask.any():
        return mask
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    out = mask.copy()
    for j in range(1, n):
        region = labels == j
        series = lumas[:, region].mean(axis=1)
        if sinusoid_share(series, ts) > max_periodic:
            out &= ~region
    return out


# --------------------------------------------------------------------------- detector


class FireDetector:
    """Per-camera fire detector; see the module docstring for the method.

    Parameters
    ----------
    params : FireParams, optional
    zones : sequence of Zone, optional
        Zones in full-resolution pixels; each is debounced and reported separately.

    Notes
    -----
    State: the last ``window_s`` seconds of luma and flame-colour masks at analysis resolution
    (about 60 kB per frame at 320x180; 10 frames at 5 fps). The frame size may not change.
    """

    def __init__(self, params: FireParams | None = None, zones: Sequence[Zone] = ()) -> None:
        self.params = params if params is not None else FireParams()
        p = self.params
        self._gate = ZoneGate(FIRE, zones, p.on_s, p.off_s, p.min_area)
        self._shape: tuple[int, int] | None = None
        self._history: collections.deque[tuple[float, np.ndarray, np.ndarray]] = collections.deque()
        self._kernel = np.ones((3, 3), np.uint8)
        self._prev_luma: np.ndarray | None = None
        self.last_mask: np.ndarray | None = None
        """Fire mask of the most recent frame at analysis resolution, for diagnostics."""

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Analyse one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing.

        Returns
        -------
        list of Finding
            One ``fire`` finding per active zone, on every frame while active.

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` or its size changed.
        """
        p = self.params
        small, scale = prepare(frame, p.analysis_height, self._shape)
        self._shape = frame.shape[:2]
        ycc = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb)
        colour = flame_colour(small, ycc, p)
        luma = ycc[..., 0].astype(np.float32)
        self._follow_view(luma)
        hist = self._history
        hist.append((ts, luma.astype(np.int16), colour))
        while hist and hist[0][0] < ts - p.window_s - 1e-6:
            hist.popleft()
        mask, score = np.zeros(colour.shape, bool), None
        if len(hist) >= 3:
            lumas, colours = np.stack([h[1] for h in hist]), np.stack([h[2] for h in hist])
            mask, flicker = fire_mask(lumas, colours, colour, p, self._kernel)
            times = np.array([h[0] for h in hist])
            mask = irregular_regions(mask, lumas, times, p.max_periodic)
            score = 0.5 + 0.5 * np.clip(flicker, 0, 1)
        self.last_mask = mask
        return self._gate.update(mask, ts, scale, score=score)

    def _follow_view(self, luma: np.ndarray) -> None:
        """Line the window's frames up with this one when the camera pans or shakes, so that
        a lit sign sliding through the view does not flicker; restart the window when the
        whole view still moves after that (a hand-held pan with parallax, a cut): flames
        flicker in a bounded region, never over the median pixel of the frame."""
        prev, self._prev_luma = self._prev_luma, luma
        if prev is None or not self._history:
            return
        p = self.params
        residual = cv2.absdiff(prev, luma)
        if float(cv2.mean(residual)[0]) <= 0.5 * p.view_motion:
            # A still view: nothing to line up, and the median of non-negative steps is at most
            # twice their mean, so it cannot exceed view_motion either (skips both costs).
            return
        dx, dy, response = global_shift(prev, luma)
        limit = p.max_shift * luma.shape[0]
        # Below SHIFT_RESPONSE_MIN there is no single translation: a dark scene where only the
        # flames change, or a cut (which the residual test below catches).
        if response >= SHIFT_RESPONSE_MIN and (abs(dx) >= 0.5 or abs(dy) >= 0.5):
            if abs(dx) > limit or abs(dy) > limit:
                self._history.clear()
                return
            aligned = cv2.absdiff(shifted(prev, dx, dy), luma)
            if float(aligned.mean()) < (2.0 / 3.0) * float(residual.mean()):
                residual = aligned
                self._history = collections.deque(
                    (t, shifted(y, dx, dy), shifted(c.astype(np.uint8), dx, dy) > 0)
                    for t, y, c in self._history
                )
        if float(np.median(residual[::2, ::2])) > p.view_motion:
            self._history.clear()

    @property
    def active(self) -> bool:
        """Whether fire is currently reported in any zone."""
        return self._gate.active
