"""Global change of the view: exposure and white-balance jumps, a switch to infrared, focus drift.

A camera changes its whole picture without anything happening in the scene: auto-exposure
steps, the white balance flips between presets, a day/night camera switches to infrared at dusk
(colour to near-grey), the focus drifts as the lens warms. Background models read each of these
as change everywhere, and edge-based cues (smoke) read a loss of focus as haze. This analyser
reports them as findings of their own and tells the pipeline's reasoning stage
(:mod:`video.reasoning`) that the view is unsettled, so that the scene analysers' findings are
held back while it lasts.

Every frame is reduced to a 4x4 grid of mean colours (an ``INTER_AREA`` resize), the mean
channel spread (max - min over B, G, R) of a small thumbnail, and the normalised focus
measure of :func:`video.analysers.tamper.focus_measure` per tile. A reference of the tile
colours and the spread follows the view with ``reference_tau_s``, so a jump holds for about
that long and then is learned; the focus reference follows with the much longer
``focus_tau_s``, so a drift over minutes still shows.

* ``exposure_change``: the median over the tiles of log((luma + 8) / (reference + 8)) exceeds
  log(1 + ``exposure_jump``), and ``agree_share`` of the tiles moved the same way by at least
  half that: a plume or a lorry brightens a part of the view, an exposure step all of it.
* ``colour_change``: the median change of the red or the blue share of the light over the lit
  tiles exceeds ``colour_shift``, with the same agreement (a white-balance jump).
* ``infrared_switch``: the mean channel spread fell to ``grey_spread`` or below from a
  reference of ``colour_spread`` or more (day to infrared), or the reverse (infrared to day).
  It explains the exposure and colour change that come with it, which are then not reported
  as long as they last.
* ``focus_drift``: the median over the tiles of the focus measure's ratio to its long
  reference fell below ``focus_drift_ratio`` (a flame at night sharpens or softens a tile or
  two, a drifting lens all of them).
  An abrupt, strong defocus is the tamper analyser's ``camera_defocused``; the reasoning stage
  reports that rather than this.

Each kind is debounced (``on_s`` / ``off_s``) and reported in every frame while active, as the
scene analysers report theirs, with ``bbox=None`` and the measurements in ``detail``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field, model_validator

from farsight.errors import ConfigError
from video.analysers.base import Debounce, Finding, check_bgr, prepare
from video.analysers.foreground import ema_weight
from video.analysers.params import Debounced, Downscaled, off_s_field, on_s_field, ordered

EXPOSURE = "exposure_change"
COLOUR = "colour_change"
INFRARED = "infrared_switch"
FOCUS_DRIFT = "focus_drift"
KINDS = (INFRARED, COLOUR, EXPOSURE, FOCUS_DRIFT)
"""The kinds this analyser reports; the first three in order of precedence."""

GRID = 4
LUMA_FLOOR = 8.0  # gray levels added before a ratio: sensor noise in the dark is no exposure step
LIT_MIN = 16.0  # a tile darker than this has no measurable colour balance
THUMB_WIDTH = 80


class GlobalChangeParams(Downscaled, Debounced):
    """Tuning of :class:`GlobalChangeDetector` (``analysers.global_change`` in the camera YAML)."""

    on_s: float = on_s_field(1.0)
    off_s: float = off_s_field(2.0)
    warmup_s: float = Field(
        5.0,
        title="Warm-up",
        description="Seconds learning the reference view before anything is reported.",
        ge=0,
        le=3600,
    )
    reference_tau_s: float = Field(
        10.0,
        title="Reference time constant",
        description=(
            "Seconds over which the reference brightness, colour and colour spread follow the "
            "view; a jump is reported for about this long, then learned."
        ),
        gt=0,
        le=3600,
    )
    focus_tau_s: float = Field(
        1800.0,
        title="Focus reference time constant",
        description="Seconds over which the focus reference follows the view (a drift is slower).",
        gt=0,
        le=86_400,
    )
    exposure_jump: float = Field(
        0.25,
        title="Exposure jump",
        description="Relative brightness change of the view (median over the tiles): a jump.",
        gt=0,
        le=4,
    )
    colour_shift: float = Field(
        0.03,
        title="Colour shift",
        description="Change of the red or blue share of the light that is a white-balance jump.",
        gt=0,
        le=0.5,
    )
    agree_share: float = Field(
        0.75,
        title="Agreeing tiles",
        description=(
            "Share of the 4x4 tiles that must change the same way: a global change moves the "
            "whole view, a plume or a vehicle a part of it."
        ),
        gt=0.5,
        le=1,
    )
    grey_spread: float = Field(
        3.0,
        title="Grey spread",
        description="Mean channel spread (gray levels) at or below which the view is grey (IR).",
        ge=0,
        le=64,
    )
    colour_spread: float = Field(
        6.0,
        title="Colour spread",
        description="Mean channel spread (gray levels) at or above which the view is in colour.",
        gt=0,
        le=128,
    )
    focus_drift_ratio: float = Field(
        0.6,
        title="Focus drift ratio",
        description="Focus drift below this fraction of the long-term focus reference.",
        gt=0,
        lt=1,
    )

    @model_validator(mode="after")
    def _grey_below_colour(self) -> GlobalChangeParams:
        ordered("grey_spread", self.grey_spread, "colour_spread", self.colour_spread)
        return self


# --------------------------------------------------------------------------- pure steps


@dataclass(frozen=True, slots=True)
class ViewStats:
    """What a frame says about the whole view.

    ``luma``, ``red``, ``blue`` and ``focus`` are ``float32`` arrays of the 4x4 tiles (mean
    luma, share of red and of blue in the light, normalised focus measure); ``spread`` is the
    mean channel spread.
    """

    luma: np.ndarray
    red: np.ndarray
    blue: np.ndarray
    spread: float
    focus: np.ndarray


def tile_focus(gray: np.ndarray) -> np.ndarray:
    """The normalised focus measure of :func:`video.analysers.tamper.focus_measure` per tile of
    the 4x4 grid: a bright flame at night or a lorry's lights change it in a tile or two, a lens
    out of focus in all of them."""
    g = gray.astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)

    def tile_var(img: np.ndarray) -> np.ndarray:
        mean = cv2.resize(img, (GRID, GRID), interpolation=cv2.INTER_AREA)
        sq = cv2.resize(img * img, (GRID, GRID), interpolation=cv2.INTER_AREA)
        return np.maximum(sq - mean * mean, 0.0)

    return np.asarray((tile_var(lap) / (tile_var(g) + 1.0)).ravel(), np.float32)


def view_stats(small: np.ndarray) -> ViewStats:
    """Reduce a downscaled BGR ``uint8`` frame to its :class:`ViewStats`."""
    tiles = cv2.resize(small, (GRID, GRID), interpolation=cv2.INTER_AREA).astype(np.float32)
    b, g, r = tiles[..., 0].ravel(), tiles[..., 1].ravel(), tiles[..., 2].ravel()
    total = b + g + r + 1e-3
    h, w = small.shape[:2]
    thumb = cv2.resize(
        small, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA
    )
    spread = float((thumb.max(axis=2).astype(np.int16) - thumb.min(axis=2)).mean())
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return ViewStats(0.114 * b + 0.587 * g + 0.299 * r, r / total, b / total, spread,
                     tile_focus(gray))  # fmt: skip


def agreed_change(delta: np.ndarray, limit: float, share: float) -> float:
    """The median of per-tile changes ``delta`` if it reaches ``limit`` and ``share`` of the
    tiles moved the same way by at least half the limit, else 0."""
    if delta.size == 0:
        return 0.0
    med = float(np.median(delta))
    if abs(med) < limit:
        return 0.0
    same_way = (np.sign(delta) == math.copysign(1.0, med)) & (np.abs(delta) >= 0.5 * limit)
    agree = float(np.mean(same_way))
    return med if agree >= share else 0.0


def exposure_gain(now: ViewStats, ref: ViewStats, p: GlobalChangeParams) -> float:
    """Log brightness gain of the view over the reference when it is a global jump, else 0."""
    delta = np.log((now.luma + LUMA_FLOOR) / (ref.luma + LUMA_FLOOR))
    return agreed_change(delta, math.log1p(p.exposure_jump), p.agree_share)


def colour_shift(now: ViewStats, ref: ViewStats, p: GlobalChangeParams) -> float:
    """Change of the red or blue share (the larger) over the lit tiles when global, else 0."""
    lit = (now.luma >= LIT_MIN) & (ref.luma >= LIT_MIN)
    if lit.sum() < GRID:
        return 0.0
    shifts = (agreed_change(d[lit], p.colour_shift, p.agree_share)
              for d in (now.red - ref.red, now.blue - ref.blue))  # fmt: skip
    return max(shifts, key=abs)


def infrared_switch(now: ViewStats, ref: ViewStats, p: GlobalChangeParams) -> int:
    """+1 for a switch from colour to grey (infrared), -1 for the reverse, 0 for none."""
    if now.spread <= p.grey_spread and ref.spread >= p.colour_spread:
        return 1
    if now.spread >= p.colour_spread and ref.spread <= p.grey_spread:
        return -1
    return 0


def blend(ref: ViewStats, now: ViewStats, k: float, k_focus: float) -> ViewStats:
    """One exponential-moving-average step of the reference towards ``now`` (weights ``k``,
    and ``k_focus`` for the focus)."""
    return ViewStats(
        ref.luma + k * (now.luma - ref.luma),
        ref.red + k * (now.red - ref.red),
        ref.blue + k * (now.blue - ref.blue),
        ref.spread + k * (now.spread - ref.spread),
        ref.focus + k_focus * (now.focus - ref.focus),
    )


# --------------------------------------------------------------------------- detector


class GlobalChangeDetector:
    """Per-camera global-change detector; see the module docstring.

    Parameters
    ----------
    params : GlobalChangeParams, optional

    Notes
    -----
    State: the reference :class:`ViewStats` (a few dozen floats) and four debounces. Works at
    ``analysis_height`` (180 by default), like tamper.
    """

    def __init__(self, params: GlobalChangeParams | None = None) -> None:
        self.params = params if params is not None else GlobalChangeParams()
        p = self.params
        self._debounce = {k: Debounce(p.on_s, p.off_s) for k in KINDS}
        self.reset()

    def reset(self) -> None:
        """Forget the reference view (after a gap in the stream) and every condition."""
        self._shape: tuple[int, int] | None = None
        self._start: float | None = None
        self._last_ts: float | None = None
        self._ref: ViewStats | None = None
        self._n = 0
        self._held: frozenset[str] = frozenset()
        self._ir_to = "infrared"
        for d in self._debounce.values():
            d.reset()
        self.last_metrics: dict[str, float] = {}
        """Measurements of the most recent frame, for diagnostics and tuning."""

    def view_conditions(self) -> frozenset[str]:
        """Kinds whose condition held in the last frame or is still debounced active."""
        return self._held | frozenset(k for k, d in self._debounce.items() if d.active)

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Check one frame for a global change.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing.

        Returns
        -------
        list of Finding
            One per active kind.

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` or its size changed.
        """
        p = self.params
        check_bgr(frame)
        if self._shape is not None and frame.shape[:2] != self._shape:
            raise ConfigError(
                f"frame size changed from {self._shape} to {frame.shape[:2]}; call reset()"
            )
        self._shape = frame.shape[:2]
        small, _ = prepare(frame, p.analysis_height, None)
        now = view_stats(small)
        if self._start is None:
            self._start = ts
        dt = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        self._last_ts = ts
        if self._ref is None or ts - self._start < p.warmup_s:
            self._n += 1
            w = 1.0 / self._n  # a plain running mean while warming up
            self._ref = now if self._ref is None else blend(self._ref, now, w, w)
            return []
        ref = self._ref
        gain = exposure_gain(now, ref, p)
        shift = colour_shift(now, ref, p)
        ir = infrared_switch(now, ref, p)
        focus_ratio = float(np.median(now.focus / np.maximum(ref.focus, 1e-9)))
        # A switch explains the colour and exposure change that come with it, for as long as the
        # reference takes to learn them.
        switch = ir != 0 or (self._debounce[INFRARED].active and (gain != 0.0 or shift != 0.0))
        held = {
            INFRARED: switch,
            COLOUR: not switch and shift != 0.0,
            EXPOSURE: not switch and shift == 0.0 and gain != 0.0,
            FOCUS_DRIFT: focus_ratio < p.focus_drift_ratio,
        }
        self._held = frozenset(k for k, v in held.items() if v)
        if ir:
            self._ir_to = "infrared" if ir > 0 else "colour"
        self._ref = blend(
            ref, now, ema_weight(dt, p.reference_tau_s), ema_weight(dt, p.focus_tau_s)
        )
        metrics = {
            "gain": math.exp(gain),
            "colour_shift": shift,
            "spread": now.spread,
            "reference_spread": ref.spread,
            "focus_ratio": focus_ratio,
        }
        self.last_metrics = metrics
        out = []
        for kind in KINDS:
            self._debounce[kind].update(held[kind], ts)
            if self._debounce[kind].active:
                conf = 0.6 if held[kind] else 0.5
                detail: dict[str, float | str] = dict(metrics)
                if kind == INFRARED:
                    detail["to"] = self._ir_to
                out.append(Finding(kind=kind, confidence=conf, detail=detail))
        return out
