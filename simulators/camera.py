"""Camera simulator: a deterministic scene renderer that stands in for a site camera.

A :class:`ClipSpec` describes a clip (scene, size, frame rate, length, seed, day or night,
sensor noise, shake) and the events injected into it (:class:`EventSpec`); :func:`render_clip`
yields its frames, :func:`write_mp4` and :func:`write_jpegs` write them to disk and return the
:class:`ClipTruth`, the ground truth that accuracy benchmarks score video analysers against.

Every pixel is a deterministic function of the spec: the static scene is drawn from
``default_rng([seed, 0])`` and each per-frame random quantity (sensor noise, shake, fire flicker)
from its own generator seeded with ``[seed, stream, frame index]``. Streams never share a
generator, so adding an event to a spec changes nothing but that event's pixels: a spec with the
event and the same spec without it differ only inside the event's box, which is what the tests
and the benchmarks rely on.

The scenes are simple geometry (sky gradient, ground, buildings, a stack, a road with lane marks,
a river band) drawn with numpy and OpenCV; they are plausible enough for colour, motion and
sharpness analysers, not photorealistic. Weather (rain streaks, distance-dependent fog) and
background traffic (vehicles in lanes, headlights at night; :func:`line_crossings` gives the
times they cross a counting line) come from their own seed streams too, and a ``person`` event
walks a small upright figure across its box (dimly lit at night).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from farsight.errors import FarsightError

SCENES: tuple[str, ...] = ("stack", "construction", "highway", "outfall")
"""Scenes the renderer can draw."""

SCENE_EVENTS: tuple[str, ...] = ("smoke", "fire", "black_smoke", "vehicle_stop", "person")
"""Events drawn into the scene inside their box (the box is required)."""

CAMERA_EVENTS: tuple[str, ...] = ("covered", "defocus", "turned")
"""Events of the camera itself: they change the whole frame and take no box."""

EVENT_KINDS: tuple[str, ...] = SCENE_EVENTS + CAMERA_EVENTS
"""Every event kind, scene events first."""

WEATHERS: tuple[str, ...] = ("clear", "rain", "fog")
"""Weather the renderer can draw over a scene."""

# Seed streams: one generator per purpose, so one stream's draws never shift another's.
_STREAM_SCENE, _STREAM_NOISE, _STREAM_SHAKE, _STREAM_EVENT, _STREAM_WEATHER, _STREAM_TRAFFIC = (
    0,
    1,
    2,
    3,
    4,
    5,
)
_CAR_COLOURS = ((40, 40, 180), (230, 230, 230), (150, 80, 30), (40, 40, 40), (60, 170, 220))

_NOISE_PAD = 97  # noise tile margin: offsets 0..96 give 9409 distinct placements per clip

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event injected into a clip.

    Parameters
    ----------
    kind : str
        One of :data:`EVENT_KINDS`.
    start_s, end_s : float
        Interval in seconds from the clip start, ``start_s <= t < end_s``.
    bbox : tuple of int, optional
        Zone ``(x, y, w, h)`` in pixels where the event shows. Required for scene events (for
        ``black_smoke`` its bottom centre should sit on the stack top, see :func:`scene_layout`;
        for ``vehicle_stop`` it is where the vehicle stops; for ``person`` the strip a figure
        as tall as the box walks across, from one side to the other over the interval). Must be
        ``None`` for camera events, which affect the whole frame.
    grade : int
        Ringelmann grade 0-5 of ``black_smoke`` (0 for every other kind).
    """

    kind: str
    start_s: float
    end_s: float
    bbox: Box | None = None
    grade: int = 0

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; known: {', '.join(EVENT_KINDS)}")
        if (
            not (math.isfinite(self.start_s) and math.isfinite(self.end_s))
            or not 0 <= self.start_s < self.end_s
        ):
            raise ValueError(
                f"event interval [{self.start_s}, {self.end_s}) must satisfy 0 <= start_s < end_s"
            )
        if self.kind in SCENE_EVENTS:
            if (
                self.bbox is None
                or len(self.bbox) != 4
                or any(not isinstance(v, int) for v in self.bbox)
            ):
                raise ValueError(
                    f"a {self.kind} event needs a bbox of four ints (x, y, w, h), got {self.bbox!r}"
                )
            if self.bbox[2] < 8 or self.bbox[3] < 8:
                raise ValueError(f"event bbox {self.bbox!r} must be at least 8x8 pixels")
        elif self.bbox is not None:
            raise ValueError(
                f"a {self.kind} event affects the whole frame: give no bbox (got {self.bbox!r})"
            )
        if not isinstance(self.grade, int) or not 0 <= self.grade <= 5:
            raise ValueError(f"Ringelmann grade {self.grade!r} must be an int in 0..5")
        if self.grade and self.kind != "black_smoke":
            raise ValueError(f"only black_smoke has a Ringelmann grade, not {self.kind}")

    def active(self, t: float) -> bool:
        """Whether the event is on at clip offset ``t`` seconds."""
        return self.start_s <= t < self.end_s

    def need_bbox(self) -> Box:
        """The zone of a scene event; a camera event, which has none, raises ValueError."""
        if self.bbox is None:
            raise ValueError(f"a {self.kind} event affects the whole frame: it has no bbox")
        return self.bbox


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """A simulated camera clip: scene, format, randomness and injected events.

    Parameters
    ----------
    scene : str
        One of :data:`SCENES`.
    width, height : int
        Frame size in pixels (at least 64x64; even, as most codecs want).
    fps : float
        Frames per second; the clip has ``round(fps * seconds)`` frames.
    seconds : float
        Clip length.
    seed : int
        Seed of every random choice: equal specs render identical frames.
    night : bool
        Night scene: dark, lit windows and lamps.
    noise : float
        Sensor noise, the standard deviation of Gaussian noise in 8-bit grey levels.
    shake_px : float
        Camera shake: each frame is translated by up to this many pixels in x and y.
    events : tuple of EventSpec
        Events injected into the clip.
    weather : str
        One of :data:`WEATHERS`: ``rain`` dims the scene and draws fresh streaks every frame,
        ``fog`` veils it with haze that thickens with distance (towards the horizon).
    traffic : float
        Background traffic in vehicles per minute on the scene's road (0: none), in lanes
        driving left in the upper half of the road and right in the lower half. Their
        passes are in :attr:`ClipTruth.vehicles`; :func:`line_crossings` turns them into
        counts across a line. Needs a scene with a road.
    """

    scene: str
    width: int = 640
    height: int = 360
    fps: float = 5.0
    seconds: float = 20.0
    seed: int = 0
    night: bool = False
    noise: float = 2.0
    shake_px: float = 0.0
    events: tuple[EventSpec, ...] = ()
    weather: str = "clear"
    traffic: float = 0.0

    def __post_init__(self) -> None:
        if self.scene not in SCENES:
            raise ValueError(f"unknown scene {self.scene!r}; known: {', '.join(SCENES)}")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise ValueError(
                f"frame size {self.width}x{self.height} must be even and at least 64x64"
            )
        if not (
            math.isfinite(self.fps)
            and self.fps > 0
            and math.isfinite(self.seconds)
            and self.seconds > 0
        ):
            raise ValueError(f"fps {self.fps!r} and seconds {self.seconds!r} must be positive")
        if self.n_frames < 1:
            raise ValueError(f"a clip of {self.seconds} s at {self.fps} fps has no frame")
        if not (self.noise >= 0 and self.shake_px >= 0):
            raise ValueError(f"noise {self.noise!r} and shake_px {self.shake_px!r} must be >= 0")
        if not isinstance(self.events, tuple) or not all(
            isinstance(e, EventSpec) for e in self.events
        ):
            raise ValueError("events must be a tuple of EventSpec")
        if self.weather not in WEATHERS:
            raise ValueError(f"unknown weather {self.weather!r}; known: {', '.join(WEATHERS)}")
        if not (math.isfinite(self.traffic) and 0 <= self.traffic <= 600):
            raise ValueError(f"traffic {self.traffic!r} must be in 0..600 vehicles per minute")
        if self.traffic and scene_layout(self.scene, self.width, self.height).road is None:
            raise ValueError(f"scene {self.scene!r} has no road for traffic")
        for event in self.events:
            if event.bbox is not None:
                x, y, w, h = event.bbox
                if x < 0 or y < 0 or x + w > self.width or y + h > self.height:
                    raise ValueError(
                        f"{event.kind} bbox {event.bbox!r} leaves the "
                        f"{self.width}x{self.height} frame"
                    )

    @property
    def n_frames(self) -> int:
        """Number of frames in the clip."""
        return round(self.fps * self.seconds)


