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

import cv2
import numpy as np
from pydantic import Field, model_validator

from farsight.errors import ConfigError
from video.analysers.base import (
    BBox,
    Finding,
    MedianStart,
    Zone,
    colour_difference,
    small_bgr,
    unique_zones,
)
from video.analysers.foreground import (
    AnalysisBox,
    analysis_size,
    connected_blobs,
    to_full_box,
    zone_masks,
)
from video.analysers.params import ForegroundParams, opt_in_field, ordered

BOOT_S = 2.0
"""Seconds of frames whose median starts the slow background (nothing is reported meanwhile)."""


class StoppedVehicleParams(ForegroundParams):
    """Tuning of :class:`StoppedVehicleDetector` (``analysers.stopped_vehicle`` in the camera
    YAML; every zone of the camera is a no-stopping zone).

    Besides the shared ``resize_height``, ``blur_ksize``, ``threshold`` (in any colour channel)
    and ``global_change`` (share of the frame differing from the slow background, see
    :mod:`video.analysers.params`).
    """

    enabled: bool = opt_in_field("needs the camera's no-stopping zones.")
    fast_alpha: float = Field(
        0.2,
        title="Fast rate",
        description="Learning rate per frame of the fast background (the last second or two).",
        gt=0,
        lt=1,
    )
    slow_alpha: float = Field(
        0.002,
        title="Slow rate",
        description="Learning rate per frame of the slow, empty-scene background (< fast_alpha).",
        gt=0,
        lt=1,
    )
    min_fraction: float = Field(
        0.1,
        title="Zone share",
        description="Static share of a zone that counts as a stopped vehicle.",
        gt=0,
        le=1,
    )
    dwell_s: float = Field(
        10.0,
        title="Dwell",
        description="Seconds a vehicle must stay before it is reported.",
        ge=0,
        le=86_400,
    )
    gap_s: float = Field(
        1.0,
        title="Gap tolerance",
        description=(
            "Seconds the condition may lapse (noise, a passing car occluding) without "
            "restarting the dwell."
        ),
        ge=0,
        le=600,
    )
    max_static_share: float = Field(
        0.1,
        title="Static share limit",
        description=(
            "Static share of the frame above which the view changed rather than a vehicle "
            "stopped (a car is about 1 % of a road camera's frame): both backgrounds reset."
        ),
        gt=0,
        le=1,
    )

    @model_validator(mode="after")
    def _slow_below_fast(self) -> StoppedVehicleParams:
        ordered("slow_alpha", self.slow_alpha, "fast_alpha", self.fast_alpha)
        return self


# --------------------------------------------------------------------------- pure steps


def differs(image: np.ndarray, background: np.ndarray, threshold: float) -> np.ndarray:
    """``uint8`` 0/255 mask of pixels whose largest colour-channel difference from the
    ``float32`` background exceeds ``threshold``."""
    _, mask = cv2.threshold(colour_difference(image, background), threshold, 255, cv2.THRESH_BINARY)
    return np.asarray(mask)


