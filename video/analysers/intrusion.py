"""Intrusion: a person-shaped moving blob whose feet stand in a zone, optionally only in the dark.

Foreground is the largest per-channel difference against a selectively updated running-average
background of the downscaled, blurred colour image (started from the median of the first two
seconds; time-based rates, so the result does not depend on the frame rate; colour, because a
blue jacket on green grass can have the grass's luma): fast where nothing is foreground, slow
under foreground, so someone standing still for a while is not learned into the background at
once. Foreground is dilated once (to join the
head, torso and legs of a small figure) and split into connected blobs.

A blob is *person-like* when its height is between ``min_height`` and ``max_height`` of the
frame, its height/width ratio between ``min_aspect`` and ``max_aspect`` (an upright person is
2-4 times taller than wide; vehicles, smoke plumes and rain streaks are not) and it fills at
least ``min_fill`` of its box. It belongs to the zone that contains its bottom centre, the
feet, as Frigate assigns objects to zones: a person walking *behind* a zone's polygon in the
image is not in it. It must also be going somewhere: the feet of the largest such blob must
have moved by a fifth of its height within the last ``on_s`` (at least a second) before a start
is reported, so that static person-shaped changes (a lamp post smeared by a defocused lens, a
ghost) are not reported. With ``dark_only`` the condition also needs a dark frame (mean luma at
or below ``dark_luma_max``): the "person on site at night" rule without a wall clock.

Each zone's condition is debounced (``on_s`` / ``off_s``); while active, every update emits
one ``kind="intrusion"`` finding for the zone with the largest person-like blob's box, with
``detail["present"]`` False while the debounce waits out ``off_s`` (as smoke and fire do).
A frame where most pixels changed (lights switched, camera moved) resets the background and
counts as "nobody seen".
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from pydantic import Field, model_validator

from farsight.errors import ConfigError
from video.analysers.base import BBox, Debounce, Finding, MedianStart, Zone, small_bgr, unique_zones
from video.analysers.foreground import (
    Blob,
    analysis_size,
    blend_background,
    connected_blobs,
    foreground_mask,
    to_full_box,
    zone_masks,
)
from video.analysers.params import (
    AdaptiveBackground,
    Debounced,
    ForegroundParams,
    bg_tau_field,
    blur_ksize_field,
    fg_tau_field,
    opt_in_field,
    ordered,
    threshold_field,
)

INTRUSION = "intrusion"
BOOT_S = 2.0
"""Seconds of frames whose median starts the background (nothing is reported meanwhile)."""

Trail = collections.deque[tuple[float, float, float, float]]
"""Recent ``(ts, feet x, feet y, height)`` of the largest person-like blob in a zone."""


class IntrusionParams(ForegroundParams, AdaptiveBackground, Debounced):
    """Tuning of :class:`IntrusionDetector` (``analysers.intrusion`` in the camera YAML; every
    zone of the camera is watched, the whole frame without zones).

    Besides the shared fields (see :mod:`video.analysers.params`): ``threshold`` defaults to
    14, lower than motion's 25, since at night a dimly lit figure differs from the dark ground
    by 15-30 levels; the background follows in 4 s away from foreground and 120 s under it.
    """

    enabled: bool = opt_in_field("the zones say where nobody should be.")
    blur_ksize: int = blur_ksize_field(3)
    threshold: int = threshold_field(14)
    bg_tau_s: float = bg_tau_field(4.0)
    fg_tau_s: float = fg_tau_field(120.0)
    min_height: float = Field(
        0.05,
        title="Minimum height",
        description="Smallest person height as a fraction of the frame height.",
        gt=0,
        lt=1,
    )
    max_height: float = Field(
        0.35,
        title="Maximum height",
        description="Largest person height as a fraction of the frame height.",
        gt=0,
        le=1,
    )
    min_aspect: float = Field(
        1.4,
        title="Minimum aspect",
        description="Smallest height/width of a standing person's blob.",
        gt=0,
        le=50,
    )
    max_aspect: float = Field(
        6.0,
        title="Maximum aspect",
        description="Largest height/width of a standing person's blob.",
        gt=0,
        le=50,
    )
    min_fill: float = Field(
        0.25,
        title="Minimum fill",
        description="Foreground share of the blob's box (a sparse outline is no person).",
        ge=0,
        le=1,
    )
    dark_only: bool = Field(
        False,
        title="Only in the dark",
        description="Report only when the frame is dark (night-time intrusion).",
    )
    dark_luma_max: float = Field(
        70.0,
        title="Dark level",
        description="Mean frame luma at or below which the frame counts as dark.",
        ge=0,
        le=255,
    )

    @model_validator(mode="after")
    def _ranges(self) -> IntrusionParams:
        ordered("min_height", self.min_height, "max_height", self.max_height)
        ordered("min_aspect", self.min_aspect, "max_aspect", self.max_aspect)
        return self


# --------------------------------------------------------------------------- pure steps


def person_like(blob: Blob, frame_height: int, p: IntrusionParams) -> bool:
    """Whether ``blob`` (analysis pixels, frame ``frame_height`` tall) has a standing person's
    shape."""
    rel_h = blob.h / float(frame_height)
    aspect = blob.h / float(max(1, blob.w))
    fill = blob.area / float(max(1, blob.w * blob.h))
    return (
        p.min_height <= rel_h <= p.max_height
        and p.min_aspect <= aspect <= p.max_aspect
        and fill >= p.min_fill
    )


def feet(blob: Blob, size: tuple[int, int]) -> tuple[int, int]:
    """Pixel of the blob's feet in a ``size`` (w, h) image: the bottom centre before the blob's
    one-pixel dilation."""
    sw, sh = size
    return min(sw - 1, blob.x + blob.w // 2), min(sh - 1, max(blob.y, blob.y + blob.h - 2))


def stands_in(blob: Blob, zone: np.ndarray | None, size: tuple[int, int]) -> bool:
    """Whether the blob's feet stand in ``zone`` (bool mask; None: the whole frame)."""
    if zone is None:
        return True
    fx, fy = feet(blob, size)
    return bool(zone[fy, fx])