@dataclass(frozen=True, slots=True)
class TruthEvent:
    """One event as it appears in the clip: what, when and where (camera events: whole frame)."""

    kind: str
    start_s: float
    end_s: float
    bbox: Box
    grade: int = 0


@dataclass(frozen=True, slots=True)
class VehiclePass:
    """One background-traffic vehicle: it drives along its lane at constant speed.

    Its top-left corner is at ``x0 + speed * (t - t0)``, ``y``; ``speed`` is signed (pixels per
    second, negative: driving left), ``width`` and ``height`` are its size in pixels.
    """

    t0: float
    x0: float
    y: int
    speed: float
    width: int
    height: int
    colour: int = 0

    def left(self, t: float) -> float:
        """x of the vehicle's left edge at clip offset ``t``."""
        return self.x0 + self.speed * (t - self.t0)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A vehicle's centre crossing a counting line: when, which way and which vehicle.

    ``direction`` is ``"forward"`` when the centre moves to the side the normal
    ``(y1 - y0, x0 - x1)`` of the line ``(x0, y0) -> (x1, y1)`` points to (for a line drawn
    top to bottom: left to right), else ``"backward"``.
    """

    t: float
    direction: str
    vehicle: str


@dataclass(frozen=True, slots=True)
class ClipTruth:
    """Ground truth of a rendered clip, for accuracy benchmarks of video analysers.

    ``bbox`` of a scene event is its zone in scene coordinates: with ``shake_px`` the pixels may
    move by up to that much, and a ``turned`` event moves the whole scene, zones included.
    """

    scene: str
    width: int
    height: int
    fps: float
    n_frames: int
    night: bool
    events: tuple[TruthEvent, ...]
    path: str = ""
    weather: str = "clear"
    vehicles: tuple[VehiclePass, ...] = ()
    seconds: float = 0.0

    def active(self, t: float) -> tuple[TruthEvent, ...]:
        """Events on at clip offset ``t`` seconds."""
        return tuple(e for e in self.events if e.start_s <= t < e.end_s)

    def as_dict(self) -> dict:
        """Plain JSON-ready form, for benchmark fixtures."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SceneLayout:
    """Where a scene's landmarks are, in pixels, so callers can place event zones.

    ``stack_top`` is the centre of the stack's mouth (``None`` without a stack); ``road`` and
    ``river`` are ``(y_top, y_bottom)`` bands across the frame (``None`` when absent);
    ``scene`` is the scene they belong to. The ``need_*`` methods return a landmark the caller
    knows its scene has, and raise ValueError naming the scene if it has not.
    """

    horizon_y: int
    stack_top: tuple[int, int] | None
    road: tuple[int, int] | None
    river: tuple[int, int] | None
    scene: str

    def need_stack_top(self) -> tuple[int, int]:
        """``stack_top`` of a scene that has a stack; raises ValueError naming one without."""
        if self.stack_top is None:
            raise ValueError(f"scene {self.scene!r} has no stack")
        return self.stack_top

    def need_road(self) -> tuple[int, int]:
        """``road`` of a scene that has a road; raises ValueError naming one without."""
        if self.road is None:
            raise ValueError(f"scene {self.scene!r} has no road")
        return self.road

    def need_river(self) -> tuple[int, int]:
        """``river`` of a scene that has a river; raises ValueError naming one without."""
        if self.river is None:
            raise ValueError(f"scene {self.scene!r} has no river")
        return self.river


