"""Camera tamper detection: covered, defocused and moved, each debounced.

* Covered: the downscaled grayscale image has almost no contrast (low standard deviation)
  and is dark or bright (hand, cloth, tape, spray paint, a torch into the lens), or it is
  nearly uniform at any level. A dark, low-contrast view is also what a camera sees at night
  or in fog, so the dark/bright rule further needs the contrast to have *fallen* to
  ``covered_std_ratio`` of the contrast learned for this view (the same slow baseline as the
  focus measure): a night scene has little contrast, a covered lens has much less than the
  same scene a moment ago.
* Defocused: a normalised focus measure, variance of the Laplacian divided by the gray-level
  variance (Pertuz et al., "Analysis of focus measure operators for shape-from-focus",
  Pattern Recognition 46(5), 2013, operator LAP4 normalised so a global contrast change
  cancels), falls below a fraction of a slowly learned baseline.
* Moved: phase correlation (``cv2.phaseCorrelate``, Hanning-windowed) of the downscaled
  grayscale against a reference learned after warm-up gives a shift beyond a limit or a weak
  peak (the view no longer matches), unless more than two thirds of the textured tiles of a
  3x3 grid still match the reference in place: a large dynamic object, such as flames in fog,
  can sway the whole-frame peak but spoils only the tiles it covers. The reference follows
  slow changes while stable.

Each condition must hold for ``on_s`` seconds to be reported and be false for ``off_s`` to
clear; while the lens is covered the defocus and moved checks are frozen, since a covered
image says nothing about focus or pointing, and while the view is defocused the moved check
is frozen too.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from pydantic import Field, model_validator

from farsight.errors import ConfigError
from video.analysers.base import Debounce, Finding, check_bgr, prepare
from video.analysers.foreground import ema_weight
from video.analysers.params import Debounced, Downscaled, off_s_field, on_s_field, ordered

TILE_TEXTURE_MIN = 3.0
"""Laplacian std of a tile below which it is too smooth (sky, fog, night) to tell a move."""

COVERED = "camera_covered"
DEFOCUSED = "camera_defocused"
MOVED = "camera_moved"


class TamperParams(Downscaled, Debounced):
    """Tuning of :class:`TamperDetector` (``analysers.tamper`` in the camera YAML).

    Besides the shared ``analysis_height`` and ``on_s`` / ``off_s`` (see
    :mod:`video.analysers.params`; here 10 s and 5 s for every condition): the covered,
    defocus and moved limits. A static textured view scores a phase-correlation peak of about
    0.2 at 320x180, a large moving object about 0.1, a different view about 0.
    """

    on_s: float = on_s_field(10.0)
    off_s: float = off_s_field(5.0)
    warmup_s: float = Field(
        5.0,
        title="Warm-up",
        description="Seconds learning the focus baseline and reference view.",
        ge=0,
        le=3600,
    )
    covered_std_max: float = Field(
        12.0,
        title="Covered contrast",
        description="Gray std below which a dark or bright frame is covered.",
        ge=0,
        le=128,
    )
    covered_dark_max: float = Field(
        40.0,
        title="Covered dark level",
        description="Mean gray at or below which a low-contrast frame is covered.",
        ge=0,
        le=255,
    )
    covered_bright_min: float = Field(
        215.0,
        title="Covered bright level",
        description="Mean gray at or above which a low-contrast frame is covered.",
        ge=0,
        le=255,
    )
    uniform_std_max: float = Field(
        3.0,
        title="Uniform contrast",
        description="Gray std below which any frame is covered.",
        ge=0,
        le=128,
    )
    covered_std_ratio: float = Field(
        0.4,
        title="Contrast drop",
        description=(
            "A dark or bright low-contrast frame is covered only when its std fell below this "
            "share of the contrast learned for the view (a night scene is not a cover)."
        ),
        gt=0,
        le=1,
    )
    defocus_ratio: float = Field(
        0.35,
        title="Defocus ratio",
        description="Defocused below this fraction of the focus baseline.",
        gt=0,
        lt=1,
    )
    baseline_tau_s: float = Field(
        120.0,
        title="Baseline time constant",
        description="Seconds over which the focus baseline and reference view follow slow change.",
        gt=0,
        le=86_400,
    )
    moved_shift_px: float = Field(
        20.0,
        title="Moved shift",
        description="Shift in full-resolution pixels beyond which the camera has moved.",
        gt=0,
        le=10_000,
    )
    moved_min_response: float = Field(
        0.03,
        title="Moved match",
        description="Phase-correlation peak below which the view no longer matches.",
        ge=0,
        lt=1,
    )

    @model_validator(mode="after")
    def _dark_below_bright(self) -> TamperParams:
        ordered(
            "covered_dark_max", self.covered_dark_max, "covered_bright_min", self.covered_bright_min
        )
        return self


# --------------------------------------------------------------------------- pure steps


def gray_stats(gray: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a grayscale image, as floats."""
    mean, std = cv2.meanStdDev(gray)
    return float(mean[0, 0]), float(std[0, 0])


