"""Value types and small helpers shared by the video analysers.

An analyser is a small state object fed one frame at a time; it returns frozen
:class:`Finding` values. Everything here is pure numpy/OpenCV, no I/O.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from farsight.errors import ConfigError

BBox = tuple[int, int, int, int]
"""Axis-aligned box ``(x, y, w, h)`` in full-resolution pixel coordinates."""

Polygon = Sequence[tuple[float, float]]
"""Polygon as a sequence of ``(x, y)`` pixel coordinates (at least three points)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing an analyser saw in one frame.

    Parameters
    ----------
    kind : str
        Short machine-readable kind, e.g. ``"motion"`` or ``"camera_covered"``.
    confidence : float
        In ``[0, 1]``.
    bbox : tuple of int or None
        ``(x, y, w, h)`` in full-resolution pixels, or None for whole-frame findings.
    zone : str or None
        Name of the zone the finding belongs to, if any.
    detail : dict
        Extra kind-specific values (JSON-serialisable scalars).
    """

    kind: str
    confidence: float
    bbox: BBox | None = None
    zone: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kind:
            raise ConfigError("Finding.kind must be a non-empty string")
        if not (0.0 <= float(self.confidence) <= 1.0) or math.isnan(self.confidence):
            raise ConfigError(f"Finding.confidence must be in [0, 1], got {self.confidence!r}")
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise ConfigError(f"Finding.bbox must be (x, y, w, h), got {self.bbox!r}")
            object.__setattr__(self, "bbox", tuple(int(v) for v in self.bbox))
            if self.bbox[2] <= 0 or self.bbox[3] <= 0:
                raise ConfigError(
                    f"Finding.bbox width and height must be positive, got {self.bbox!r}"
                )


@runtime_checkable
class Analyser(Protocol):
    """A per-camera state object fed frames in timestamp order."""

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Analyse one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` image of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds (monotonic within one camera).

        Returns
        -------
        list of Finding
            Possibly empty.
        """
        ...


@runtime_checkable
class Resettable(Protocol):
    """An analyser that can forget its short-term state after a gap in the stream."""

    def reset(self) -> None:
        """Forget short-term state (backgrounds, tracks); the next frames rebuild it."""
        ...


@runtime_checkable
class ViewMonitor(Protocol):
    """An analyser that watches the view itself (tamper, global change) and can say, frame by
    frame, which of its conditions make the view unreliable for the scene analysers."""

    def view_conditions(self) -> frozenset[str]:
        """Finding kinds whose condition held in the last frame, confirmed or not yet, or is
        still confirmed active."""
        ...


def _validate_polygon(points: Polygon, what: str) -> tuple[tuple[float, float], ...]:
    try:
        pts = tuple((float(x), float(y)) for x, y in points)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: polygon must be a sequence of (x, y) points: {exc}") from None
    if len(pts) < 3:
        raise ConfigError(f"{what}: polygon needs at least 3 points, got {len(pts)}")
    if not all(math.isfinite(v) for p in pts for v in p):
        raise ConfigError(f"{what}: polygon coordinates must be finite")
    return pts


def rasterise_polygons(
    polygons: Sequence[Polygon], width: int, height: int, scale: float = 1.0
) -> np.ndarray:
    """Rasterise polygons into a boolean mask.

    Parameters
    ----------
    polygons : sequence of Polygon
        Polygons in full-resolution pixel coordinates.
    width, height : int
        Size of the output mask.
    scale : float, default 1.0
        Factor applied to the coordinates first (e.g. ``0.25`` for a downscaled mask).

    Returns
    -------
    numpy.ndarray
        ``bool`` array of shape ``(height, width)``, True inside any polygon.

    Raises
    ------
    ConfigError
        If the size is not positive or a polygon has fewer than three points.
    """
    if width <= 0 or height <= 0:
        raise ConfigError(f"mask size must be positive, got {width}x{height}")
    canvas = np.zeros((height, width), dtype=np.uint8)
    for i, poly in enumerate(polygons):
        pts = np.asarray(_validate_polygon(poly, f"polygon[{i}]"), dtype=np.float64) * scale
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
    return canvas.astype(bool)