def truth_for(spec: ClipSpec, path: str = "") -> ClipTruth:
    """Ground truth of ``spec`` without rendering it."""
    full = (0, 0, spec.width, spec.height)
    events = tuple(
        TruthEvent(
            e.kind,
            e.start_s,
            min(e.end_s, spec.seconds),
            e.bbox if e.bbox is not None else full,
            e.grade,
        )
        for e in spec.events
        if e.start_s < spec.seconds
    )
    return ClipTruth(
        spec.scene,
        spec.width,
        spec.height,
        spec.fps,
        spec.n_frames,
        spec.night,
        events,
        path,
        spec.weather,
        traffic_for(spec),
        spec.seconds,
    )


def scene_layout(scene: str, width: int, height: int) -> SceneLayout:
    """Landmarks of ``scene`` at ``width`` x ``height``; they do not depend on the seed.

    Raises
    ------
    ValueError
        If the scene is unknown.
    """
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENES)}")
    w, h = width, height
    if scene == "stack":
        return SceneLayout(
            int(0.62 * h),
            (int(0.70 * w), int(0.32 * h)),
            (int(0.82 * h), int(0.94 * h)),
            None,
            scene,
        )
    if scene == "construction":
        return SceneLayout(int(0.55 * h), None, (int(0.80 * h), int(0.93 * h)), None, scene)
    if scene == "highway":
        return SceneLayout(int(0.42 * h), None, (int(0.58 * h), int(0.96 * h)), None, scene)
    return SceneLayout(int(0.40 * h), None, None, (int(0.50 * h), int(0.84 * h)), scene)


def _lanes(scene: str) -> int:
    return 4 if scene == "highway" else 2


def traffic_for(spec: ClipSpec) -> tuple[VehiclePass, ...]:
    """The background-traffic vehicles of ``spec`` (see :attr:`ClipSpec.traffic`), by entry time.

    Each lane has its own speed (the frame crossed in 3-5 s), so vehicles in a lane never
    overlap; arrivals are a Poisson process with a minimum headway of 2.5 vehicle lengths.
    The first vehicles entered before the clip starts, so traffic is flowing at ``t = 0``.
    """
    if not spec.traffic:
        return ()
    y0, y1 = scene_layout(spec.scene, spec.width, spec.height).need_road()
    lanes = _lanes(spec.scene)
    lane_h = (y1 - y0) / lanes
    rate = spec.traffic / 60.0 / lanes  # vehicles per second per lane
    out: list[VehiclePass] = []
    for k in range(lanes):
        rng = _rng(spec.seed, _STREAM_TRAFFIC, k)  # per lane, so a longer clip only adds vehicles
        direction = -1.0 if k < lanes / 2 else 1.0  # upper carriageway drives left, lower right
        speed = direction * spec.width / float(rng.uniform(3.0, 5.0))
        ch = max(6, int(0.7 * lane_h))
        cw = int(2.2 * ch)
        y = int(y0 + k * lane_h + (lane_h - ch) / 2)
        x0 = float(-cw) if direction > 0 else float(spec.width)
        cross_s = (spec.width + cw) / abs(speed)
        headway_s = 2.5 * cw / abs(speed)
        t = -cross_s + float(rng.exponential(1.0 / rate))
        while t < spec.seconds:
            out.append(
                VehiclePass(round(t, 6), x0, y, speed, cw, ch, int(rng.integers(len(_CAR_COLOURS))))
            )
            t += headway_s + float(rng.exponential(1.0 / rate))
    return tuple(sorted(out, key=lambda v: (v.t0, v.y)))


def _stop_car(bbox: Box, frame_width: int) -> tuple[int, int, float, int, float]:
    """Size, stop position and speed of a ``vehicle_stop`` car: ``(cw, ch, x_stop, y, speed)``."""
    bx, by, bw, bh = bbox
    cw = int(min(0.8 * bw, 0.8 * bh * 2.2))
    ch = int(cw / 2.2)
    return (
        cw,
        ch,
        bx + (bw - cw) / 2,
        by + (bh - ch) // 2,
        frame_width / 4.0,
    )  # crosses the frame in 4 s


def line_crossings(
    truth: ClipTruth, line: tuple[tuple[float, float], tuple[float, float]]
) -> tuple[Crossing, ...]:
    """When vehicles' centres cross the segment ``line`` in a clip, in time order.

    Counts background traffic (``traffic0``, ``traffic1``... by entry order) and the cars of
    ``vehicle_stop`` events (``stop0``...), which drive in from the left, stop and drive on.

    Parameters
    ----------
    truth : ClipTruth
        Truth of the clip (:func:`truth_for`).
    line : pair of (x, y)
        Counting line in pixels; vehicles drive horizontally, so a horizontal line counts nothing.

    Returns
    -------
    tuple of Crossing
        Crossings with ``0 <= t < seconds`` of the clip.
    """
    (ax, ay), (bx, by) = line
    nx = by - ay  # normal (y1 - y0, x0 - x1); vehicles move along x only, so its x part decides
    seconds = truth.seconds or truth.n_frames / truth.fps
    out: list[Crossing] = []

    def cross_x(cy: float) -> float | None:
        if ay == by:
            return None
        s = (cy - ay) / (by - ay)
        return ax + s * (bx - ax) if 0.0 <= s <= 1.0 else None

    for i, v in enumerate(truth.vehicles):
        xc = cross_x(v.y + v.height / 2)
        if xc is None:
            continue
        t = v.t0 + (xc - v.x0 - v.width / 2) / v.speed
        if 0.0 <= t < seconds and nx * v.speed != 0:
            out.append(
                Crossing(round(t, 6), "forward" if nx * v.speed > 0 else "backward", f"traffic{i}")
            )
    for i, e in enumerate(ev for ev in truth.events if ev.kind == "vehicle_stop"):
        cw, ch, x_stop, y, speed = _stop_car(e.bbox, truth.width)
        xc = cross_x(y + ch / 2)
        if xc is None or nx == 0:
            continue
        centre = x_stop + cw / 2
        t = e.start_s - (centre - xc) / speed if xc <= centre else e.end_s + (xc - centre) / speed
        if 0.0 <= t < seconds:
            out.append(Crossing(round(t, 6), "forward" if nx > 0 else "backward", f"stop{i}"))
    return tuple(sorted(out, key=lambda c: c.t))