def focus_measure(gray: np.ndarray) -> float:
    """Normalised focus: variance of the Laplacian over gray-level variance (+1 to avoid /0).

    Parameters
    ----------
    gray : numpy.ndarray
        ``uint8`` or ``float32`` 2-D image.

    Returns
    -------
    float
        Dimensionless; independent of a global gain on the image, falls with blur.
    """
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    _, lap_std = cv2.meanStdDev(lap)
    _, std = cv2.meanStdDev(gray)
    return float(lap_std[0, 0] ** 2 / (std[0, 0] ** 2 + 1.0))


def running_mean(mean: float | None, value: float, n: int) -> float:
    """The mean of ``n`` values from the mean of the first ``n - 1`` (None before any)."""
    m = mean or 0.0
    return m + (value - m) / n


def follow(baseline: float, value: float, k: float) -> float:
    """One exponential-moving-average step of ``baseline`` towards ``value`` with weight ``k``."""
    return baseline + k * (value - baseline)


def is_covered(mean: float, std: float, std_baseline: float | None, p: TamperParams) -> bool:
    """Whether a frame of gray ``mean`` and ``std`` shows a covered lens.

    Nearly uniform at any level, or low-contrast and dark or bright with a contrast that fell
    to ``covered_std_ratio`` of the view's learned ``std_baseline``: a night scene has little
    contrast, a covered lens much less than the same scene a moment ago.
    """
    contrast_fell = std_baseline is not None and std <= p.covered_std_ratio * std_baseline
    return std <= p.uniform_std_max or (
        std <= p.covered_std_max
        and (mean <= p.covered_dark_max or mean >= p.covered_bright_min)
        and contrast_fell
    )


def phase_shift(
    reference: np.ndarray, image: np.ndarray, window: np.ndarray
) -> tuple[float, float, float]:
    """``(dx, dy, response)`` of the Hanning-windowed phase correlation of two ``float32``
    images, in their pixels.

    Copies: with a window, ``cv2.phaseCorrelate`` (OpenCV 5.0) multiplies its inputs by the
    window in place, which would turn the reference into a windowed image.
    """
    (dx, dy), response = cv2.phaseCorrelate(reference.copy(), image.copy(), window)
    return float(dx), float(dy), float(response)


def grid_tiles(shape: tuple[int, ...]) -> list[tuple[slice, slice]]:
    """Row and column slices of the tiles of a 3x3 grid over an image of ``shape``, row by row."""
    th, tw = shape[0] // 3, shape[1] // 3
    return [
        (slice(r * th, (r + 1) * th), slice(c * tw, (c + 1) * tw))
        for r in range(3)
        for c in range(3)
    ]


def tile_texture(reference: np.ndarray) -> list[float]:
    """Standard deviation of the Laplacian of each tile of the 3x3 grid (fine texture)."""
    lap = cv2.Laplacian(reference, cv2.CV_32F)
    return [float(lap[rows, cols].std()) for rows, cols in grid_tiles(reference.shape)]


def tile_matches(
    reference: np.ndarray, image: np.ndarray, tile_window: np.ndarray, scale: float, p: TamperParams
) -> list[bool]:
    """Per tile of the 3x3 grid: does its phase correlation with the reference show no shift
    and a clear peak?

    Half the whole-frame shift limit: a tile of horizontal structure (road, hoarding) can look
    unmoved after a pan, but not after the tilt that comes with it. A matching textured tile
    scores 0.3-0.9, hence a floor of 0.1 on the peak.
    """
    min_response = max(0.1, p.moved_min_response)
    out = []
    for rows, cols in grid_tiles(image.shape):
        dx, dy, response = phase_shift(reference[rows, cols], image[rows, cols], tile_window)
        out.append(
            math.hypot(dx, dy) / scale <= 0.5 * p.moved_shift_px and response >= min_response
        )
    return out


def informative_tiles(stable: list[bool], texture: list[float]) -> list[bool]:
    """Tiles that can tell a move: matching the reference when the check started and textured
    (a smooth tile of sky, haze or night matches itself after any move)."""
    return [ok and t >= TILE_TEXTURE_MIN for ok, t in zip(stable, texture, strict=True)]


