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
from dataclasses import dataclass

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import Debounce, Finding, check_bgr

_TILE_TEXTURE_MIN = (
    3.0  # Laplacian std of a tile below which it is too smooth (sky, fog, night) to tell a move
)

COVERED = "camera_covered"
DEFOCUSED = "camera_defocused"
MOVED = "camera_moved"


@dataclass(frozen=True, slots=True)
class TamperParams:
    """Tuning of :class:`TamperDetector`.

    Parameters
    ----------
    analysis_height : int, default 180
        Height of the downscaled grayscale used by every check (32..1080).
    on_s, off_s : float, default 10.0, 5.0
        Debounce: seconds a condition must hold to fire, and be false to clear (>= 0).
    warmup_s : float, default 5.0
        Seconds of frames used to learn the focus baseline and the reference view
        before the defocus and moved checks run (>= 0).
    covered_std_max : float, default 12.0
        Gray standard deviation under which a dark or bright frame counts as covered.
    covered_dark_max, covered_bright_min : float, default 40.0, 215.0
        Mean gray level at or below / at or above which a low-contrast frame is covered.
    uniform_std_max : float, default 3.0
        Gray standard deviation under which a frame counts as covered at any mean.
    covered_std_ratio : float, default 0.4
        A dark or bright low-contrast frame is covered only when its standard deviation is
        below this fraction of the learned contrast baseline (0..1].
    defocus_ratio : float, default 0.35
        Defocused when the focus measure is below this fraction of the baseline (0..1).
    baseline_tau_s : float, default 120.0
        Time constant of the focus baseline and the reference view updates (> 0).
    moved_shift_px : float, default 20.0
        Shift in full-resolution pixels beyond which the camera has moved (> 0).
    moved_min_response : float, default 0.03
        Phase-correlation peak below which the view no longer matches (0..1). A static
        textured view scores about 0.2 at 320x180, a large moving object about 0.1, a
        different view about 0.
    """

    analysis_height: int = 180
    on_s: float = 10.0
    off_s: float = 5.0
    warmup_s: float = 5.0
    covered_std_max: float = 12.0
    covered_dark_max: float = 40.0
    covered_bright_min: float = 215.0
    uniform_std_max: float = 3.0
    covered_std_ratio: float = 0.4
    defocus_ratio: float = 0.35
    baseline_tau_s: float = 120.0
    moved_shift_px: float = 20.0
    moved_min_response: float = 0.03

    def __post_init__(self) -> None:
        problems = []
        if not 32 <= self.analysis_height <= 1080:
            problems.append(f"analysis_height must be in 32..1080, got {self.analysis_height!r}")
        for name in ("on_s", "off_s", "warmup_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                problems.append(f"{name} must be a finite number >= 0, got {v!r}")
        for name in ("covered_std_max", "uniform_std_max"):
            v = getattr(self, name)
            if not 0 <= v <= 128:
                problems.append(f"{name} must be in 0..128, got {v!r}")
        if not 0 <= self.covered_dark_max < self.covered_bright_min <= 255:
            problems.append(
                "need 0 <= covered_dark_max < covered_bright_min <= 255, got "
                f"{self.covered_dark_max!r}, {self.covered_bright_min!r}"
            )
        if not 0 < self.covered_std_ratio <= 1:
            problems.append(
                f"covered_std_ratio must satisfy 0 < x <= 1, got {self.covered_std_ratio!r}"
            )
        if not 0 < self.defocus_ratio < 1:
            problems.append(f"defocus_ratio must satisfy 0 < x < 1, got {self.defocus_ratio!r}")
        if not (math.isfinite(self.baseline_tau_s) and self.baseline_tau_s > 0):
            problems.append(f"baseline_tau_s must be > 0, got {self.baseline_tau_s!r}")
        if not (math.isfinite(self.moved_shift_px) and self.moved_shift_px > 0):
            problems.append(f"moved_shift_px must be > 0, got {self.moved_shift_px!r}")
        if not 0 <= self.moved_min_response < 1:
            problems.append(
                f"moved_min_response must be in [0, 1), got {self.moved_min_response!r}"
            )
        if problems:
            raise ConfigError("; ".join(problems), source="TamperParams")


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
        self.rebaseline()

    def rebaseline(self) -> None:
        """Forget the learned focus baseline and reference view (e.g. after a deliberate re-aim).

        Active conditions stay active until their checks clear against the new baseline.
        """
        self._start: float | None = None
        self._last_ts: float | None = None
        self._shape: tuple[int, int] | None = None
        self._size: tuple[int, int] | None = None
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
        if self._shape is None:
            h, w = frame.shape[:2]
            rh = min(self.params.analysis_height, h)
            self._scale = rh / h
            self._size = (max(1, round(w * self._scale)), rh)
            self._shape = (h, w)
            self._window = cv2.createHanningWindow(self._size, cv2.CV_32F)
        elif frame.shape[:2] != self._shape:
            raise ConfigError(
                f"frame size changed from {self._shape} to {frame.shape[:2]}; call rebaseline()"
            )
        small = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)

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
        if self._start is None:
            self._start = ts
        dt = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        self._last_ts = ts
        k = 1.0 - math.exp(-dt / p.baseline_tau_s)  # time-based EMA weight, frame-rate independent

        mean, std = gray_stats(gray)
        warm = ts - self._start >= p.warmup_s
        if not warm:
            # The contrast baseline learns from every warm-up frame, covered-looking or not: a
            # dark night view must become the baseline rather than be taken for a cover.
            self._std_n += 1
            sb = self._std_baseline or 0.0
            self._std_baseline = sb + (std - sb) / self._std_n
        contrast_fell = (
            self._std_baseline is not None and std <= p.covered_std_ratio * self._std_baseline
        )
        covered = std <= p.uniform_std_max or (
            std <= p.covered_std_max
            and (mean <= p.covered_dark_max or mean >= p.covered_bright_min)
            and contrast_fell
        )
        metrics: dict[str, float] = {"mean": mean, "std": std}
        findings: list[Finding] = []
        self._emit(
            COVERED, covered, ts, metrics, findings, margin=1.0 - std / max(p.covered_std_max, 1e-6)
        )

        if not covered:
            focus = focus_measure(gray)
            metrics["focus"] = focus
            g32 = gray.astype(np.float32)
            if not warm or self._focus_baseline is None:
                # Warm-up: plain running means of the focus measure and of the view; averaging
                # the reference suppresses sensor noise, which would otherwise correlate.
                self._focus_n += 1
                fb = self._focus_baseline or 0.0
                self._focus_baseline = fb + (focus - fb) / self._focus_n
                if self._reference is None:
                    self._reference = g32
                else:
                    cv2.accumulateWeighted(g32, self._reference, 1.0 / self._focus_n)
                if not warm:
                    self.last_metrics = metrics
                    return findings
            ratio = focus / max(self._focus_baseline, 1e-9)
            metrics["focus_ratio"] = ratio
            defocused = ratio < p.defocus_ratio
            self._emit(
                DEFOCUSED, defocused, ts, metrics, findings, margin=1.0 - ratio / p.defocus_ratio
            )
            if not defocused and not self._debounce[DEFOCUSED].active:
                self._focus_baseline += k * (focus - self._focus_baseline)
                if self._std_baseline is not None:
                    self._std_baseline += k * (std - self._std_baseline)

            if not (defocused or self._debounce[DEFOCUSED].active):
                # A blurred view says nothing reliable about pointing (its correlation peak
                # collapses although the camera did not move): the check waits for focus.
                # Copies: with a window, cv2.phaseCorrelate (OpenCV 5.0) multiplies its inputs
                # by the window in place, which would turn the reference into a windowed image.
                (dx, dy), response = cv2.phaseCorrelate(
                    self._reference.copy(), g32.copy(), self._window
                )
                shift = math.hypot(dx, dy) / self._scale
                metrics.update(
                    shift_px=shift,
                    dx_px=dx / self._scale,
                    dy_px=dy / self._scale,
                    response=float(response),
                )
                moved = shift > p.moved_shift_px or response < p.moved_min_response
                # Something large and dynamic (flames, a plume, a lorry) can sway the whole-frame
                # correlation, most of all in fog or at night where the static scene is faint,
                # and the peak of an unrelated view can still clear the threshold. A camera that
                # moved moves every part of the view: decide on the tiles of a 3x3 grid that
                # matched the reference when the check started and have fine texture (a smooth
                # tile of sky, haze or night matches itself after any move): moved unless more
                # than two thirds of them still match in place (a flame or a lorry spoils one or
                # two tiles); with fewer than three such tiles the whole frame decides.
                stable = self._tile_matches(g32)
                if self._informative is None:
                    texture = self._tile_texture()
                    self._informative = [
                        ok and t >= _TILE_TEXTURE_MIN for ok, t in zip(stable, texture)
                    ]
                informative = [i for i, ok in enumerate(self._informative) if ok]
                if len(informative) >= 3:
                    still = sum(stable[i] for i in informative)
                    metrics["stable_tiles"] = float(still)
                    moved = 3 * (len(informative) - still) >= len(informative)
                self._emit(
                    MOVED,
                    moved,
                    ts,
                    metrics,
                    findings,
                    margin=min(1.0, shift / (2 * p.moved_shift_px)),
                )
                if not moved and not self._debounce[MOVED].active:
                    cv2.accumulateWeighted(g32, self._reference, k)
        self.last_metrics = metrics
        return findings

    def _tile_texture(self) -> list[float]:
        """Standard deviation of the Laplacian of each reference tile of the 3x3 grid (fine texture)."""
        assert self._reference is not None
        h, w = self._reference.shape
        th, tw = h // 3, w // 3
        lap = cv2.Laplacian(self._reference, cv2.CV_32F)
        return [
            float(lap[r * th : (r + 1) * th, c * tw : (c + 1) * tw].std())
            for r in range(3)
            for c in range(3)
        ]

    def _tile_matches(self, g32: np.ndarray) -> list[bool]:
        """Per tile of a 3x3 grid: does its phase correlation with the reference show no shift and a clear peak?"""
        assert self._reference is not None
        p = self.params
        h, w = g32.shape
        th, tw = h // 3, w // 3
        if self._tile_window is None:
            self._tile_window = cv2.createHanningWindow((tw, th), cv2.CV_32F)
        min_response = max(0.1, p.moved_min_response)  # a matching textured tile scores 0.3-0.9
        out = []
        for r in range(3):
            for c in range(3):
                ref = self._reference[r * th : (r + 1) * th, c * tw : (c + 1) * tw]
                cur = g32[r * th : (r + 1) * th, c * tw : (c + 1) * tw]
                (dx, dy), response = cv2.phaseCorrelate(
                    ref.copy(), cur.copy(), self._tile_window
                )  # in place, see update
                # Half the whole-frame limit: a tile of horizontal structure (road, hoarding) can
                # look unmoved after a pan, but not after the tilt that comes with it.
                out.append(
                    math.hypot(dx, dy) / self._scale <= 0.5 * p.moved_shift_px
                    and response >= min_response
                )
        return out

    def _emit(
        self,
        kind: str,
        condition: bool,
        ts: float,
        metrics: dict[str, float],
        out: list[Finding],
        margin: float,
    ) -> None:
        change = self._debounce[kind].update(condition, ts)
        if change == "on":
            conf = 0.5 + 0.5 * min(1.0, max(0.0, margin))
            out.append(
                Finding(
                    kind=kind,
                    confidence=conf,
                    detail={"state": "active", "confirmed_at": ts, **metrics},
                )
            )
        elif change == "off":
            out.append(
                Finding(
                    kind=kind, confidence=1.0, detail={"state": "cleared", "until": ts, **metrics}
                )
            )

    @property
    def active(self) -> frozenset[str]:
        """Kinds whose condition is currently confirmed."""
        return frozenset(k for k, d in self._debounce.items() if d.active)