# --------------------------------------------------------------------------------------------
# Static scene


def _rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *index])


def _noise_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random field in [0, 1] of shape (h, w): upsampled coarse noise.

    Its features are about ``cell`` pixels across.
    """
    coarse = rng.random((max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    field = cv2.GaussianBlur(field, (0, 0), max(1.0, cell / 4))
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo + 1e-6)


def _vgradient(img: np.ndarray, y0: int, y1: int, top: tuple, bottom: tuple) -> None:
    n = max(1, y1 - y0)
    f = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None, None]
    img[y0:y1] = np.asarray(top, np.float32) * (1 - f) + np.asarray(bottom, np.float32) * f


def _window_grid(
    img: np.ndarray,
    lights: np.ndarray,
    rng: np.random.Generator,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    step: int,
) -> None:
    """Windows on a facade: dark glass by day, some lit at night (lit pattern from the seed)."""
    size = max(2, step // 3)
    for y in range(y0 + step // 2, y1 - size, step):
        for x in range(x0 + step // 2, x1 - size, step):
            cv2.rectangle(img, (x, y), (x + size, y + size), (95, 90, 85), -1)
            if rng.random() < 0.45:
                cv2.rectangle(lights, (x, y), (x + size, y + size), (110, 190, 235), -1)


def _lamp(
    lights: np.ndarray,
    x: int,
    y: int,
    radius: int,
    color: tuple[int, int, int] = (150, 210, 255),
) -> None:
    cv2.circle(lights, (x, y), max(2, radius), color, -1)


def _road(img: np.ndarray, w: int, y0: int, y1: int, lanes: int) -> None:
    img[y0:y1] = (88, 88, 92)
    cv2.line(img, (0, y0), (w, y0), (200, 200, 200), 2)  # kerb / guardrail line
    cv2.line(img, (0, y1 - 1), (w, y1 - 1), (200, 200, 200), 2)
    dash, gap = max(8, w // 24), max(8, w // 32)
    for k in range(1, lanes):
        y = y0 + (y1 - y0) * k // lanes
        for x in range(0, w, dash + gap):
            cv2.line(img, (x, y), (x + dash, y), (225, 225, 225), 2)


def _draw_scene(spec: ClipSpec) -> np.ndarray:
    """The static background of ``spec`` as float32 BGR in [0, 255], day or night."""
    w, h = spec.width, spec.height
    rng = _rng(spec.seed, _STREAM_SCENE)
    lay = scene_layout(spec.scene, w, h)
    hz = lay.horizon_y
    img = np.zeros((h, w, 3), np.float32)
    lights = np.zeros_like(img)  # what glows at night; invisible by day
    # Sky: deep blue overhead to pale haze at the horizon, as under a clear daytime sky.
    _vgradient(img, 0, hz, (195, 145, 85), (235, 220, 200))
    ground = {"stack": (95, 120, 110), "construction": (70, 110, 150), "highway": (80, 125, 100),
              "outfall": (75, 120, 95)}[spec.scene]  # fmt: skip
    _vgradient(img, hz, h, tuple(0.9 * c for c in ground), ground)
    # Distant hills break the horizon line so it is not a perfect edge.
    xs = np.linspace(0, w, 12)
    ys = hz - (0.04 * h + 0.05 * h * rng.random(12))
    hills = np.array([[0, hz]] + [[int(x), int(y)] for x, y in zip(xs, ys)] + [[w, hz]], np.int32)
    cv2.fillPoly(img, [hills], (170, 175, 160))

    if spec.scene == "stack":
        base = int(0.67 * h)
        for fx, fy, fw in (
            (0.04, 0.45, 0.22),
            (0.28, 0.52, 0.18),
            (0.50, 0.40, 0.15),
            (0.80, 0.48, 0.17),
        ):
            x0, y0, x1 = int(fx * w), int(fy * h), int((fx + fw) * w)
            cv2.rectangle(img, (x0, y0), (x1, base), (150, 150, 158), -1)
            cv2.rectangle(img, (x0, y0), (x1, y0 + max(2, h // 60)), (110, 110, 118), -1)
            _window_grid(img, lights, rng, x0, y0 + h // 40, x1, base, max(8, h // 18))
        sx, sy = lay.need_stack_top()
        top_half, bot_half = max(3, int(0.018 * w)), max(4, int(0.028 * w))
        stack = np.array(
            [
                [sx - top_half, sy],
                [sx + top_half, sy],
                [sx + bot_half, base],
                [sx - bot_half, base],
            ],
            np.int32,
        )
        cv2.fillPoly(img, [stack], (175, 175, 180))
        for k in (
            1,
            3,
        ):  # red-and-white aviation bands near the top (aviation marking of tall stacks)
            y = sy + k * h // 40
            cv2.rectangle(
                img, (sx - top_half - 1, y), (sx + top_half + 1, y + h // 40), (45, 45, 190), -1
            )
        _lamp(lights, sx, sy + 2, h // 120, (40, 40, 255))
        _road(img, w, *lay.need_road(), lanes=2)
    elif spec.scene == "construction":
        base = int(0.72 * h)
        x0, x1, y0 = int(0.45 * w), int(0.85 * w), int(0.28 * h)
        floor = max(6, h // 20)
        for y in range(
            y0, base, floor
        ):  # concrete frame of an unfinished building: slabs and columns
            cv2.rectangle(img, (x0, y), (x1, y + 3), (160, 165, 170), -1)
        for x in np.linspace(x0, x1, 7).astype(int):
            cv2.rectangle(img, (int(x), y0), (int(x) + 3, base), (160, 165, 170), -1)
        mx = int(0.25 * w)  # tower crane: mast and jib
        cv2.line(img, (mx, base), (mx, int(0.10 * h)), (0, 190, 235), 4)
        cv2.line(
            img, (int(0.12 * w), int(0.13 * h)), (int(0.62 * w), int(0.13 * h)), (0, 190, 235), 3
        )
        cv2.line(img, (mx, int(0.06 * h)), (int(0.60 * w), int(0.13 * h)), (0, 160, 200), 1)
        _lamp(lights, mx, int(0.10 * h), h // 90, (200, 230, 255))
        for cx in (0.12, 0.35):  # spoil heaps, a dust source
            cv2.ellipse(
                img,
                (int(cx * w), int(0.74 * h)),
                (int(0.08 * w), int(0.05 * h)),
                0,
                180,
                360,
                (60, 95, 130),
                -1,
            )
        cv2.rectangle(img, (0, int(0.74 * h)), (w, int(0.78 * h)), (165, 100, 40), -1)  # hoarding
        _road(img, w, *lay.need_road(), lanes=2)
    elif spec.scene == "highway":
        y0, y1 = lay.need_road()
        _road(img, w, y0, y1, lanes=4)
        cv2.rectangle(img, (0, y0 - h // 40), (w, y0 - h // 80), (175, 180, 185), -1)  # guardrail
        for x in range(w // 10, w, w // 5):  # lamp posts along the verge
            cv2.line(img, (x, y0 - h // 60), (x, int(0.30 * h)), (120, 120, 125), 2)
            _lamp(lights, x, int(0.30 * h), h // 70)
    else:  # outfall
        y0, y1 = lay.need_river()
        for k in range(10):  # trees on the far bank
            cx = int((k + rng.random()) * w / 10)
            cv2.ellipse(img, (cx, y0 - h // 30), (w // 22, h // 18), 0, 0, 360, (55, 95, 60), -1)
        band = _noise_field(rng, y1 - y0, w, max(4, h // 40))
        # Water: murky green-grey, streaked horizontally the way ripples look from a bank.
        streaks = cv2.GaussianBlur(band, (0, 0), sigmaX=w / 40, sigmaY=0.6)[..., None]
        img[y0:y1] = np.asarray((115, 120, 95), np.float32) + 25 * (streaks - 0.5)
        px, py = (
            int(0.40 * w),
            int(0.86 * h),
        )  # outfall pipe in a concrete headwall on the near bank
        cv2.rectangle(img, (px - w // 14, y1), (px + w // 14, int(0.95 * h)), (165, 165, 165), -1)
        cv2.circle(img, (px, py), max(4, h // 28), (35, 35, 35), -1)
        _lamp(lights, px + w // 10, y1 + h // 40, h // 90)

    # Low-frequency texture so flat areas are not perfectly flat (and differ between seeds).
    img += 10.0 * (_noise_field(rng, h, w, max(8, h // 12))[..., None] - 0.5)
    if spec.night:
        # Night: ambient light falls to a fifth, bluish (sky glow); lit windows and lamps add
        # their light.
        img = (
            img * np.array([0.20, 0.16, 0.14], np.float32)
            + cv2.GaussianBlur(lights, (0, 0), 1.5)
            + lights * 0.6
        )
    return np.clip(img, 0, 255)


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class _Plume:
    """Precomputed texture and envelope of a smoke plume in its box."""

    texture: np.ndarray  # (h, 2w) smooth noise, scrolled to make the plume drift
    u: np.ndarray  # (h, w) horizontal coordinate, -1..1 across the box
    v: np.ndarray  # (h, w) height above the box bottom, 0..1


def _plume(seed: int, index: int, bw: int, bh: int) -> _Plume:
    rng = _rng(seed, _STREAM_EVENT, index)
    texture = _noise_field(rng, bh, 2 * bw, max(4, min(bw, bh) // 5))
    u = np.broadcast_to(np.linspace(-1.0, 1.0, bw, dtype=np.float32)[None, :], (bh, bw))
    v = np.broadcast_to(np.linspace(1.0, 0.0, bh, dtype=np.float32)[:, None], (bh, bw))
    return _Plume(texture, u, v)


def _plume_density(p: _Plume, event: EventSpec, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Envelope in [0, 1] and the drifted texture of a plume at time ``t``.

    The plume rises from the bottom centre of the box and widens with height, like a buoyant
    plume; it reaches the top of the box over the first 30 % of the event (it grows), and its
    texture drifts sideways (wind), bouncing back and forth so it never jumps.
    """
    _bh, bw = p.u.shape
    age = t - event.start_s
    reach = min(1.0, 0.45 + 0.55 * age / max(1e-6, 0.3 * (event.end_s - event.start_s)))
    half_width = 0.25 + 0.7 * p.v
    env = np.exp(-2.5 * (p.u / half_width) ** 2)
    env = env * np.clip((reach - p.v) / 0.15, 0, 1)  # soft front of the rising plume
    env = env * np.clip((1.0 - p.v) / 0.12, 0, 1)  # fade before the box top: nothing leaks out
    period = max(1, bw)
    shift = int(age * bw / 8.0) % (2 * period)
    shift = shift if shift < period else 2 * period - shift
    tex = p.texture[:, shift : shift + bw]
    return env.astype(np.float32), tex