def walked(trail: Trail) -> bool:
    """Whether the feet moved a fifth of the figure's height over ``trail``: a person gets
    somewhere, static person-shaped changes (a lamp post smeared by defocus or rain on the lens,
    a ghost) never do."""
    if len(trail) < 2:
        return False
    (_, x0, y0, _), (_, x1, y1, h) = trail[0], trail[-1]
    return math.hypot(x1 - x0, y1 - y0) >= 0.2 * h


def shape_confidence(blob: Blob, p: IntrusionParams) -> float:
    """How comfortably the blob's aspect sits inside the aspect band (log scale), in [0.5, 1]."""
    aspect = blob.h / float(max(1, blob.w))
    lo, hi = math.log(p.min_aspect), math.log(p.max_aspect)
    mid = 1.0 - abs(math.log(aspect) - (lo + hi) / 2) / ((hi - lo) / 2)
    return float(min(1.0, max(0.5, 0.5 + 0.5 * mid)))


def mean_luma(small: np.ndarray) -> float:
    """Mean grey level of a BGR image."""
    return float(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).mean())


# --------------------------------------------------------------------------- detector


class IntrusionDetector:
    """Per-camera person-in-zone detector; see the module docstring for the method.

    Parameters
    ----------
    width, height : int
        Full-resolution frame size; every frame passed to :meth:`update` must match.
    zones : sequence of Zone, optional
        Zones watched; none means the whole frame, reported with ``zone=None``.
    params : IntrusionParams, optional

    Notes
    -----
    State: one ``float32`` BGR background at analysis resolution (690 kB at 320x180) and a
    debounce per zone.
    """

    def __init__(
        self,
        width: int,
        height: int,
        zones: Sequence[Zone] = (),
        params: IntrusionParams | None = None,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ConfigError(f"frame size must be positive, got {width}x{height}")
        self.params = params if params is not None else IntrusionParams()
        self.width, self.height = int(width), int(height)
        self.zones = unique_zones(zones)
        self._size = analysis_size(self.width, self.height, self.params.resize_height)
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        self._zone_masks: list[np.ndarray | None] = [
            *zone_masks(self.zones, self._sx, self._sy, self._size)
        ] or [None]
        p = self.params
        self._debounce = [Debounce(p.on_s, p.off_s) for _ in self._zone_masks]
        self._last: list[tuple[BBox, float, dict[str, Any]] | None] = [None] * len(self._zone_masks)
        self._trails: list[Trail] = [collections.deque() for _ in self._zone_masks]
        self._kernel = np.ones((3, 3), np.uint8)
        # A 2x2 opening removes one-pixel lines (rain streaks, noise) and keeps limbs two
        # pixels wide.
        self._open = np.ones((2, 2), np.uint8)
        self._bg: np.ndarray | None = None
        self._last_ts: float | None = None
        self._boot: MedianStart | None = MedianStart(BOOT_S)
        self.last_blobs: list[Blob] = []
        """Person-like blobs of the most recent frame (analysis pixels), for diagnostics."""

    def reset(self) -> None:
        """Forget the background (after a gap in the stream); debounces keep running."""
        self._bg = None
        self._last_ts = None
        self._boot = MedianStart(BOOT_S)

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Look for people in the zones in one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing.

        Returns
        -------
        list of Finding
            One ``intrusion`` finding per active zone: ``bbox`` of the largest person-like
            blob in full-resolution pixels, ``confidence`` from how far the blob is from the
            shape limits, ``detail`` with ``present``, ``height_frac``, ``aspect`` and ``dark``.

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` of the configured size.
        """
        p = self.params
        small = small_bgr(frame, self.width, self.height, self._size, p.blur_ksize)
        if self._bg is None:
            self._bg = small.astype(np.float32)
            self._last_ts = ts
            return self._report([], ts, dark=False)
        dt = max(0.0, ts - (self._last_ts if self._last_ts is not None else ts))
        self._last_ts = ts
        fg = foreground_mask(
            small, self._bg, p.threshold, p.global_change, self._open, self._kernel
        )
        if fg is None:
            self._bg = small.astype(np.float32)  # lights or camera changed: adopt the new view
            self._boot = MedianStart(BOOT_S)
            return self._report([], ts, dark=False)
        self._bg = blend_background(self._bg, small, fg > 0, dt, p.bg_tau_s, p.fg_tau_s)
        if self._boot is not None:
            # Start from the median of the first seconds, so that someone (or a vehicle) in the
            # first frame leaves no ghost behind; nothing is reported until then.
            start_bg = self._boot.add(small, ts)
            if start_bg is None:
                return self._report([], ts, dark=False)
            self._bg = start_bg
            self._boot = None
        dark = mean_luma(small) <= p.dark_luma_max
        sh = self._size[1]
        self.last_blobs = [b for b in connected_blobs(fg) if person_like(b, sh, p)]
        return self._report(self.last_blobs, ts, dark)

    def _report(self, people: list[Blob], ts: float, dark: bool) -> list[Finding]:
        p = self.params
        watching = not p.dark_only or dark
        out = []
        for i, zmask in enumerate(self._zone_masks):
            inside = [b for b in people if stands_in(b, zmask, self._size)] if watching else []
            finding = self._zone_step(i, inside, ts, dark)
            if finding is not None:
                out.append(finding)
        return out

    def _zone_step(self, i: int, inside: list[Blob], ts: float, dark: bool) -> Finding | None:
        """Advance zone ``i``'s trail and debounce with the people standing in it; its finding
        while active."""
        p = self.params
        trail = self._trails[i]
        b = max(inside, key=lambda b: b.area) if inside else None
        if b is not None:
            trail.append((ts, b.x + b.w / 2.0, b.y + b.h - 2.0, float(b.h)))
        while trail and trail[0][0] < ts - max(p.on_s, 1.0) - 1e-6:
            trail.popleft()
        # A person must have walked in the last on_s (at least 1 s) before a start is reported;
        # once reported, someone standing still stays reported.
        present = b is not None and (walked(trail) or self._debounce[i].active)
        self._debounce[i].update(present, ts)
        if present and b is not None:
            detail = {
                "height_frac": round(b.h / self._size[1], 4),
                "aspect": round(b.h / float(max(1, b.w)), 3),
                "dark": dark,
            }
            self._last[i] = (self._to_full(b), shape_confidence(b, p), detail)
        last = self._last[i]
        if not (self._debounce[i].active and last is not None):
            return None
        bbox, conf, detail = last
        zone = self.zones[i].name if self.zones else None
        return Finding(INTRUSION, conf, bbox, zone, {"present": present, **detail})

    def _to_full(self, b: Blob) -> BBox:
        return to_full_box((b.x, b.y, b.w, b.h), self._sx, self._sy, self.width, self.height)

    @property
    def active(self) -> bool:
        """Whether an intrusion is currently reported in any zone."""
        return any(d.active for d in self._debounce)