def tiles_moved(stable: list[bool], informative: list[bool]) -> tuple[bool, int] | None:
    """Moved, and how many informative tiles still match, decided on the informative tiles:
    moved unless more than two thirds still match in place (a flame or a lorry spoils one or
    two); None with fewer than three informative tiles (the whole frame decides)."""
    idx = [i for i, ok in enumerate(informative) if ok]
    if len(idx) < 3:
        return None
    still = sum(stable[i] for i in idx)
    return 3 * (len(idx) - still) >= len(idx), still


# --------------------------------------------------------------------------- detector


class TamperDetector:
    """Per-camera tamper detector; see the module docstring for the checks.

    Parameters
    ----------
    params : TamperParams, optional

    Notes
    -----
    State: one ``float32`` reference view and a Hanning window at analysis resolution
    (about 460 kB at 320x180), plus a few scalars. The frame size may not change after
    the first frame (call :meth:`rebaseline` if the stream resolution changes).
    Findings have ``bbox=None`` and ``zone=None``; ``detail["state"]`` is ``"active"`` when a
    condition is confirmed and ``"cleared"`` when it ends, with the measurements that decided.
    """

    def __init__(self, params: TamperParams | None = None) -> None:
        self.params = params if params is not None else TamperParams()
        p = self.params
        self._debounce = {k: Debounce(p.on_s, p.off_s) for k in (COVERED, DEFOCUSED, MOVED)}
        self._held: set[str] = set()
        self.rebaseline()

    def rebaseline(self) -> None:
        """Forget the learned focus baseline and reference view (e.g. after a deliberate re-aim).

        Active conditions stay active until their checks clear against the new baseline.
        """
        self._start: float | None = None
        self._last_ts: float | None = None
        self._shape: tuple[int, int] | None = None
        self._scale = 1.0
        self._window: np.ndarray | None = None
        self._tile_window: np.ndarray | None = None
        self._informative: list[bool] | None = None
        self._reference: np.ndarray | None = None
        self._focus_baseline: float | None = None
        self._std_baseline: float | None = None
        self._std_n = 0
        self._focus_n = 0
        self.last_metrics: dict[str, float] = {}
        """Measurements of the most recent frame, for diagnostics and tuning."""

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        check_bgr(frame)
        if self._shape is not None and frame.shape[:2] != self._shape:
            raise ConfigError(
                f"frame size changed from {self._shape} to {frame.shape[:2]}; call rebaseline()"
            )
        small, scale = prepare(frame, self.params.analysis_height, None)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if self._shape is None:
            h, w = frame.shape[:2]
            self._shape, self._scale = (h, w), scale
            self._window = cv2.createHanningWindow((gray.shape[1], gray.shape[0]), cv2.CV_32F)
        return np.asarray(gray)

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Check one frame for tampering.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing.

        Returns
        -------
        list of Finding
            At most one per kind, only on a confirmed start or end of a condition.

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` or its size changed.
        """
        p = self.params
        gray = self._prepare(frame)
        self._held = set()  # a check frozen in this frame holds nothing
        if self._start is None:
            self._start = ts
        dt = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        self._last_ts = ts
        k = ema_weight(dt, p.baseline_tau_s)
        warm = ts - self._start >= p.warmup_s
        mean, std = gray_stats(gray)
        if not warm:
            # The contrast baseline learns from every warm-up frame, covered-looking or not: a
            # dark night view must become the baseline rather than be taken for a cover.
            self._std_n += 1
            self._std_baseline = running_mean(self._std_baseline, std, self._std_n)
        covered = is_covered(mean, std, self._std_baseline, p)
        metrics: dict[str, float] = {"mean": mean, "std": std}
        findings: list[Finding] = []
        margin = 1.0 - std / max(p.covered_std_max, 1e-6)
        self._emit(COVERED, covered, ts, metrics, findings, margin)
        if not covered:
            # A covered image says nothing about focus or pointing: those checks wait.
            self._check_view(gray, std, ts, k, warm, metrics, findings)
        self.last_metrics = metrics
        return findings

    def _check_view(
        self,
        gray: np.ndarray,
        std: float,
        ts: float,
        k: float,
        warm: bool,
        metrics: dict[str, float],
        out: list[Finding],
    ) -> None:
        """Focus, then pointing, of an uncovered frame (learning both during the warm-up)."""
        focus = focus_measure(gray)
        metrics["focus"] = focus
        g32 = gray.astype(np.float32)
        if not warm or self._focus_baseline is None:
            self._learn_view(focus, g32)
            if not warm:
                return
        defocused = self._check_focus(focus, std, ts, k, metrics, out)
        if not (defocused or self._debounce[DEFOCUSED].active):
            # A blurred view says nothing reliable about pointing (its correlation peak
            # collapses although the camera did not move): the check waits for focus.
            self._check_pointing(g32, ts, k, metrics, out)

    def _learn_view(self, focus: float, g32: np.ndarray) -> None:
        """Warm-up: plain running means of the focus measure and of the view; averaging the
        reference suppresses sensor noise, which would otherwise correlate."""
        self._focus_n += 1
        self._focus_baseline = running_mean(self._focus_baseline, focus, self._focus_n)
        if self._reference is None:
            self._reference = g32
        else:
            cv2.accumulateWeighted(g32, self._reference, 1.0 / self._focus_n)

    def _check_focus(
        self,
        focus: float,
        std: float,
        ts: float,
        k: float,
        metrics: dict[str, float],
        out: list[Finding],
    ) -> bool:
        """Defocus check against the baselines, which follow the view while it is sharp."""
        p = self.params
        assert self._focus_baseline is not None
        ratio = focus / max(self._focus_baseline, 1e-9)
        metrics["focus_ratio"] = ratio
        defocused = ratio < p.defocus_ratio
        self._emit(DEFOCUSED, defocused, ts, metrics, out, 1.0 - ratio / p.defocus_ratio)
        if not defocused and not self._debounce[DEFOCUSED].active:
            self._focus_baseline = follow(self._focus_baseline, focus, k)
            if self._std_baseline is not None:
                self._std_baseline = follow(self._std_baseline, std, k)
        return defocused

    def _check_pointing(
        self, g32: np.ndarray, ts: float, k: float, metrics: dict[str, float], out: list[Finding]
    ) -> None:
        """Moved check: whole-frame phase correlation, overruled by the informative tiles.

        Something large and dynamic (flames, a plume, a lorry) can sway the whole-frame
        correlation, most of all in fog or at night where the static scene is faint, and the
        peak of an unrelated view can still clear the threshold. A camera that moved moves
        every part of the view: see :func:`tiles_moved`.
        """
        p = self.params
        reference, window = self._reference, self._window
        assert reference is not None and window is not None
        dx, dy, response = phase_shift(reference, g32, window)
        shift = math.hypot(dx, dy) / self._scale
        metrics.update(
            shift_px=shift, dx_px=dx / self._scale, dy_px=dy / self._scale, response=response
        )
        moved = shift > p.moved_shift_px or response < p.moved_min_response
        if self._tile_window is None:
            th, tw = g32.shape[0] // 3, g32.shape[1] // 3
            self._tile_window = cv2.createHanningWindow((tw, th), cv2.CV_32F)
        stable = tile_matches(reference, g32, self._tile_window, self._scale, p)
        if self._informative is None:
            self._informative = informative_tiles(stable, tile_texture(reference))
        by_tiles = tiles_moved(stable, self._informative)
        if by_tiles is not None:
            moved, still = by_tiles
            metrics["stable_tiles"] = float(still)
        margin = min(1.0, shift / (2 * p.moved_shift_px))
        self._emit(MOVED, moved, ts, metrics, out, margin)
        if not moved and not self._debounce[MOVED].active:
            cv2.accumulateWeighted(g32, reference, k)

    def _emit(
        self,
        kind: str,
        condition: bool,
        ts: float,
        metrics: dict[str, float],
        out: list[Finding],
        margin: float,
    ) -> None:
        if condition:
            self._held.add(kind)
        change = self._debounce[kind].update(condition, ts)
        if change == "on":
            conf = 0.5 + 0.5 * min(1.0, max(0.0, margin))
            detail = {"state": "active", "confirmed_at": ts, **metrics}
            out.append(Finding(kind=kind, confidence=conf, detail=detail))
        elif change == "off":
            detail = {"state": "cleared", "until": ts, **metrics}
            out.append(Finding(kind=kind, confidence=1.0, detail=detail))

    def view_conditions(self) -> frozenset[str]:
        """Kinds whose condition held in the last frame (confirmed or not yet) or is still
        confirmed active: what the pipeline's reasoning stage (:mod:`video.reasoning`) needs
        before the ``on_s`` debounce has confirmed anything."""
        return frozenset(self._held) | self.active

    @property
    def active(self) -> frozenset[str]:
        """Kinds whose condition is currently confirmed."""
        return frozenset(k for k, d in self._debounce.items() if d.active)
