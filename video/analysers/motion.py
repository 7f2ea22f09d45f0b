"""Pixel-change motion detection with zones, masks, a global-change guard, flicker suppression
and persistence.

The pipeline follows Frigate's ``ImprovedMotionDetector`` (``frigate/motion/improved_motion.py``):
downscale, grayscale, Gaussian blur, difference against a running-average background
(``cv2.accumulateWeighted``), threshold, dilate, external contours above a minimum area.
When most of the frame changes at once (lights switched, auto-exposure, camera knocked) the
background is reset to the current frame and nothing is reported, as Frigate's
"lightning threshold" does, because such changes are not motion of anything in the scene.

Two guards keep what moves in place out:

* flicker: a pixel whose difference from the background keeps changing sign (brighter, darker,
  brighter: a flickering lamp, leaves swaying against the sky, water) is not counted while its
  rate of sign flips (moving average over ``flicker_tau_s``) is at least ``flicker_rate`` per
  frame; something passing changes a pixel's sign once or twice;
* persistence: a motion region is reported once it has been seen in ``min_frames``
  consecutive analysed frames, each region overlapping one of the previous frame's in the
  same zone (per zone, so that a region in one zone does not vouch for another): noise and
  single-frame glints never persist.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from farsight.errors import ConfigError
from video.analysers.base import Finding, Polygon, Zone, blurred_gray, unique_zones
from video.analysers.foreground import AnalysisBox, ema_weight, scaled_mask, to_full_box
from video.analysers.params import ForegroundParams


class MotionParams(ForegroundParams):
    """Tuning of :class:`MotionDetector` (``analysers.motion`` in the camera YAML).

    Besides the shared ``resize_height``, ``blur_ksize``, ``threshold`` (grey levels) and
    ``global_change`` (see :mod:`video.analysers.params`): when more than ``global_change`` of
    the unmasked pixels change at once (lighting, camera move) the background is reset and
    nothing is reported.
    """

    alpha: float = Field(
        0.02, title="Background rate", description="Background learning rate per frame.", gt=0, lt=1
    )
    dilate_iterations: int = Field(
        2,
        title="Dilations",
        description="3x3 dilations merging nearby changed pixels.",
        ge=0,
        le=10,
    )
    min_area: float = Field(
        0.0005,
        title="Minimum area",
        description="Smallest motion contour area as a fraction of the analysed frame.",
        ge=0,
        lt=1,
    )
    min_frames: int = Field(
        2,
        title="Persistence",
        description=(
            "Consecutive analysed frames a motion region (overlapping the previous frame's, in "
            "the same zone) must be seen before it is reported; 1 reports every frame's."
        ),
        ge=1,
        le=100,
    )
    flicker_rate: float = Field(
        0.2,
        title="Flicker rate",
        description=(
            "Sign flips of a pixel's difference from the background per frame (moving "
            "average) from which it flickers (lamp, leaves, water) and is not counted; 1 "
            "disables."
        ),
        gt=0,
        le=1,
    )
    flicker_tau_s: float = Field(
        2.0,
        title="Flicker time constant",
        description="Seconds over which a pixel's sign flips are averaged.",
        ge=0.1,
        le=600,
    )


# --------------------------------------------------------------------------- pure steps


def changed_pixels(
    gray: np.ndarray, background: np.ndarray, threshold: float, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Grey difference against a ``float32`` background and its thresholded ``uint8`` 0/255
    mask, zero where ``keep`` (``uint8`` 0/255) is zero (the masked regions)."""
    diff = cv2.absdiff(gray, cv2.convertScaleAbs(background))
    _, thresh = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
    return np.asarray(diff), np.asarray(cv2.bitwise_and(thresh, keep))


