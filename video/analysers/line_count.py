"""Counting vehicles across a line: moving blobs tracked from frame to frame, counted per
direction.

Foreground is the largest per-channel difference against a selectively updated running-average
background of the downscaled, blurred colour image (:mod:`video.analysers.foreground`, as in
:mod:`video.analysers.intrusion`). Connected blobs between ``min_area`` and ``max_area`` of the
frame and no taller than ``max_aspect`` times their width (upright people are) are the
candidates. Each is associated with the nearest existing
track, greedily in order of distance from the track's predicted position (constant velocity),
the usual nearest-neighbour centroid tracker. The gate is ``max_speed`` frame widths per second
times the time since the track was last seen while a track has no velocity yet, then a
twentieth of the frame width plus half the predicted travel, so that a track whose vehicle
left the frame cannot jump to the next vehicle entering it; unmatched blobs start tracks and
tracks unseen for ``max_gap_s`` are dropped.

A track is counted once, when the segment between its previous and its new centroid properly
intersects the counting line: ``forward`` when it moves to the side the normal
``(y1 - y0, x0 - x1)`` of the line ``(x0, y0) -> (x1, y1)`` points to (for a line drawn top to
bottom: left to right), else ``backward``. Each count emits one ``kind="vehicle_crossing"``
finding (an event, not a level) with the direction and the running counts in ``detail``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from farsight.errors import ConfigError
from farsight.types import ID_RE
from video.analysers.base import BBox, Finding, small_bgr
from video.analysers.foreground import (
    AnalysisBox,
    Blob,
    analysis_size,
    blend_background,
    connected_blobs,
    foreground_mask,
    to_full_box,
)
from video.analysers.params import (
    AdaptiveBackground,
    ForegroundParams,
    bg_tau_field,
    blur_ksize_field,
    fg_tau_field,
    opt_in_field,
    ordered,
    threshold_field,
)

VEHICLE_CROSSING = "vehicle_crossing"

Point = tuple[float, float]


def check_line(line: Any) -> tuple[Point, Point]:
    """Validate a counting line ``((x0, y0), (x1, y1))`` in pixels; return it as floats.

    Raises
    ------
    ConfigError
        Not two finite, non-negative points, or both points equal.
    """
    try:
        (x0, y0), (x1, y1) = ((float(x), float(y)) for x, y in line)
    except (TypeError, ValueError):
        raise ConfigError(f"line must be two (x, y) points, got {line!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in (x0, y0, x1, y1)):
        raise ConfigError(f"line points must be finite pixels >= 0, got {line!r}")
    if (x0, y0) == (x1, y1):
        raise ConfigError(f"line needs two distinct points, got {line!r}")
    return (x0, y0), (x1, y1)


class LineCountParams(ForegroundParams, AdaptiveBackground):
    """Tuning of :class:`LineCounter` (``analysers.line_count`` in the camera YAML): the
    counting line of this camera, the blob limits and the tracker's gate.

    The line and its name are used by the camera config's factory; a counter built in Python
    takes them as arguments. Besides the shared fields (see :mod:`video.analysers.params`): the
    background time constants are short (1.5 s, 3 s), since only moving things are counted and
    a vehicle in the first frame must not leave a lasting "ghost" that captures other tracks.
    """

    enabled: bool = opt_in_field("the counting line is the camera's own.")
    line: tuple[Point, Point] | None = Field(
        None,
        title="Counting line",
        description=(
            "Two (x, y) points in full-resolution pixels; forward is towards the normal "
            "(y1-y0, x0-x1): left to right for a line drawn top to bottom."
        ),
    )
    name: str | None = Field(
        None,
        title="Line name",
        description="Reported as the zone of each crossing (e.g. northbound).",
        pattern=ID_RE.pattern,
    )
    blur_ksize: int = blur_ksize_field(3)
    threshold: int = threshold_field(14)
    bg_tau_s: float = bg_tau_field(1.5)
    fg_tau_s: float = fg_tau_field(3.0)
    min_area: float = Field(
        0.0015,
        title="Minimum area",
        description="Smallest vehicle blob as a fraction of the frame.",
        gt=0,
        lt=1,
    )
    max_area: float = Field(
        0.25,
        title="Maximum area",
        description="Largest vehicle blob as a fraction of the frame.",
        gt=0,
        le=1,
    )
    max_aspect: float = Field(
        1.5,
        title="Maximum aspect",
        description=(
            "Largest height/width of a vehicle blob (taller ones, such as people, are not counted)."
        ),
        ge=0.1,
        le=50,
    )
    max_speed: float = Field(
        1.0,
        title="Maximum speed",
        description="Fastest plausible motion, in frame widths per second (the tracker's gate).",
        ge=0.01,
        le=100,
    )
    max_gap_s: float = Field(
        1.0,
        title="Track gap",
        description="Seconds a track survives unseen.",
        ge=0,
        le=60,
    )

    @field_validator("line")
    @classmethod
    def _line(cls, v: tuple[Point, Point] | None) -> tuple[Point, Point] | None:
        try:
            return None if v is None else check_line(v)
        except ConfigError as exc:
            raise ValueError(exc.problems[0].message) from None

    @model_validator(mode="after")
    def _checks(self) -> LineCountParams:
        if self.enabled and self.line is None:
            raise ValueError("an enabled line_count analyser needs a 'line'")
        ordered("min_area", self.min_area, "max_area", self.max_area)
        return self


# --------------------------------------------------------------------------- pure steps


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


@dataclass(frozen=True, slots=True)
class Track:
    """A vehicle followed from frame to frame (analysis pixels, velocity in pixels/s)."""

    id: int
    x: float
    y: float
    ts: float
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1
    counted: bool = False
    bbox: AnalysisBox = field(default=(0, 0, 1, 1))


def vehicle_like(blob: Blob, frame_px: int, p: LineCountParams) -> bool:
    """Whether a blob is vehicle-sized (``min_area``..``max_area`` of the ``frame_px`` pixels)
    and not taller than ``max_aspect`` times its width (upright people are)."""
    return (
        p.min_area * frame_px <= blob.area <= p.max_area * frame_px
        and blob.h <= p.max_aspect * blob.w
    )


def track_gate(track: Track, gap: float, frame_w: int, max_speed: float) -> float:
    """Largest distance, in pixels, from the predicted position at which ``track`` may take a
    blob ``gap`` seconds after it was last seen."""
    if track.hits < 2:  # velocity unknown: anything a plausible speed could reach
        return max_speed * frame_w * gap + 0.02 * frame_w
    # Around the constant-velocity prediction, so a track never jumps to the next vehicle.
    return 0.05 * frame_w + 0.5 * math.hypot(track.vx, track.vy) * gap


def associate(
    tracks: list[Track], blobs: list[Blob], ts: float, frame_w: int, max_speed: float
) -> list[tuple[int, int]]:
    """Greedy nearest-neighbour association: ``(track index, blob index)`` pairs, closest to
    the track's constant-velocity prediction first, each track and blob used once, within each
    track's gate."""
    pairs = []
    for ti, t in enumerate(tracks):
        gap = max(1e-3, ts - t.ts)
        px, py = t.x + t.vx * gap, t.y + t.vy * gap
        gate = track_gate(t, gap, frame_w, max_speed)
        for bi, b in enumerate(blobs):
            d = math.hypot(b.cx - px, b.cy - py)
            if d <= gate:
                pairs.append((d, ti, bi))
    pairs.sort()
    used_t: set[int] = set()
    used_b: set[int] = set()
    out = []
    for _, ti, bi in pairs:
        if ti in used_t or bi in used_b:
            continue
        used_t.add(ti)
        used_b.add(bi)
        out.append((ti, bi))
    return out


