"""Intrusion: a person-shaped moving blob whose feet stand in a zone, optionally only in the dark.

Foreground is the largest per-channel difference against a selectively updated running-average
background of the downscaled, blurred colour image (started from the median of the first two seconds; time-based rates, so the result does not
depend on the frame rate; colour, because a blue jacket on green grass can have the grass's
luma): fast where nothing is foreground, slow under foreground, so someone standing still
for a while is not learned into the background at once. Foreground is dilated once (to join the
head, torso and legs of a small figure) and split into connected blobs.

A blob is *person-like* when its height is between ``min_height`` and ``max_height`` of the
frame, its height/width ratio between ``min_aspect`` and ``max_aspect`` (an upright person is
2-4 times taller than wide; vehicles, smoke plumes and rain streaks are not) and it fills at
least ``min_fill`` of its box. It belongs to the zone that contains its bottom centre, the
feet, as Frigate assigns objects to zones: a person walking *behind* a zone's polygon in the
image is not in it. It must also be going somewhere: the feet of the largest such blob must have moved by a fifth of
its height within the last ``on_s`` (at least a second) before a start is reported, so that
static person-shaped changes (a lamp post smeared by a defocused lens, a ghost) are not
reported. With ``dark_only`` the condition also needs a dark frame (mean luma at or
below ``dark_luma_max``): the "person on site at night" rule without a wall clock.

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
from dataclasses import dataclass

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import (
    BBox,
    Debounce,
    Finding,
    MedianStart,
    ParamCheck,
    Zone,
    colour_difference,
    rasterise_polygons,
    small_bgr,
)

INTRUSION = "intrusion"
BOOT_S = 2.0
"""Seconds of frames whose median starts the background (nothing is reported meanwhile)."""


@dataclass(frozen=True, slots=True)
class IntrusionParams:
    """Tuning of :class:`IntrusionDetector`.

    Parameters
    ----------
    resize_height : int, default 180
        Analysis height in pixels (16..2160); width keeps the aspect ratio.
    blur_ksize : int, default 3
        Gaussian blur kernel at analysis resolution; odd, 1..31 (1 disables).
    threshold : int, default 14
        Difference in any colour channel counted as foreground (1..255). Lower than motion's
        25: at night a dimly lit figure differs from the dark ground by 15-30 levels.
    bg_tau_s : float, default 4.0
        Background time constant where nothing is foreground, seconds (0.1..3600).
    fg_tau_s : float, default 120.0
        Background time constant under foreground, seconds (>= bg_tau_s, ..36000).
    min_height, max_height : float, default 0.05, 0.35
        Blob height as a fraction of the frame height (0 < min < max <= 1).
    min_aspect, max_aspect : float, default 1.4, 6.0
        Blob height / width (0 < min < max <= 50).
    min_fill : float, default 0.25
        Foreground share of the blob's box (0..1).
    on_s, off_s : float, default 1.0, 2.0
        Debounce of each zone's condition, seconds (0..600).
    dark_only : bool, default False
        Report only when the frame is dark (night).
    dark_luma_max : float, default 70.0
        Mean frame luma at or below which the frame is dark (0..255).
    global_change : float, default 0.5
        Foreground share of the frame above which the scene is treated as changed (0 < x <= 1).
    """

    resize_height: int = 180
    blur_ksize: int = 3
    threshold: int = 14
    bg_tau_s: float = 4.0
    fg_tau_s: float = 120.0
    min_height: float = 0.05
    max_height: float = 0.35
    min_aspect: float = 1.4
    max_aspect: float = 6.0
    min_fill: float = 0.25
    on_s: float = 1.0
    off_s: float = 2.0
    dark_only: bool = False
    dark_luma_max: float = 70.0
    global_change: float = 0.5

    def __post_init__(self) -> None:
        c = ParamCheck(self)
        c.blob_basics()
        c.ordered("bg_tau_s", "fg_tau_s", 0.1, 36000, strict=False)
        c.number("bg_tau_s", 0.1, 3600)
        c.ordered("min_height", "max_height", 0, 1)
        c.ordered("min_aspect", "max_aspect", 0, 50)
        c.number("min_height", 0, 1, above=True)
        c.number("min_fill", 0, 1)
        c.number("on_s", 0, 600)
        c.number("off_s", 0, 600)
        c.flag("dark_only")
        c.number("dark_luma_max", 0, 255)
        c.done()


@dataclass(frozen=True, slots=True)
class Blob:
    """A foreground blob at analysis resolution: box ``(x, y, w, h)`` and pixel count."""

    x: int
    y: int
    w: int
    h: int
    area: int


def person_like(blob: Blob, frame_height: int, p: IntrusionParams) -> bool:
    """Whether ``blob`` (analysis pixels, frame ``frame_height`` tall) has a standing person's shape."""
    rel_h = blob.h / float(frame_height)
    aspect = blob.h / float(max(1, blob.w))
    fill = blob.area / float(max(1, blob.w * blob.h))
    return (
        p.min_height <= rel_h <= p.max_height
        and p.min_aspect <= aspect <= p.max_aspect
        and fill >= p.min_fill
    )


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
        self.zones = tuple(zones)
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ConfigError(f"zone names must be unique, got {names}")
        rh = min(self.params.resize_height, self.height)
        self._size = (max(1, round(self.width * rh / self.height)), rh)
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        self._zone_masks: list[np.ndarray | None] = []
        for z in self.zones:
            m = rasterise_polygons([[(x * self._sx, y * self._sy) for x, y in z.points]], sw, sh)
            if not m.any():
                raise ConfigError(f"zone {z.name!r} covers no pixel at analysis resolution")
            self._zone_masks.append(m)
        if not self._zone_masks:
            self._zone_masks = [None]
        p = self.params
        self._debounce = [Debounce(p.on_s, p.off_s) for _ in self._zone_masks]
        self._last: list[tuple[BBox, float, dict] | None] = [None] * len(self._zone_masks)
        self._trails: list[collections.deque[tuple[float, float, float, float]]] = [
            collections.deque() for _ in self._zone_masks
        ]
        self._kernel = np.ones((3, 3), np.uint8)
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
        diff = colour_difference(small, self._bg)
        fg = (diff >= p.threshold).astype(np.uint8)
        if cv2.countNonZero(fg) > p.global_change * fg.size:
            self._bg = small.astype(np.float32)  # lights or camera changed: adopt the new view
            self._boot = MedianStart(BOOT_S)
            return self._report([], ts, dark=False)
        # A 2x2 opening removes one-pixel lines (rain streaks, noise) and keeps limbs two pixels wide.
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._open)
        fg = cv2.dilate(fg, self._kernel, iterations=1)
        k_bg = 1.0 - math.exp(-dt / p.bg_tau_s)
        k_fg = 1.0 - math.exp(-dt / p.fg_tau_s)
        k = np.where(fg > 0, np.float32(k_fg), np.float32(k_bg))[..., None]
        self._bg += k * (small.astype(np.float32) - self._bg)
        if self._boot is not None:
            # Start from the median of the first seconds, so that someone (or a vehicle) in the
            # first frame leaves no ghost behind; nothing is reported until then.
            start_bg = self._boot.add(small, ts)
            if start_bg is None:
                return self._report([], ts, dark=False)
            self._bg = start_bg
            self._boot = None
        dark = float(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).mean()) <= p.dark_luma_max
        n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        sh = self._size[1]
        blobs = [Blob(*(int(v) for v in stats[j, :5])) for j in range(1, n)]
        self.last_blobs = [b for b in blobs if person_like(b, sh, p)]
        return self._report(self.last_blobs, ts, dark)

    def _report(self, people: list[Blob], ts: float, dark: bool) -> list[Finding]:
        p = self.params
        sw, sh = self._size
        out: list[Finding] = []
        for i, zmask in enumerate(self._zone_masks):
            inside = []
            if not p.dark_only or dark:
                for b in people:
                    # Feet: the bottom row of the blob before its one-pixel dilation.
                    fx, fy = min(sw - 1, b.x + b.w // 2), min(sh - 1, max(b.y, b.y + b.h - 2))
                    if zmask is None or zmask[fy, fx]:
                        inside.append(b)
            trail = self._trails[i]
            if inside:
                b = max(inside, key=lambda b: b.area)
                trail.append((ts, b.x + b.w / 2.0, b.y + b.h - 2.0, float(b.h)))
            while trail and trail[0][0] < ts - max(p.on_s, 1.0) - 1e-6:
                trail.popleft()
            # A person gets somewhere: the feet must have moved a fifth of the figure's height in
            # the last on_s (at least 1 s) before a start is reported. Static person-shaped
            # changes (a lamp post smeared by defocus or rain on the lens, a ghost) never do;
            # once reported, someone standing still stays reported.
            moving = (
                len(trail) >= 2
                and math.hypot(trail[-1][1] - trail[0][1], trail[-1][2] - trail[0][2])
                >= 0.2 * trail[-1][3]
            )
            present = bool(inside) and (moving or self._debounce[i].active)
            self._debounce[i].update(present, ts)
            if present:
                aspect = b.h / float(max(1, b.w))
                # Confidence: how comfortably the shape sits inside the aspect band (log scale).
                lo, hi = math.log(p.min_aspect), math.log(p.max_aspect)
                mid = 1.0 - abs(math.log(aspect) - (lo + hi) / 2) / ((hi - lo) / 2)
                conf = float(min(1.0, max(0.5, 0.5 + 0.5 * mid)))
                detail = {
                    "height_frac": round(b.h / sh, 4),
                    "aspect": round(aspect, 3),
                    "dark": dark,
                }
                self._last[i] = (self._to_full(b), conf, detail)
            if self._debounce[i].active and self._last[i] is not None:
                bbox, conf, detail = self._last[i]
                zone = self.zones[i].name if self.zones else None
                out.append(Finding(INTRUSION, conf, bbox, zone, {"present": present, **detail}))
        return out

    def _to_full(self, b: Blob) -> BBox:
        x0, y0 = int(math.floor(b.x / self._sx)), int(math.floor(b.y / self._sy))
        x1 = min(self.width, int(math.ceil((b.x + b.w) / self._sx)))
        y1 = min(self.height, int(math.ceil((b.y + b.h) / self._sy)))
        return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))

    @property
    def active(self) -> bool:
        """Whether an intrusion is currently reported in any zone."""
        return any(d.active for d in self._debounce)