def state_toggles(
    diff_signed: np.ndarray, threshold: float, last_state: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where a pixel's change state (brighter, unchanged or darker than the background by
    ``threshold``) differs from the previous frame's.

    Parameters
    ----------
    diff_signed : numpy.ndarray
        ``float32`` frame minus background.
    threshold : float
        Difference counted as change (the change threshold).
    last_state : numpy.ndarray
        ``int8`` state (+1 brighter, 0 unchanged, -1 darker) of each pixel in the previous
        frame.

    Returns
    -------
    toggled : numpy.ndarray
        ``bool``: the state changed.
    state : numpy.ndarray
        This frame's ``int8`` states.
    """
    state = (diff_signed >= threshold).view(np.int8) - (diff_signed <= -threshold).view(np.int8)
    return state != last_state, state


def persistent_boxes(
    boxes: Sequence[AnalysisBox], previous: Sequence[tuple[AnalysisBox, int]]
) -> list[tuple[AnalysisBox, int]]:
    """Each box with its age in frames: one more than the oldest of ``previous`` (boxes with
    ages, from the frame before) it overlaps, 1 if it overlaps none."""
    out = []
    for b in boxes:
        ages = [age for pb, age in previous if boxes_touch(b, pb)]
        out.append((b, 1 + max(ages, default=0)))
    return out


def boxes_touch(a: AnalysisBox, b: AnalysisBox) -> bool:
    """Whether two boxes overlap or touch (what moved between two frames at the analysis
    rate stays in contact with where it was, its dilated trail included)."""
    return (
        a[0] <= b[0] + b[2] and b[0] <= a[0] + a[2] and a[1] <= b[1] + b[3] and b[1] <= a[1] + a[3]
    )


def motion_boxes(
    thresh: np.ndarray, dilate_iterations: int, min_area_px: float, kernel: np.ndarray
) -> tuple[np.ndarray, list[AnalysisBox]]:
    """Boxes of the external contours of the dilated change mask at least ``min_area_px``
    (and one pixel) large; returns the dilated mask too (the boxes' fill is measured on it)."""
    if dilate_iterations:
        thresh = cv2.dilate(thresh, kernel, iterations=dilate_iterations)
    contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[AnalysisBox] = []
    for c in contours:
        if cv2.contourArea(c) >= max(min_area_px, 1.0):
            x, y, w, h = cv2.boundingRect(c)
            boxes.append((int(x), int(y), int(w), int(h)))
    return np.asarray(thresh), boxes


def best_zone(box: AnalysisBox, zone_masks: Sequence[np.ndarray]) -> int | None:
    """Index of the zone mask (``uint8``) with the most pixels inside ``box``; None if none has."""
    x, y, w, h = box
    overlaps = [int(cv2.countNonZero(zm[y : y + h, x : x + w])) for zm in zone_masks]
    best = int(np.argmax(overlaps))
    return best if overlaps[best] else None


def box_fill(thresh: np.ndarray, diff: np.ndarray, box: AnalysisBox) -> tuple[float, float]:
    """Changed share of ``box`` in ``thresh`` and the mean difference over its changed pixels."""
    x, y, w, h = box
    box_thresh = thresh[y : y + h, x : x + w]
    fill = cv2.countNonZero(box_thresh) / float(w * h)
    return fill, float(cv2.mean(diff[y : y + h, x : x + w], box_thresh)[0])


# --------------------------------------------------------------------------- detector


class MotionDetector:
    """Per-camera motion detector; see the module docstring for the method.

    Parameters
    ----------
    width, height : int
        Full-resolution frame size; every frame passed to :meth:`update` must match.
    zones : sequence of Zone, optional
        If given, each motion box is assigned to the zone it overlaps most and boxes
        overlapping no zone are dropped. If empty, boxes are reported with ``zone=None``.
    masks : sequence of Polygon, optional
        Regions (full-resolution pixels) where changes are ignored (trees, clocks, roads).
    params : MotionParams, optional

    Notes
    -----
    State at analysis resolution: a ``float32`` background and flip rate and an ``int8`` sign
    per pixel (about 520 kB at 320x180), and the previous frame's boxes per zone. The first
    frame, and any frame after a global change, only (re)initialises them.
    """

    def __init__(
        self,
        width: int,
        height: int,
        zones: Sequence[Zone] = (),
        masks: Sequence[Polygon] = (),
        params: MotionParams | None = None,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ConfigError(f"frame size must be positive, got {width}x{height}")
        self.params = params if params is not None else MotionParams()
        self.width, self.height = int(width), int(height)
        self.zones = unique_zones(zones)
        rh = min(self.params.resize_height, self.height)
        self._scale = rh / self.height
        self._size = (max(1, round(self.width * self._scale)), rh)  # (w, h) for cv2.resize
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        masked = (
            scaled_mask(masks, self._sx, self._sy, self._size)
            if masks
            else np.zeros((sh, sw), bool)
        )
        self._keep = np.where(masked, 0, 255).astype(np.uint8)
        self._zone_masks = [
            scaled_mask([z.points], self._sx, self._sy, self._size).astype(np.uint8)
            for z in self.zones
        ]
        self._unmasked = max(1, cv2.countNonZero(self._keep))
        self._min_area_px = self.params.min_area * sw * sh
        self._kernel = np.ones((3, 3), np.uint8)
        self._background: np.ndarray | None = None
        self._last_ts: float | None = None
        self._last_sign = np.zeros((sh, sw), np.int8)
        self._flips = np.zeros((sh, sw), np.float32)
        self._tracks: dict[str | None, list[tuple[AnalysisBox, int]]] = {}
        self.last_changed_fraction = 0.0
        """Changed-pixel fraction (unmasked) of the most recent frame, for diagnostics."""

    def reset(self) -> None:
        """Forget the background, flicker and persistence state; the next frame re-initialises
        them."""
        self._background = None

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Detect motion in one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing (the flicker average's clock).

        Returns
        -------
        list of Finding
            ``kind="motion"`` for each region seen in ``min_frames`` consecutive frames,
            ``bbox`` in full-resolution pixels, ``zone`` as described in the class docstring,
            ``confidence`` = fraction of the box that changed, ``detail`` with
            ``area_fraction`` (box area / frame area), ``mean_diff`` and ``frames`` (how many
            consecutive frames the region has been seen).

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` of the configured size.
        """
        p = self.params
        gray = blurred_gray(frame, self.width, self.height, self._size, p.blur_ksize)
        dt = max(0.0, ts - self._last_ts) if self._last_ts is not None else 0.0
        self._last_ts = ts
        if self._background is None:
            self._start(gray)
            return []
        diff, thresh = changed_pixels(gray, self._background, p.threshold, self._keep)
        self.last_changed_fraction = cv2.countNonZero(thresh) / self._unmasked
        if self.last_changed_fraction > p.global_change:
            # Global change: not motion of anything; adopt the new scene at once (Frigate).
            self._start(gray)
            return []
        thresh[self._flickering(gray, dt)] = 0
        cv2.accumulateWeighted(gray, self._background, p.alpha)
        thresh, boxes = motion_boxes(thresh, p.dilate_iterations, self._min_area_px, self._kernel)
        by_zone: dict[str | None, list[AnalysisBox]] = {}
        for box in boxes:
            zone = None
            if self.zones:
                best = best_zone(box, self._zone_masks)
                if best is None:
                    continue
                zone = self.zones[best].name
            by_zone.setdefault(zone, []).append(box)
        tracks = {z: persistent_boxes(bs, self._tracks.get(z, ())) for z, bs in by_zone.items()}
        self._tracks = tracks
        return [
            self._finding(box, zone, *box_fill(thresh, diff, box), age)
            for zone, aged in tracks.items()
            for box, age in aged
            if age >= p.min_frames
        ]

    def _start(self, gray: np.ndarray) -> None:
        """(Re)start every model from ``gray``: nothing has moved or flickered yet."""
        self._background = gray.astype(np.float32)
        self._last_sign = np.zeros(gray.shape, np.int8)
        self._flips = np.zeros(gray.shape, np.float32)
        self._tracks = {}
        self.last_changed_fraction = 0.0

    def _flickering(self, gray: np.ndarray, dt: float) -> np.ndarray:
        """Update the per-pixel sign-flip rate; return the ``bool`` mask of flickering pixels."""
        assert self._background is not None
        p = self.params
        toggled, self._last_sign = state_toggles(
            gray.astype(np.float32) - self._background, p.threshold, self._last_sign
        )
        if dt > 0:
            cv2.accumulateWeighted(
                toggled.astype(np.float32), self._flips, ema_weight(dt, p.flicker_tau_s)
            )
        # One pixel more around them: the blur spreads a lamp's light into a rim that changes
        # in only one of its states.
        return cv2.dilate((self._flips >= p.flicker_rate).astype(np.uint8), self._kernel) > 0

    def _finding(
        self, box: AnalysisBox, zone: str | None, fill: float, mean_diff: float, frames: int
    ) -> Finding:
        bbox = to_full_box(box, self._sx, self._sy, self.width, self.height)
        return Finding(
            kind="motion",
            confidence=float(min(1.0, max(0.0, fill))),
            bbox=bbox,
            zone=zone,
            detail={
                "area_fraction": bbox[2] * bbox[3] / float(self.width * self.height),
                "mean_diff": mean_diff,
                "frames": frames,
            },
        )