def follow_track(track: Track, blob: Blob, ts: float) -> Track:
    """``track`` moved to ``blob`` seen at ``ts``, its velocity smoothed over two observations
    (centroids jitter as blobs change shape)."""
    gap = max(1e-3, ts - track.ts)
    vx = 0.5 * track.vx + 0.5 * (blob.cx - track.x) / gap
    vy = 0.5 * track.vy + 0.5 * (blob.cy - track.y) / gap
    return Track(
        track.id,
        blob.cx,
        blob.cy,
        ts,
        vx,
        vy,
        track.hits + 1,
        track.counted,
        (blob.x, blob.y, blob.w, blob.h),
    )


# --------------------------------------------------------------------------- counter


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
        self._size = analysis_size(self.width, self.height, self.params.resize_height)
        sw, sh = self._size
        self._sx, self._sy = sw / self.width, sh / self.height
        # The line at analysis resolution, where the tracks live.
        self._ab = (
            (self.line[0][0] * self._sx, self.line[0][1] * self._sy),
            (self.line[1][0] * self._sx, self.line[1][1] * self._sy),
        )
        self._kernel = np.ones((3, 3), np.uint8)
        self._bg: np.ndarray | None = None
        self._last_ts: float | None = None
        self._tracks: list[Track] = []
        self._next_id = 0
        self.counts = {"forward": 0, "backward": 0}
        """Crossings counted so far, by direction."""

    def reset(self) -> None:
        """Forget the background and tracks (after a gap in the stream); counts are kept."""
        self._bg = None
        self._last_ts = None
        self._tracks = []

    def _blobs(self, small: np.ndarray, dt: float) -> list[Blob] | None:
        """Vehicle-like blobs of this frame (the background learns it); None after a global
        change, when the background restarts from this frame."""
        p = self.params
        assert self._bg is not None
        fg = foreground_mask(
            small, self._bg, p.threshold, p.global_change, self._kernel, self._kernel
        )
        if fg is None:
            self._bg = small.astype(np.float32)
            return None
        self._bg = blend_background(self._bg, small, fg > 0, dt, p.bg_tau_s, p.fg_tau_s)
        return [b for b in connected_blobs(fg) if vehicle_like(b, fg.size, p)]

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
        pairs = associate(self._tracks, blobs, ts, self._size[0], p.max_speed)
        findings = [self._follow(ti, blobs[bi], ts) for ti, bi in pairs]
        matched = {bi for _, bi in pairs}
        for bi, b in enumerate(blobs):
            if bi not in matched:
                box = (b.x, b.y, b.w, b.h)
                self._tracks.append(Track(self._next_id, b.cx, b.cy, ts, bbox=box))
                self._next_id += 1
        return [f for f in findings if f is not None]

    def _follow(self, ti: int, blob: Blob, ts: float) -> Finding | None:
        """Move track ``ti`` to ``blob``; count it (and return its finding) if it crossed."""
        old = self._tracks[ti]
        crossed = (
            0 if old.counted else crossing_direction((old.x, old.y), (blob.cx, blob.cy), *self._ab)
        )
        t = follow_track(old, blob, ts)
        if crossed:
            t = replace(t, counted=True)
        self._tracks[ti] = t
        if not crossed:
            return None
        key = "forward" if crossed > 0 else "backward"
        self.counts[key] += 1
        detail: dict[str, Any] = {
            "direction": key,
            "track": t.id,
            "count_forward": self.counts["forward"],
            "count_backward": self.counts["backward"],
        }
        confidence = float(min(1.0, 0.5 + 0.1 * t.hits))
        return Finding(VEHICLE_CROSSING, confidence, self._to_full(t.bbox), self.name, detail)

    def _to_full(self, box: AnalysisBox) -> BBox:
        return to_full_box(box, self._sx, self._sy, self.width, self.height)
