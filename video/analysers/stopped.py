"""Stopped-vehicle detection in no-stopping zones with a dual-rate background model.

Two running-average backgrounds are kept on a downscaled, blurred colour image (colour, not
luma: a blue car on grey asphalt can have the asphalt's luma, never its colour):

* a *fast* background (``fast_alpha`` ~0.2 per frame) that follows what the scene looked like
  over the last second or two, and
* a *slow* background (``slow_alpha`` ~0.002 per frame) that is the empty road.

A pixel that differs from the slow background but no longer from the fast one is *static
foreground*: something arrived and has stopped there. Moving traffic differs from both and
is ignored. This is the classic dual-background abandoned/stopped-object scheme (Porikli,
Ivanov & Haga, "Robust abandoned object detection using dual foregrounds", EURASIP 2008).

Within each configured zone, once the static-foreground area has exceeded ``min_fraction``
of the zone continuously for ``dwell_s`` seconds, every update reports a
``stopped_vehicle`` finding for that zone until the condition ends.
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
    MedianStart,
    ParamCheck,
    Zone,
    colour_difference,
    rasterise_polygons,
    small_bgr,
)

BOOT_S = 2.0
"""Seconds of frames whose median starts the slow background (nothing is reported meanwhile)."""


@dataclass(frozen=True, slots=True)
class StoppedVehicleParams:
    """Tuning of :class:`StoppedVehicleDetector`.

    Parameters
    ----------
    resize_height : int, default 180
        Analysis height in pixels (16..2160); width keeps the aspect ratio.
    blur_ksize : int, default 5
        Gaussian blur kernel size at analysis resolution; odd, 1..31 (1 disables).
    threshold : int, default 25
        Difference in any colour channel counted as "differs", 1..255.
    fast_alpha : float, default 0.2
        Learning rate of the fast background, ``0 < x < 1``.
    slow_alpha : float, default 0.002
        Learning rate of the slow (empty-scene) background, ``0 < x < fast_alpha``.
    min_fraction : float, default 0.1
        Static-foreground share of a zone's area that counts as "something stopped", ``0 < x <= 1``.
    dwell_s : float, default 10.0
        Seconds the condition must hold before it is reported, ``0 <= x <= 86400``.
    gap_s : float, default 1.0
        Seconds the condition may lapse (noise, a passing car occluding) without
        restarting the dwell clock, ``0 <= x <= 600``.
    global_change : float, default 0.5
        Share of the frame differing from the slow background above which the scene is
        treated as changed (lighting, camera moved): both backgrounds reset, ``0 < x <= 1``.
    max_static_share : float, default 0.1
        Share of the frame that is static foreground above which the view changed rather than
        a vehicle stopped (a car is about 1 % of a road camera's frame): both backgrounds
        reset, ``0 < x <= 1``.
    """

    resize_height: int = 180
    blur_ksize: int = 5
    threshold: int = 25
    fast_alpha: float = 0.2
    slow_alpha: float = 0.002
    min_fraction: float = 0.1
    dwell_s: float = 10.0
    gap_s: float = 1.0
    global_change: float = 0.5
    max_static_share: float = 0.1

    def __post_init__(self) -> None:
        c = ParamCheck(self)
        c.blob_basics()
        if c.number("fast_alpha", 0, 1, above=True, below=True):
            c.number("slow_alpha", 0, self.fast_alpha, above=True, below=True)
        c.number("min_fraction", 0, 1, above=True)
        c.number("dwell_s", 0, 86400)
        c.number("gap_s", 0, 600)
        c.number("max_static_share", 0, 1, above=True)
        c.done()


class StoppedVehicleDetector:
    """Per-camera stopped-vehicle detector; see the module docstring for the method.

    Parameters
    ----------
    width, height : int
        Full-resolution frame size; every frame passed to :meth:`update` must match.
    zones : sequence of Zone
        No-stopping zones (at least one); findings carry the zone name.
    params : StoppedVehicleParams, optional

    Notes
    -----
    State is two ``float32`` BGR backgrounds at analysis resolution plus, per zone, when the
    condition started and when it was last seen. The first frame (and any frame after a
    global change) only initialises the backgrounds.
    """

    def __init__(
        self,
        width: int,
        height: int,
        zones: Sequence[Zone],
        params: StoppedVehicleParams | None = None,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ConfigError(f"frame size must be positive, got {width}x{height}")
        self.params = params if params is not None else StoppedVehicleParams()
        self.width, self.height = int(width), int(height)
        self.zones = tuple(zones)
        if not self.zones:
            raise ConfigError("StoppedVehicleDetector needs at least one no-stopping zone")
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ConfigError(f"zone names must be unique, got {names}")
        rh = min(self.params.resize_height, self.height)
        self._size = (max(1, round(self.width * rh / self.height)), rh)  # (w, h) for cv2.resize
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        self._zone_masks = []
        for z in self.zones:
            m = rasterise_polygons(
                [[(x * self._sx, y * self._sy) for x, y in z.points]], sw, sh
            ).astype(np.uint8)
            if not m.any():
                raise ConfigError(f"zone {z.name!r} covers no pixel at analysis resolution")
            self._zone_masks.append(m * 255)
        self._zone_area = [max(1, cv2.countNonZero(m)) for m in self._zone_masks]
        self._kernel = np.ones((3, 3), np.uint8)
        self._fast: np.ndarray | None = None
        self._slow: np.ndarray | None = None
        self._boot: MedianStart | None = MedianStart(BOOT_S)
        self._since: list[float | None] = [None] * len(self.zones)
        self._last_seen: list[float | None] = [None] * len(self.zones)
        self.last_static_mask: np.ndarray | None = None
        """Static-foreground mask (``uint8`` 0/255, analysis resolution) of the last frame, for diagnostics."""

    def reset(self) -> None:
        """Forget both backgrounds and every dwell clock."""
        self._fast = self._slow = None
        self._boot = MedianStart(BOOT_S)
        self._since = [None] * len(self.zones)
        self._last_seen = [None] * len(self.zones)

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Analyse one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, monotonic.

        Returns
        -------
        list of Finding
            One ``kind="stopped_vehicle"`` finding per zone whose condition has held for
            ``dwell_s``: ``bbox`` of the largest static blob in the zone (full-resolution
            pixels), ``confidence`` = static share of the zone relative to twice
            ``min_fraction`` (capped at 1), ``detail`` with ``dwell_s`` (seconds held so far)
            and ``fraction`` (static share of the zone).

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` of the configured size.
        """
        p = self.params
        gray = small_bgr(
            frame, self.width, self.height, self._size, self.params.blur_ksize
        )  # colour, see the module doc
        if self._slow is None or self._fast is None:
            self._slow = gray.astype(np.float32)
            self._fast = gray.astype(np.float32)
            return []
        _, fg_slow = cv2.threshold(
            colour_difference(gray, self._slow), p.threshold, 255, cv2.THRESH_BINARY
        )
        _, fg_fast = cv2.threshold(
            colour_difference(gray, self._fast), p.threshold, 255, cv2.THRESH_BINARY
        )
        if cv2.countNonZero(fg_slow) / float(fg_slow.size) > p.global_change:
            # Lighting or camera change, not a vehicle: adopt the new scene at once.
            self.reset()
            self._slow = gray.astype(np.float32)
            self._fast = gray.astype(np.float32)
            return []
        cv2.accumulateWeighted(gray, self._fast, p.fast_alpha)
        cv2.accumulateWeighted(gray, self._slow, p.slow_alpha)
        if self._boot is not None:
            # The slow background restarts from the median of the first seconds: a vehicle in the
            # first frame would otherwise stay in it for minutes and, once gone, its "ghost"
            # (differs from slow, matches fast) would look like a stopped vehicle.
            start_bg = self._boot.add(gray, ts)
            if start_bg is None:
                return []
            self._slow = start_bg
            self._boot = None
        static = cv2.bitwise_and(fg_slow, cv2.bitwise_not(fg_fast))
        static = cv2.morphologyEx(static, cv2.MORPH_OPEN, self._kernel)
        static = cv2.dilate(static, self._kernel, iterations=1)
        self.last_static_mask = static
        if cv2.countNonZero(static) > p.max_static_share * static.size:
            # Much of the view changed and stayed so (camera turned a little, lens defocused or
            # misted): a stopped vehicle is a small part of the frame, this is tampering.
            self.reset()
            self._slow = gray.astype(np.float32)
            self._fast = gray.astype(np.float32)
            return []

        findings: list[Finding] = []
        for i, zone in enumerate(self.zones):
            in_zone = cv2.bitwise_and(static, self._zone_masks[i])
            fraction = cv2.countNonZero(in_zone) / float(self._zone_area[i])
            if fraction > p.min_fraction:
                if self._since[i] is None:
                    self._since[i] = ts
                self._last_seen[i] = ts
            elif self._last_seen[i] is not None and ts - self._last_seen[i] > p.gap_s + 1e-6:
                self._since[i] = self._last_seen[i] = None
            since, seen = self._since[i], self._last_seen[i]
            if since is None or seen != ts:
                continue  # not holding now (or only within the grace gap): report nothing
            held = ts - since
            if held + 1e-6 < p.dwell_s:
                continue
            bbox = self._largest_blob(in_zone)
            if bbox is None:
                continue
            findings.append(
                Finding(
                    kind="stopped_vehicle",
                    confidence=float(min(1.0, fraction / (2.0 * p.min_fraction))),
                    bbox=bbox,
                    zone=zone.name,
                    detail={"dwell_s": float(held), "fraction": float(fraction)},
                )
            )
        return findings

    def _largest_blob(self, mask: np.ndarray) -> BBox | None:
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return None
        j = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = (int(v) for v in stats[j, :4])
        x0 = int(np.floor(x / self._sx))
        y0 = int(np.floor(y / self._sy))
        x1 = min(self.width, int(np.ceil((x + w) / self._sx)))
        y1 = min(self.height, int(np.ceil((y + h) / self._sy)))
        return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