def static_foreground(fg_slow: np.ndarray, fg_fast: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Pixels that differ from the slow background but no longer from the fast one (something
    arrived and stopped), opened and then dilated once by ``kernel``; ``uint8`` 0/255."""
    static = cv2.bitwise_and(fg_slow, cv2.bitwise_not(fg_fast))
    static = cv2.morphologyEx(static, cv2.MORPH_OPEN, kernel)
    return np.asarray(cv2.dilate(static, kernel, iterations=1))


def dwell_step(
    since: float | None, seen: float | None, holding: bool, ts: float, gap_s: float
) -> tuple[float | None, float | None]:
    """Advance one zone's dwell clock: ``(since, last seen)`` after observing ``holding`` at
    ``ts``; a lapse longer than ``gap_s`` restarts it."""
    if holding:
        return (ts if since is None else since), ts
    if seen is not None and ts - seen > gap_s + 1e-6:
        return None, None
    return since, seen


def largest_blob(mask: np.ndarray) -> AnalysisBox | None:
    """Box of the largest 8-connected region of a ``uint8`` mask (None when empty)."""
    blobs = connected_blobs(mask)
    if not blobs:
        return None
    b = blobs[int(np.argmax([b.area for b in blobs]))]
    return (b.x, b.y, b.w, b.h)


# --------------------------------------------------------------------------- detector


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
        self.zones = unique_zones(zones)
        if not self.zones:
            raise ConfigError("StoppedVehicleDetector needs at least one no-stopping zone")
        self._size = analysis_size(self.width, self.height, self.params.resize_height)
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        self._zone_masks = [
            m.astype(np.uint8) * 255 for m in zone_masks(self.zones, self._sx, self._sy, self._size)
        ]
        self._zone_area = [max(1, cv2.countNonZero(m)) for m in self._zone_masks]
        self._kernel = np.ones((3, 3), np.uint8)
        self._fast: np.ndarray | None = None
        self._slow: np.ndarray | None = None
        self._boot: MedianStart | None = MedianStart(BOOT_S)
        self._since: list[float | None] = [None] * len(self.zones)
        self._last_seen: list[float | None] = [None] * len(self.zones)
        self.last_static_mask: np.ndarray | None = None
        """Static-foreground mask (``uint8`` 0/255, analysis resolution) of the last frame, for
        diagnostics."""

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
        small = small_bgr(frame, self.width, self.height, self._size, p.blur_ksize)  # colour
        if self._slow is None or self._fast is None:
            self._adopt(small)
            return []
        fg_slow = differs(small, self._slow, p.threshold)
        fg_fast = differs(small, self._fast, p.threshold)
        if cv2.countNonZero(fg_slow) / float(fg_slow.size) > p.global_change:
            return self._adopt(small)  # lighting or camera change, not a vehicle
        cv2.accumulateWeighted(small, self._fast, p.fast_alpha)
        cv2.accumulateWeighted(small, self._slow, p.slow_alpha)
        if self._boot is not None:
            # The slow background restarts from the median of the first seconds: a vehicle in the
            # first frame would otherwise stay in it for minutes and, once gone, its "ghost"
            # (differs from slow, matches fast) would look like a stopped vehicle.
            start_bg = self._boot.add(small, ts)
            if start_bg is None:
                return []
            self._slow = start_bg
            self._boot = None
        static = static_foreground(fg_slow, fg_fast, self._kernel)
        self.last_static_mask = static
        if cv2.countNonZero(static) > p.max_static_share * static.size:
            # Much of the view changed and stayed so (camera turned a little, lens defocused or
            # misted): a stopped vehicle is a small part of the frame, this is tampering.
            return self._adopt(small)
        findings = [self._zone_step(i, static, ts) for i in range(len(self.zones))]
        return [f for f in findings if f is not None]

    def _adopt(self, small: np.ndarray) -> list[Finding]:
        """Forget everything and start both backgrounds from this frame; report nothing."""
        self.reset()
        self._slow = small.astype(np.float32)
        self._fast = small.astype(np.float32)
        return []

    def _zone_step(self, i: int, static: np.ndarray, ts: float) -> Finding | None:
        """Advance zone ``i``'s dwell clock; its finding once the vehicle has stayed dwell_s."""
        p = self.params
        in_zone = cv2.bitwise_and(static, self._zone_masks[i])
        fraction = cv2.countNonZero(in_zone) / float(self._zone_area[i])
        since, seen = dwell_step(
            self._since[i], self._last_seen[i], fraction > p.min_fraction, ts, p.gap_s
        )
        self._since[i], self._last_seen[i] = since, seen
        if since is None or seen != ts:
            return None  # not holding now (or only within the grace gap): report nothing
        held = ts - since
        box = largest_blob(in_zone) if held + 1e-6 >= p.dwell_s else None
        if box is None:
            return None
        return Finding(
            kind="stopped_vehicle",
            confidence=float(min(1.0, fraction / (2.0 * p.min_fraction))),
            bbox=self._to_full(box),
            zone=self.zones[i].name,
            detail={"dwell_s": float(held), "fraction": float(fraction)},
        )

    def _to_full(self, box: AnalysisBox) -> BBox:
        return to_full_box(box, self._sx, self._sy, self.width, self.height)
