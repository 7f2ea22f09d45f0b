"""Counting vehicles across a line: moving blobs tracked from frame to frame, counted per direction.

Foreground is the largest per-channel difference against a selectively updated running-average
background of the downscaled, blurred colour image (as in :mod:`video.analysers.intrusion`). Connected blobs
between ``min_area`` and ``max_area`` of the frame and no taller than ``max_aspect`` times their
width (upright people are) are the candidates. Each is associated with the nearest existing
track, greedily in order of distance from the track's predicted position (constant velocity),
the usual nearest-neighbour centroid tracker. The gate is ``max_speed`` frame widths per second
times the time since the track was last seen while a track has no velocity yet, then a
twentieth of the frame width plus half the predicted travel, so that a track whose vehicle
left the frame cannot jump to the next vehicle entering it; unmatched blobs start tracks and tracks unseen for
``max_gap_s`` are dropped.

A track is counted once, when the segment between its previous and its new centroid properly
intersects the counting line: ``forward`` when it moves to the side the normal
``(y1 - y0, x0 - x1)`` of the line ``(x0, y0) -> (x1, y1)`` points to (for a line drawn top to
bottom: left to right), else ``backward``. Each count emits one ``kind="vehicle_crossing"``
finding (an event, not a level) with the direction and the running counts in ``detail``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import BBox, Finding, ParamCheck, colour_difference, small_bgr

VEHICLE_CROSSING = "vehicle_crossing"

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class LineCountParams:
    """Tuning of :class:`LineCounter`.

    Parameters
    ----------
    resize_height : int, default 180
        Analysis height in pixels (16..2160); width keeps the aspect ratio.
    blur_ksize : int, default 3
        Gaussian blur kernel at analysis resolution; odd, 1..31 (1 disables).
    threshold : int, default 14
        Difference in any colour channel counted as foreground (1..255).
    bg_tau_s : float, default 1.5
        Background time constant where nothing is foreground, seconds (0.1..3600).
    fg_tau_s : float, default 3.0
        Background time constant under foreground, seconds (>= bg_tau_s, ..36000). Short: only
        moving things are counted, and a vehicle that was in the first frame must not leave a
        lasting "ghost" blob in the background that captures other tracks.
    min_area, max_area : float, default 0.0015, 0.25
        Blob pixel count as a fraction of the frame (0 < min < max <= 1).
    max_aspect : float, default 1.5
        Largest blob height / width counted (0.1..50): keeps walking people out of the count.
    max_speed : float, default 1.0
        Fastest plausible motion in frame widths per second (gate of the association).
    max_gap_s : float, default 1.0
        Seconds a track survives unseen (0..60).
    global_change : float, default 0.5
        Foreground share of the frame above which the scene is treated as changed (0 < x <= 1).
    """

    resize_height: int = 180
    blur_ksize: int = 3
    threshold: int = 14
    bg_tau_s: float = 1.5
    fg_tau_s: float = 3.0
    min_area: float = 0.0015
    max_area: float = 0.25
    max_aspect: float = 1.5
    max_speed: float = 1.0
    max_gap_s: float = 1.0
    global_change: float = 0.5

    def __post_init__(self) -> None:
        c = ParamCheck(self)
        c.blob_basics()
        c.ordered("bg_tau_s", "fg_tau_s", 0.1, 36000, strict=False)
        c.number("bg_tau_s", 0.1, 3600)
        c.ordered("min_area", "max_area", 0, 1)
        c.number("min_area", 0, 1, above=True)
        c.number("max_aspect", 0.1, 50)
        c.number("max_speed", 0.01, 100)
        c.number("max_gap_s", 0, 60)
        c.done()


def check_line(line: object) -> tuple[Point, Point]:
    """Validate a counting line ``((x0, y0), (x1, y1))`` in pixels; return it as floats.

    Raises
    ------
    ConfigError
        Not two finite, non-negative points, or both points equal.
    """
    try:
        (x0, y0), (x1, y1) = ((float(x), float(y)) for x, y in line)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"line must be two (x, y) points, got {line!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in (x0, y0, x1, y1)):
        raise ConfigError(f"line points must be finite pixels >= 0, got {line!r}")
    if (x0, y0) == (x1, y1):
        raise ConfigError(f"line needs two distinct points, got {line!r}")
    return (x0, y0), (x1, y1)


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def crossing_direction(p: Point, q: Point, a: Point, b: Point) -> int:
    """Direction in which the move ``p -> q`` crosses the segment ``a -> b``.

    Returns
    -------
    int
        ``1`` forward (towards the normal ``(by - ay, ax - bx)``), ``-1`` backward, ``0`` when the
        segments do not properly intersect (touching an end point does not count, so a centroid
        that stops exactly on the line is counted once, when it leaves).
    """
    d1, d2 = _cross(a, b, p), _cross(a, b, q)
    d3, d4 = _cross(p, q, a), _cross(p, q, b)
    if not (d1 * d2 < 0 and d3 * d4 < 0):
        return 0
    nx, ny = b[1] - a[1], a[0] - b[0]
    return 1 if (q[0] - p[0]) * nx + (q[1] - p[1]) * ny > 0 else -1


@dataclass(slots=True)
class _Track:
    id: int
    x: float
    y: float
    ts: float
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1
    counted: bool = False
    bbox: tuple[int, int, int, int] = field(default=(0, 0, 1, 1))


class LineCounter:
    """Per-camera line counter; see the module docstring for the method.

    Parameters
    ----------
    width, height : int
        Full-resolution frame size; every frame passed to :meth:`update` must match.
    line : pair of (x, y)
        Counting line in full-resolution pixels.
    params : LineCountParams, optional
    name : str, optional
        Reported as the findings' ``zone`` (e.g. ``"northbound"``).

    Notes
    -----
    State: one ``float32`` BGR background at analysis resolution and a few tracks. Counts live as
    long as the object (:attr:`counts`); a restart starts them at zero.
    """

    def __init__(
        self,
        width: int,
        height: int,
        line: object,
        params: LineCountParams | None = None,
        name: str | None = None,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ConfigError(f"frame size must be positive, got {width}x{height}")
        self.params = params if params is not None else LineCountParams()
        self.width, self.height = int(width), int(height)
        self.line = check_line(line)
        for x, y in self.line:
            if x > self.width or y > self.height:
                raise ConfigError(f"line {self.line} leaves the {self.width}x{self.height} frame")
        self.name = name
        rh = min(self.params.resize_height, self.height)
        self._size = (max(1, round(self.width * rh / self.height)), rh)
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        self._a = (self.line[0][0] * self._sx, self.line[0][1] * self._sy)
        self._b = (self.line[1][0] * self._sx, self.line[1][1] * self._sy)
        self._kernel = np.ones((3, 3), np.uint8)
        self._bg: np.ndarray | None = None
        self._last_ts: float | None = None
        self._tracks: list[_Track] = []
        self._next_id = 0
        self.counts = {"forward": 0, "backward": 0}
        """Crossings counted so far, by direction."""

    def reset(self) -> None:
        """Forget the background and tracks (after a gap in the stream); counts are kept."""
        self._bg = None
        self._last_ts = None
        self._tracks = []

    def _blobs(
        self, small: np.ndarray, dt: float
    ) -> list[tuple[float, float, tuple[int, int, int, int]]] | None:
        p = self.params
        assert self._bg is not None
        fg = (colour_difference(small, self._bg) >= p.threshold).astype(np.uint8)
        if cv2.countNonZero(fg) > p.global_change * fg.size:
            self._bg = small.astype(np.float32)
            return None
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)  # drop speckle and rain streaks
        fg = cv2.dilate(fg, self._kernel, iterations=1)
        k_bg = 1.0 - math.exp(-dt / p.bg_tau_s)
        k_fg = 1.0 - math.exp(-dt / p.fg_tau_s)
        k = np.where(fg > 0, np.float32(k_fg), np.float32(k_bg))[..., None]
        self._bg += k * (small.astype(np.float32) - self._bg)
        n, _, stats, cents = cv2.connectedComponentsWithStats(fg, connectivity=8)
        out = []
        for j in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[j, :5])
            if not p.min_area * fg.size <= area <= p.max_area * fg.size or h > p.max_aspect * w:
                continue
            out.append((float(cents[j][0]), float(cents[j][1]), (x, y, w, h)))
        return out

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Track moving blobs in one frame and count those crossing the line.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing.

        Returns
        -------
        list of Finding
            One ``vehicle_crossing`` per crossing counted in this frame: ``bbox`` of the blob in
            full-resolution pixels, ``detail`` with ``direction``, ``track``, ``count_forward``
            and ``count_backward`` (running totals including this one).

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
            return []
        dt = max(0.0, ts - (self._last_ts if self._last_ts is not None else ts))
        self._last_ts = ts
        blobs = self._blobs(small, dt)
        if blobs is None:
            self._tracks = []
            return []
        self._tracks = [t for t in self._tracks if ts - t.ts <= p.max_gap_s + 1e-6]
        sw = self._size[0]
        pairs = []
        for ti, t in enumerate(self._tracks):
            gap = max(1e-3, ts - t.ts)
            px, py = t.x + t.vx * gap, t.y + t.vy * gap
            if t.hits < 2:  # velocity unknown: anything a plausible speed could reach
                gate = p.max_speed * sw * gap + 0.02 * sw
            else:  # around the constant-velocity prediction, so a track never jumps to the next vehicle
                gate = 0.05 * sw + 0.5 * math.hypot(t.vx, t.vy) * gap
            for bi, (bx, by, _) in enumerate(blobs):
                d = math.hypot(bx - px, by - py)
                if d <= gate:
                    pairs.append((d, ti, bi))
        pairs.sort()
        used_t: set[int] = set()
        used_b: set[int] = set()
        findings: list[Finding] = []
        for _, ti, bi in pairs:
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            t = self._tracks[ti]
            bx, by, box = blobs[bi]
            gap = max(1e-3, ts - t.ts)
            direction = (
                0 if t.counted else crossing_direction((t.x, t.y), (bx, by), self._a, self._b)
            )
            # Velocity smoothed over two observations: centroids jitter as blobs change shape.
            t.vx, t.vy = 0.5 * t.vx + 0.5 * (bx - t.x) / gap, 0.5 * t.vy + 0.5 * (by - t.y) / gap
            t.x, t.y, t.ts, t.bbox = bx, by, ts, box
            t.hits += 1
            if direction:
                t.counted = True
                key = "forward" if direction > 0 else "backward"
                self.counts[key] += 1
                findings.append(
                    Finding(
                        VEHICLE_CROSSING,
                        float(min(1.0, 0.5 + 0.1 * t.hits)),
                        self._to_full(box),
                        self.name,
                        {
                            "direction": key,
                            "track": t.id,
                            "count_forward": self.counts["forward"],
                            "count_backward": self.counts["backward"],
                        },
                    )
                )
        for bi, (bx, by, box) in enumerate(blobs):
            if bi not in used_b:
                self._tracks.append(_Track(self._next_id, bx, by, ts, bbox=box))
                self._next_id += 1
        return findings

    def _to_full(self, box: tuple[int, int, int, int]) -> BBox:
        x, y, w, h = box
        x0, y0 = int(math.floor(x / self._sx)), int(math.floor(y / self._sy))
        x1 = min(self.width, int(math.ceil((x + w) / self._sx)))
        y1 = min(self.height, int(math.ceil((y + h) / self._sy)))
        return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
