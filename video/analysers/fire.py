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
        description="Seconds of frames the flicker is measured over (needs 3 frames in it).",
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
        mask, score = np.zeros(colour.shape, bool), None
        if len(hist) >= 3:
            lumas, colours = np.stack([h[1] for h in hist]), np.stack([h[2] for h in hist])
            mask, flicker = fire_mask(lumas, colours, colour, p, self._kernel)
            score = 0.5 + 0.5 * np.clip(flicker, 0, 1)
        self.last_mask = mask
        return self._gate.update(mask, ts, scale, score=score)

    @property
    def active(self) -> bool:
        """Whether fire is currently reported in any zone."""
        return self._gate.active