@dataclass(frozen=True, slots=True)
class Zone:
    """A named polygon in full-resolution pixel coordinates."""

    name: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("Zone.name must be a non-empty string")
        object.__setattr__(self, "points", _validate_polygon(self.points, f"zone {self.name!r}"))

    def mask(self, width: int, height: int, scale: float = 1.0) -> np.ndarray:
        """Boolean mask of this zone at ``(height, width)``; see :func:`rasterise_polygons`."""
        return rasterise_polygons([self.points], width, height, scale)


def unique_zones(zones: Sequence[Zone]) -> tuple[Zone, ...]:
    """``zones`` as a tuple.

    Raises
    ------
    ConfigError
        Two zones share a name (findings name their zone).
    """
    out = tuple(zones)
    names = [z.name for z in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"zone names must be unique, got {names}")
    return out


class Debounce:
    """Hysteresis on a boolean condition over time.

    The state turns on once the condition has held continuously for ``on_s``
    seconds and turns off once it has been false continuously for ``off_s``.
    :meth:`update` returns ``"on"`` or ``"off"`` on the transition, None otherwise.
    """

    __slots__ = ("_since", "active", "off_s", "on_s")

    def __init__(self, on_s: float, off_s: float) -> None:
        if not (on_s >= 0 and off_s >= 0):
            raise ConfigError(f"Debounce durations must be >= 0, got on_s={on_s!r} off_s={off_s!r}")
        self.on_s = float(on_s)
        self.off_s = float(off_s)
        self.active = False
        self._since: float | None = None  # when the condition started disagreeing with the state

    def update(self, condition: bool, ts: float) -> str | None:
        """Feed the condition observed at ``ts``; return the transition, if any."""
        if bool(condition) == self.active:
            self._since = None
            return None
        if self._since is None:
            self._since = ts
        # The 1 µs slack keeps float timestamps (e.g. i / fps) from missing the edge by an ulp.
        if ts - self._since + 1e-6 >= (self.off_s if self.active else self.on_s):
            self.active = not self.active
            self._since = None
            return "on" if self.active else "off"
        return None

    def reset(self) -> None:
        """Forget state and pending transitions."""
        self.active = False
        self._since = None