def _draw_car(
    frame: np.ndarray,
    x: float,
    y: int,
    cw: int,
    ch: int,
    color: tuple,
    night: bool,
    facing: int = 1,
    beam: bool = False,
) -> None:
    """A side view of a car with its top-left at (x, y), front to the right (``facing`` 1) or
    left (-1); drawing clips at the frame edge. ``beam``: at night, the pool of light its
    headlights throw on the road ahead (what a camera sees of moving traffic at night)."""
    xi = round(x)
    body = tuple(c * (0.25 if night else 1.0) for c in color)
    glass = (30, 25, 20) if night else (90, 75, 60)
    if night and beam:
        bx0 = xi + cw if facing > 0 else xi - cw
        cv2.rectangle(
            frame, (bx0, y + 3 * ch // 5), (bx0 + cw, y + 19 * ch // 20), (70, 80, 85), -1
        )
    cabin0, cabin1 = (cw // 5, 3 * cw // 4) if facing > 0 else (cw // 4, 4 * cw // 5)
    glass0, glass1 = (cw // 4, 7 * cw // 10) if facing > 0 else (3 * cw // 10, 3 * cw // 4)
    cv2.rectangle(frame, (xi + cabin0, y), (xi + cabin1, y + 2 * ch // 5), body, -1)
    cv2.rectangle(frame, (xi + glass0, y + ch // 10), (xi + glass1, y + 2 * ch // 5), glass, -1)
    cv2.rectangle(frame, (xi, y + 2 * ch // 5), (xi + cw, y + 17 * ch // 20), body, -1)
    r = max(2, 3 * ch // 20)
    for wx in (xi + cw // 5, xi + 4 * cw // 5):
        cv2.circle(frame, (wx, y + 17 * ch // 20), r, (20, 20, 20), -1)
    if night:
        front, rear = (
            ((xi + cw - 3, xi + cw), (xi, xi + 2))
            if facing > 0
            else ((xi, xi + 3), (xi + cw - 2, xi + cw))
        )
        cv2.rectangle(
            frame, (front[0], y + ch // 2), (front[1], y + 3 * ch // 5), (200, 240, 255), -1
        )
        cv2.rectangle(frame, (rear[0], y + ch // 2), (rear[1], y + 3 * ch // 5), (30, 30, 220), -1)


_PERSON_CLOTHES = (
    ((60, 60, 70), (120, 80, 50)),
    ((50, 50, 170), (60, 55, 50)),
    ((40, 210, 220), (110, 90, 70)),
    ((150, 180, 200), (40, 40, 45)),
    ((130, 110, 60), (140, 140, 150)),
)  # (jacket, trousers) BGR
_SKIN = (95, 130, 180)


def _draw_person(
    canvas: np.ndarray,
    cx: float,
    foot_y: int,
    height: int,
    phase: float,
    clothes: tuple,
    light: float,
) -> None:
    """A walking figure, ``height`` pixels tall, feet at ``foot_y``, centred on ``cx``.

    Proportions follow the usual eight-heads canon closely enough for a 20-80 px figure; legs
    and arms swing with ``phase`` (radians of the stride). ``light`` scales every colour (1 by
    day; at night a figure is only seen where site lamps or an IR illuminator light it).
    """
    jacket, trousers = (tuple(c * light for c in col) for col in clothes)
    skin = tuple(c * light for c in _SKIN)
    hgt = float(height)
    head_r = max(2, round(hgt / 16))
    head_y = round(foot_y - hgt + head_r)
    neck_y, hip_y = round(foot_y - hgt + 2 * head_r), round(foot_y - 0.47 * hgt)
    half_t = max(2, round(hgt / 9))  # shoulders about a quarter of the height
    limb = max(2, round(hgt / 9))
    swing = 0.13 * hgt * math.sin(phase)
    xi = round(cx)
    for sgn in (1, -1):  # legs, then arms swinging the other way
        cv2.line(canvas, (xi, hip_y), (round(cx + sgn * swing), foot_y), trousers, limb)
    cv2.rectangle(canvas, (xi - half_t, neck_y), (xi + half_t, hip_y), jacket, -1)
    for sgn in (1, -1):
        cv2.line(
            canvas,
            (xi, neck_y + limb),
            (round(cx - sgn * 0.8 * swing), round(foot_y - 0.52 * hgt)),
            jacket,
            max(1, limb // 2),
        )
    cv2.circle(canvas, (xi, head_y), head_r, skin, -1)


class _Renderer:
    """Per-clip state: the background and each event's precomputed textures."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        self.background = _draw_scene(spec)
        # Sensor noise: drawing 0.7 M normals per frame costs ~10 ms, most of the render time.
        # Instead one oversized tile is drawn per clip and each frame reads it at its own random
        # offset with a random sign: per pixel the noise is still Gaussian with sigma ``noise``
        # and frames do not repeat a pattern at a fixed place.
        self.noise_tile = (
            _rng(spec.seed, _STREAM_NOISE).standard_normal(
                (spec.height + _NOISE_PAD, spec.width + _NOISE_PAD, 3), dtype=np.float32
            )
            * np.float32(spec.noise)
            if spec.noise > 0
            else None
        )
        self.plumes: dict[int, _Plume] = {}
        self.cars: dict[int, tuple] = {}
        self.people: dict[int, tuple] = {}
        for i, event in enumerate(spec.events):
            if event.kind in ("smoke", "black_smoke", "fire"):
                _, _, bw, bh = event.need_bbox()
                self.plumes[i] = _plume(spec.seed, i, bw, 2 * bh if event.kind == "fire" else bh)
            elif event.kind == "vehicle_stop":
                rng = _rng(spec.seed, _STREAM_EVENT, i)
                self.cars[i] = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))]
            elif event.kind == "person":
                rng = _rng(spec.seed, _STREAM_EVENT, i)
                self.people[i] = (
                    _PERSON_CLOTHES[int(rng.integers(len(_PERSON_CLOTHES)))],
                    1 if rng.random() < 0.5 else -1,
                    float(rng.uniform(0, 2 * math.pi)),
                )
        self.traffic = traffic_for(spec)
        self.fog: tuple[np.ndarray, np.ndarray] | None = None
        if spec.weather == "fog":
            # Haze thickens with distance: thickest at and above the horizon, thinner towards the
            # camera (Koschmieder: transmission falls exponentially with distance), patchy.
            h, w, hz = (
                spec.height,
                spec.width,
                scene_layout(spec.scene, spec.width, spec.height).horizon_y,
            )
            ys = np.arange(h, dtype=np.float32)
            depth = np.clip((h - ys) / max(1, h - hz), 0.0, 1.0)[:, None]
            patches = _noise_field(_rng(spec.seed, _STREAM_WEATHER), h, w, max(8, h // 6))
            alpha = np.clip(0.25 + 0.4 * depth + 0.1 * (patches - 0.5), 0.0, 0.9).astype(
                np.float32
            )[..., None]
            haze = np.array((30, 29, 28) if spec.night else (200, 202, 200), np.float32)
            self.fog = (alpha, (haze * alpha).astype(np.float32))

    def frame(self, n: int) -> np.ndarray:
        spec = self.spec
        t = n / spec.fps
        img = self.background.copy()
        for v in self.traffic:
            x = v.left(t)
            if (
                -2 * v.width < x < spec.width + v.width
            ):  # the headlight beam reaches a car length ahead
                _draw_car(
                    img,
                    x,
                    v.y,
                    v.width,
                    v.height,
                    _CAR_COLOURS[v.colour],
                    spec.night,
                    facing=1 if v.speed > 0 else -1,
                    beam=True,
                )
        for i, event in enumerate(spec.events):
            if event.kind == "smoke" and event.active(t):
                self._smoke(img, i, event, t)
            elif event.kind == "black_smoke" and event.active(t):
                self._black_smoke(img, i, event, t)
            elif event.kind == "vehicle_stop":
                self._vehicle(img, i, event, t)
            elif event.kind == "person" and event.active(t):
                self._person(img, i, event, t)
        self._weather(img, n)
        for i, event in enumerate(spec.events):
            # Flames are drawn over the weather: they outshine the scene by orders of magnitude,
            # so haze veils them far less than the reflected light around them (see _fire).
            if event.kind == "fire" and event.active(t):
                self._fire(img, i, n, event, t)
        img = self._camera(img, n, t)
        if self.noise_tile is not None:
            draw = _rng(spec.seed, _STREAM_NOISE, n)
            dy, dx = (int(v) for v in draw.integers(0, _NOISE_PAD, 2))
            window = self.noise_tile[dy : dy + spec.height, dx : dx + spec.width]
            if draw.random() < 0.5:
                img += window
            else:
                img -= window
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def _weather(self, img: np.ndarray, n: int) -> None:
        spec = self.spec
        if self.fog is not None:
            alpha, haze = self.fog
            img *= 1.0 - alpha
            img += haze
        elif spec.weather == "rain":
            # Overcast dims the scene; each frame shows fresh streaks (drops falling through the
            # exposure), fainter at night where only lit drops show.
            img *= 0.8
            h, w = img.shape[:2]
            rng = _rng(spec.seed, _STREAM_WEATHER, n)
            count = w * h // 1200
            xs, ys = rng.uniform(-w * 0.05, w, count), rng.uniform(-h * 0.05, h, count)
            lengths = rng.uniform(0.6, 1.4, count) * h / 22
            layer = np.zeros((h, w), np.float32)
            for x, y, ln in zip(xs, ys, lengths):
                cv2.line(layer, (int(x), int(y)), (int(x + 0.25 * ln), int(y + ln)), 1.0, 1)
            img += (layer * (10.0 if spec.night else 28.0))[..., None]

    def _person(self, img: np.ndarray, i: int, event: EventSpec, t: float) -> None:
        # The figure walks across its box over the interval, drawn into the box only.
        x, y, bw, bh = event.need_bbox()
        clothes, direction, phase0 = self.people[i]
        half = 0.3 * bh  # half the figure's widest stride, so it stays inside the box
        f = (t - event.start_s) / (event.end_s - event.start_s)
        cx = half + (bw - 2 * half) * (f if direction > 0 else 1.0 - f)
        phase = phase0 + 2 * math.pi * 1.8 * (t - event.start_s)  # ~1.8 strides per second
        crop = img[y : y + bh, x : x + bw]
        _draw_person(crop, cx, bh - 1, bh, phase, clothes, 0.55 if self.spec.night else 1.0)

    def _smoke(self, img: np.ndarray, i: int, event: EventSpec, t: float) -> None:
        x, y, bw, bh = event.need_bbox()
        env, tex = _plume_density(self.plumes[i], event, t)
        alpha = (env * (0.3 + 0.3 * tex))[..., None]  # alpha 0.3-0.6 in the core: see-through smoke
        grey = (60.0 + 30.0 * tex) if self.spec.night else (170.0 + 50.0 * tex)
        crop = img[y : y + bh, x : x + bw]
        crop[:] = crop * (1 - alpha) + grey[..., None] * alpha

    def _black_smoke(self, img: np.ndarray, i: int, event: EventSpec, t: float) -> None:
        # Ringelmann chart: grade g blocks 20*g % of the light, so the plume core transmits
        # (1 - 0.2 g) of the background behind it (GB/T 5468 / HJ/T 398 Ringelmann method).
        x, y, bw, bh = event.need_bbox()
        env, tex = _plume_density(self.plumes[i], event, t)
        density = env * (0.9 + 0.1 * tex)
        crop = img[y : y + bh, x : x + bw]
        crop *= (1.0 - 0.2 * event.grade * density)[..., None]

    def _fire(self, img: np.ndarray, i: int, n: int, event: EventSpec, t: float) -> None:
        x, y, bw, bh = event.need_bbox()
        p = self.plumes[i]
        # Flames lick upward: the texture (twice the box height) scrolls up fast, and each frame
        # draws its own intensity, the flicker that fire detectors look for (8-12 Hz in reality).
        scroll = int((t - event.start_s) * bh * 1.5) % bh
        tex = p.texture[bh - scroll : 2 * bh - scroll, :bw]
        flicker = 0.75 + 0.25 * _rng(self.spec.seed, _STREAM_EVENT, i, n).random()
        u = p.u[:bh]
        v = np.linspace(1.0, 0.0, bh, dtype=np.float32)[:, None]
        heat = (1.0 - v) ** 0.8 * (0.45 + 0.9 * tex) * np.exp(-1.5 * u**2) * flicker
        mask = np.clip((heat - 0.25) / 0.3, 0, 1) * np.clip((1.0 - v) / 0.1, 0, 1)
        hot = np.clip(heat, 0, 1)
        # Fire colours satisfy R > G > B and Cr > Cb (Celik & Demirel 2009, YCbCr fire rules):
        # orange at the edges, yellow where hottest.
        color = np.stack(
            [20 + 60 * np.clip(hot - 0.7, 0, 1), 70 + 180 * hot, np.full_like(hot, 255)], axis=-1
        )
        if self.fog is not None:  # an emitter seen through haze: a third of the scene's veil
            veil = self.fog[0][y : y + bh, x : x + bw] / 3.0
            haze = self.fog[1][y : y + bh, x : x + bw] / np.maximum(
                self.fog[0][y : y + bh, x : x + bw], 1e-6
            )
            color = color * (1.0 - veil) + haze * veil
        a = mask[..., None]
        crop = img[y : y + bh, x : x + bw]
        crop[:] = crop * (1 - a) + color * a

    def _vehicle(self, img: np.ndarray, i: int, event: EventSpec, t: float) -> None:
        bx, by, bw, bh = event.need_bbox()
        cw, ch, x_stop, y, speed = _stop_car((bx, by, bw, bh), self.spec.width)
        if event.active(t):
            x = x_stop
        elif t < event.start_s:
            x = x_stop - speed * (event.start_s - t)  # driving in from the left
        else:
            x = x_stop + speed * (t - event.end_s)  # driving off to the right
        if event.active(t):
            # Stopped with its lights on, as a car stopping on a road at night is; drawn into the
            # box only, so the pool of light ahead ends at the box edge.
            crop = img[by : by + bh, bx : bx + bw]
            _draw_car(crop, x - bx, y - by, cw, ch, self.cars[i], self.spec.night, beam=True)
            return
        if x + cw < 0 or x >= self.spec.width:
            return
        _draw_car(img, x, y, cw, ch, self.cars[i], self.spec.night, beam=True)

    def _camera(self, img: np.ndarray, n: int, t: float) -> np.ndarray:
        spec = self.spec
        h, w = img.shape[:2]
        on = {e.kind for e in spec.events if e.kind in CAMERA_EVENTS and e.active(t)}
        m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if "turned" in on:  # someone turned the camera: the view pans and tilts far off its preset
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 1.0)
            m[0, 2] += 0.22 * w
            m[1, 2] += 0.06 * h
        if spec.shake_px > 0:
            dx, dy = _rng(spec.seed, _STREAM_SHAKE, n).uniform(-spec.shake_px, spec.shake_px, 2)
            m[0, 2] += dx
            m[1, 2] += dy
        if "turned" in on or spec.shake_px > 0:
            img = cv2.warpAffine(
                img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        if "defocus" in on:  # a lens out of focus is a low-pass filter: strong Gaussian blur
            img = cv2.GaussianBlur(img, (0, 0), max(h, w) / 80.0)
        if "covered" in on:  # lens covered: almost no light, a faint leak around the cover
            img = 6.0 + 0.03 * img
        return img


# --------------------------------------------------------------------------------------------
# Public entry points


def render_clip(spec: ClipSpec) -> Iterator[tuple[float, np.ndarray]]:
    """Render the frames of ``spec``.

    Parameters
    ----------
    spec : ClipSpec
        The clip to render.

    Yields
    ------
    offset_s : float
        Frame time in seconds from the clip start, ``n / fps``.
    frame : numpy.ndarray
        BGR image, ``uint8``, shape ``(height, width, 3)``; a new array each frame (about
        0.7 MB at 640x360), the caller may keep or modify it.

    Notes
    -----
    Deterministic: equal specs yield identical frames. The background is drawn once per call
    (float32, 4 bytes per channel), events and noise per frame.
    """
    renderer = _Renderer(spec)
    for n in range(spec.n_frames):
        yield n / spec.fps, renderer.frame(n)


def write_mp4(spec: ClipSpec, path: str | Path) -> ClipTruth:
    """Render ``spec`` into an MP4 file (MPEG-4 Part 2, fourcc ``mp4v``) and return its truth.

    Parameters
    ----------
    spec : ClipSpec
        The clip to render.
    path : str or Path
        Output file; its folder must exist.

    Returns
    -------
    ClipTruth
        Ground truth of the clip, with ``path`` set.

    Raises
    ------
    FarsightError
        If OpenCV cannot open a writer for ``path``.
    """
    path = Path(path)
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter.fourcc(*"mp4v"), spec.fps, (spec.width, spec.height)
    )
    if not writer.isOpened():
        raise FarsightError(f"cannot open an mp4v video writer for {path}")
    try:
        for _, frame in render_clip(spec):
            writer.write(frame)
    finally:
        writer.release()
    return truth_for(spec, str(path))


def write_jpegs(spec: ClipSpec, directory: str | Path, quality: int = 90) -> ClipTruth:
    """Render ``spec`` as ``frame_00000.jpg``... in ``directory`` (created) and return its truth.

    Frame ``n`` is at offset ``n / fps``, as in :func:`render_clip`.

    Raises
    ------
    ValueError
        If ``quality`` is not in 1..100.
    FarsightError
        If a frame cannot be written.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality!r} must be in 1..100")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for n, (_, frame) in enumerate(render_clip(spec)):
        target = directory / f"frame_{n:05d}.jpg"
        if not cv2.imwrite(str(target), frame, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise FarsightError(f"cannot write {target}")
    return truth_for(spec, str(directory))
