"""Pixel-change motion detection with zones, masks and a global-change guard.

The pipeline follows Frigate's ``ImprovedMotionDetector`` (``frigate/motion/improved_motion.py``):
downscale, grayscale, Gaussian blur, difference against a running-average background
(``cv2.accumulateWeighted``), threshold, dilate, external contours above a minimum area.
When most of the frame changes at once (lights switched, auto-exposure, camera knocked) the
background is reset to the current frame and nothing is reported, as Frigate's
"lightning threshold" does, because such changes are not motion of anything in the scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import (
    BBox,
    Finding,
    ParamCheck,
    Polygon,
    Zone,
    blurred_gray,
    rasterise_polygons,
)


@dataclass(frozen=True, slots=True)
class MotionParams:
    """Tuning of :class:`MotionDetector`.

    Parameters
    ----------
    resize_height : int, default 180
        Analysis height in pixels (16..2160); width keeps the aspect ratio.
    blur_ksize : int, default 5
        Gaussian blur kernel size at analysis resolution; odd, 1..31 (1 disables).
    threshold : int, default 25
        Absolute gray-level difference counted as change, 1..255.
    alpha : float, default 0.02
        Background learning rate per frame, ``0 < alpha < 1``.
    dilate_iterations : int, default 2
        3x3 dilations merging nearby changed pixels, 0..10.
    min_area : float, default 0.0005
        Smallest contour area as a fraction of the frame area, ``0 <= min_area < 1``.
    global_change : float, default 0.5
        Changed-pixel fraction above which the frame is treated as a global change
        (lighting, camera move): background reset, nothing reported. ``0 < x <= 1``.
    """

    resize_height: int = 180
    blur_ksize: int = 5
    threshold: int = 25
    alpha: float = 0.02
    dilate_iterations: int = 2
    min_area: float = 0.0005
    global_change: float = 0.5

    def __post_init__(self) -> None:
        c = ParamCheck(self)
        c.blob_basics()
        c.number("alpha", 0, 1, above=True, below=True)
        c.integer("dilate_iterations", 0, 10)
        c.number("min_area", 0, 1, below=True)
        c.done()


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
    State is one ``float32`` background at analysis resolution (about 230 kB at 320x180).
    The first frame, and any frame after a global change, only (re)initialises it.
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
        self.zones = tuple(zones)
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ConfigError(f"zone names must be unique, got {names}")
        rh = min(self.params.resize_height, self.height)
        self._scale = rh / self.height
        self._size = (max(1, round(self.width * self._scale)), rh)  # (w, h) for cv2.resize
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        mask = (
            rasterise_polygons(
                [[(x * self._sx, y * self._sy) for x, y in m] for m in masks], sw, sh
            )
            if masks
            else np.zeros((sh, sw), bool)
        )
        self._keep = np.where(mask, 0, 255).astype(np.uint8)
        self._zone_masks = [
            rasterise_polygons(
                [[(x * self._sx, y * self._sy) for x, y in z.points]], sw, sh
            ).astype(np.uint8)
            for z in self.zones
        ]
        self._min_area_px = self.params.min_area * sw * sh
        self._kernel = np.ones((3, 3), np.uint8)
        self._background: np.ndarray | None = None
        self.last_changed_fraction = 0.0
        """Changed-pixel fraction (unmasked) of the most recent frame, for diagnostics."""

    def reset(self) -> None:
        """Forget the background; the next frame re-initialises it."""
        self._background = None

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Detect motion in one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds (unused by this detector, kept for the protocol).

        Returns
        -------
        list of Finding
            ``kind="motion"``, ``bbox`` in full-resolution pixels, ``zone`` as described
            in the class docstring, ``confidence`` = fraction of the box that changed,
            ``detail`` with ``area_fraction`` (box area / frame area) and ``mean_diff``.

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` of the configured size.
        """
        gray = blurred_gray(frame, self.width, self.height, self._size, self.params.blur_ksize)
        if self._background is None:
            self._background = gray.astype(np.float32)
            self.last_changed_fraction = 0.0
            return []
        p = self.params
        diff = cv2.absdiff(gray, cv2.convertScaleAbs(self._background))
        _, thresh = cv2.threshold(diff, p.threshold, 255, cv2.THRESH_BINARY)
        thresh = cv2.bitwise_and(thresh, self._keep)
        unmasked = max(1, cv2.countNonZero(self._keep))
        self.last_changed_fraction = cv2.countNonZero(thresh) / unmasked
        if self.last_changed_fraction > p.global_change:
            # Global change: not motion of anything; adopt the new scene at once (Frigate).
            self._background = gray.astype(np.float32)
            return []
        cv2.accumulateWeighted(gray, self._background, p.alpha)
        if p.dilate_iterations:
            thresh = cv2.dilate(thresh, self._kernel, iterations=p.dilate_iterations)
        contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        findings: list[Finding] = []
        sw, sh = self._size
        for c in contours:
            if cv2.contourArea(c) < max(self._min_area_px, 1.0):
                continue
            x, y, w, h = cv2.boundingRect(c)
            zone = None
            if self.zones:
                overlaps = [
                    int(cv2.countNonZero(zm[y : y + h, x : x + w])) for zm in self._zone_masks
                ]
                best = int(np.argmax(overlaps))
                if overlaps[best] == 0:
                    continue
                zone = self.zones[best].name
            box_thresh = thresh[y : y + h, x : x + w]
            fill = cv2.countNonZero(box_thresh) / float(w * h)
            mean_diff = float(cv2.mean(diff[y : y + h, x : x + w], box_thresh)[0])
            bbox = self._to_full(x, y, w, h)
            findings.append(
                Finding(
                    kind="motion",
                    confidence=float(min(1.0, max(0.0, fill))),
                    bbox=bbox,
                    zone=zone,
                    detail={
                        "area_fraction": bbox[2] * bbox[3] / float(self.width * self.height),
                        "mean_diff": mean_diff,
                    },
                )
            )
        return findings

    def _to_full(self, x: int, y: int, w: int, h: int) -> BBox:
        x0 = int(np.floor(x / self._sx))
        y0 = int(np.floor(y / self._sy))
        x1 = min(self.width, int(np.ceil((x + w) / self._sx)))
        y1 = min(self.height, int(np.ceil((y + h) / self._sy)))
        return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