def check_bgr(frame: np.ndarray) -> None:
    """Refuse anything but a BGR ``uint8`` image: every analyser's first check.

    Raises
    ------
    ConfigError
        The frame is not ``(height, width, 3)`` ``uint8``.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ConfigError(f"expected BGR uint8 frame, got shape {frame.shape} dtype {frame.dtype}")


def blurred_gray(
    frame: np.ndarray, width: int, height: int, size: tuple[int, int], blur_ksize: int
) -> np.ndarray:
    """Check a frame of a ``width`` x ``height`` camera, downscale it to ``size``, make it grey
    and blur it (``blur_ksize`` 1: no blur): the input of the background-model analysers.

    Raises
    ------
    ConfigError
        The frame is not BGR ``uint8`` or not of the configured size.
    """
    check_bgr(frame)
    if frame.shape[:2] != (height, width):
        raise ConfigError(
            f"frame is {frame.shape[1]}x{frame.shape[0]}, detector configured for {width}x{height}"
        )
    gray = cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(gray, (blur_ksize, blur_ksize), 0) if blur_ksize > 1 else gray


def small_bgr(
    frame: np.ndarray, width: int, height: int, size: tuple[int, int], blur_ksize: int
) -> np.ndarray:
    """Check a frame of a ``width`` x ``height`` camera, downscale it to ``size`` and blur it
    (``blur_ksize`` 1: no blur), keeping colour: the input of the colour background models.

    Raises
    ------
    ConfigError
        The frame is not BGR ``uint8`` or not of the configured size.
    """
    check_bgr(frame)
    if frame.shape[:2] != (height, width):
        raise ConfigError(
            f"frame is {frame.shape[1]}x{frame.shape[0]}, detector configured for {width}x{height}"
        )
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (blur_ksize, blur_ksize), 0) if blur_ksize > 1 else small


def prepare(
    frame: np.ndarray, analysis_height: int, shape: tuple[int, int] | None
) -> tuple[np.ndarray, float]:
    """Check a BGR frame and downscale it to ``analysis_height`` (never up): the prologue of
    smoke, fire and tamper. Returns the image and the scale (analysis / full resolution).

    Raises
    ------
    ConfigError
        If the frame is not BGR ``uint8`` or its size differs from ``shape`` (when given).
    """
    check_bgr(frame)
    if shape is not None and frame.shape[:2] != shape:
        raise ConfigError(
            f"frame size changed from {shape} to {frame.shape[:2]}; create a new analyser"
        )
    h, w = frame.shape[:2]
    rh = min(analysis_height, h)
    scale = rh / h
    if rh == h:
        return frame, 1.0
    # Smoke, fire, tamper and the global-change analyser all downscale the same frame to the
    # same height: the first does the work, the others get its result (read-only by contract).
    memo = _downscaled.__dict__
    if memo.get("frame") is frame and memo.get("height") == rh:
        return memo["small"], scale
    small = cv2.resize(frame, (max(1, round(w * scale)), rh), interpolation=cv2.INTER_AREA)
    small.flags.writeable = False
    memo.update(frame=frame, height=rh, small=small)
    return small, scale


_downscaled = threading.local()
"""The last frame :func:`prepare` downscaled in this thread, its height and the result (holding
the frame keeps its identity from being reused by another array)."""


def colour_difference(small: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Largest per-channel absolute difference of a BGR ``uint8`` image and a ``float32``
    background.

    Colour rather than luma: a blue car on grey asphalt or a blue jacket on green grass can have
    the same luma as what they hide, never the same colour.
    """
    return cv2.absdiff(small, cv2.convertScaleAbs(background)).max(axis=2)


class MedianStart:
    """Starts a background model from the per-pixel median of its first frames.

    A running average started from the first frame keeps whatever was passing in that frame
    (a vehicle, a person) as a "ghost": once it has moved on, the empty place differs from the
    background and looks like a new object for as long as the background takes to learn it.
    The temporal median of the frames of the first ``seconds`` drops anything that moved
    through in less than half of them (the usual median background initialisation).

    :meth:`add` returns None while collecting and the ``float32`` median once ``seconds`` have
    passed since the first frame. At most about ``max_frames`` frames are kept (evenly thinned
    at high frame rates), which bounds the memory.
    """

    __slots__ = ("_frames", "_t0", "max_frames", "seconds")

    def __init__(self, seconds: float, max_frames: int = 15) -> None:
        if not (seconds >= 0 and max_frames >= 1):
            raise ConfigError(
                "MedianStart needs seconds >= 0 and max_frames >= 1, "
                f"got {seconds!r}, {max_frames!r}"
            )
        self.seconds = float(seconds)
        self.max_frames = int(max_frames)
        self._frames: list[np.ndarray] = []
        self._t0: float | None = None

    def add(self, img: np.ndarray, ts: float) -> np.ndarray | None:
        """Collect ``img`` seen at ``ts``; return the median background once complete."""
        if self._t0 is None:
            self._t0 = ts
        # Keep an evenly thinned set: every frame until max_frames, then every other one.
        if len(self._frames) < self.max_frames:
            self._frames.append(img.copy())
        else:
            self._frames = self._frames[::2] + [img.copy()]
        if ts - self._t0 + 1e-6 < self.seconds:
            return None
        median = np.median(np.stack(self._frames), axis=0).astype(np.float32)
        self.reset()
        return median

    def reset(self) -> None:
        """Start collecting again (after a reset of the model it feeds)."""
        self._frames = []
        self._t0 = None
