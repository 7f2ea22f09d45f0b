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
the mask is opened (3x3), connected regions under ``min_blob`` are dropped, and it is reported per zone through the same debounced gate as smoke: one
``kind="fire"`` finding per active zone on every update while active.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import Finding, Zone
from video.analysers.smoke import ZoneGate, _check_finite, prepare

FIRE = "fire"


@dataclass(frozen=True, slots=True)
class FireParams:
    """Tuning of :class:`FireDetector`.

    Parameters
    ----------
    analysis_height : int, default 180
        Height of the downscaled image (32..1080).
    r_min, y_min : float, default 150.0, 70.0
        Minimum red channel and luma of a flame pixel (0..255); not higher, since flames seen
        through haze or smoke lose saturation at their edges (flicker rules out lamps).
    cr_cb_min : float, default 40.0
        Minimum ``Cr - Cb`` of a flame pixel (0..255).
    window_s : float, default 2.0
        Flicker window in seconds (0.2..60); needs at least 3 frames in it.
    flicker_step : float, default 12.0
        Frame-to-frame luma step counted as a flicker event (1..255).
    flicker_min : float, default 0.4
        Fraction of the window's steps that must be flicker events (0..1).
    colour_min : float, default 0.3
        Fraction of the window's frames in which the pixel must be flame-coloured (0..1).
    min_blob : float, default 0.0006
        Smallest connected fire region kept, as a fraction of the analysed frame (0..1):
        about 35 pixels at 320x180, larger than a lit window that camera shake makes flicker.
    min_area : float, default 0.002
        Minimum total fire area as a fraction of the analysed frame (or zone) (0..1).
    on_s, off_s : float, default 1.0, 2.0
        Debounce of the per-zone condition (0..600).
    """

    analysis_height: int = 180
    r_min: float = 150.0
    y_min: float = 70.0
    cr_cb_min: float = 40.0
    window_s: float = 2.0
    flicker_step: float = 12.0
    flicker_min: float = 0.4
    colour_min: float = 0.3
    min_blob: float = 0.0006
    min_area: float = 0.002
    on_s: float = 1.0
    off_s: float = 2.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not (isinstance(self.analysis_height, int) and 32 <= self.analysis_height <= 1080):
            problems.append(
                f"analysis_height must be an int in 32..1080, got {self.analysis_height!r}"
            )
        _check_finite(self, ("r_min", "y_min", "cr_cb_min"), 0, 255, problems)
        _check_finite(self, ("window_s",), 0.2, 60, problems)
        _check_finite(self, ("flicker_step",), 1, 255, problems)
        _check_finite(self, ("flicker_min", "colour_min", "min_blob", "min_area"), 0, 1, problems)
        _check_finite(self, ("on_s", "off_s"), 0, 600, problems)
        if problems:
            raise ConfigError("; ".join(problems), source="FireParams")


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
        hist = self._history
        hist.append((ts, ycc[..., 0].astype(np.int16), colour))
        while hist and hist[0][0] < ts - p.window_s - 1e-6:
            hist.popleft()
        mask = np.zeros(colour.shape, bool)
        flicker_frac = None
        if len(hist) >= 3:
            lumas = np.stack([h[1] for h in hist])
            steps = np.abs(np.diff(lumas, axis=0)) >= p.flicker_step
            flicker_frac = steps.mean(axis=0)
            colour_frac = np.stack([h[2] for h in hist]).mean(axis=0)
            raw = (
                (flicker_frac >= p.flicker_min)
                & (colour_frac >= p.colour_min)
                & colour.astype(bool)
            )
            # The opening removes isolated lit-window and lamp pixels that camera shake makes flicker.
            opened = cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_OPEN, self._kernel)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
            # Many small flickering lights can add up to min_area; a flame is one sizeable blob.
            keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= p.min_blob * opened.size)
            keep = keep[keep > 0]
            mask = np.isin(labels, keep) if keep.size else mask
        self.last_mask = mask
        score = None if flicker_frac is None else 0.5 + 0.5 * np.clip(flicker_frac, 0, 1)
        return self._gate.update(mask, ts, scale, score=score)

    @property
    def active(self) -> bool:
        """Whether fire is currently reported in any zone."""
        return self._gate.active
