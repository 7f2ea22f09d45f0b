"""Smoke detection: grey, slow, persistent, edge-softening change against a learned background.

A pixel is a smoke candidate when, against a selectively updated background (EMA):

* its luma changed by at least ``diff_min`` grey levels (something is there);
* its chroma did not grow and the result is greyish: smoke is a semi-transparent grey veil,
  ``frame = (1 - a) * background + a * grey``, which shrinks the chroma vector towards zero
  (Toreyin et al., "Wavelet based real-time smoke detection in video", EUSIPCO 2005, use the
  same chromaticity cue; fire and coloured objects fail it);
* it stays a candidate for ``persist_s`` seconds (a leaky per-pixel counter): smoke drifts
  slowly and diffusely inside its envelope, so the envelope pixels stay candidates, whereas a
  passing vehicle or camera shake toggles each pixel for a frame or two.

Surviving regions (after a morphological opening, and at least ``min_blob`` large) must also *lose* high-frequency edge energy
relative to the background, or at least gain none: smoke blurs what is behind it (Toreyin et
al. 2005, wavelet high-band energy drop), an opaque object such as a stopped car adds new strong
edges. Regions with more than ``max_new_edge_frac`` new strong-edge pixels are rejected.

Two guards keep other changes out. The background at the end of the warm-up is the per-pixel
median of the warm-up frames, so a vehicle in the very first frame does not leave a "ghost"
that looks like a grey veil once it has driven off; and a frame in which more
than ``global_change`` of the pixels changed (camera turned or covered, lights switched), or in
which most of the background's strong edges went soft at once (lens defocused or misted),
restarts the background and the warm-up: that is the tamper detector's business, not smoke.

Findings: one ``kind="smoke"`` finding per zone (or one with ``zone=None`` without zones) on
*every* update while that zone's smoke condition is debounced active (``on_s`` / ``off_s``),
so downstream rules can treat the stream as a level, not an edge. ``bbox`` covers the smoke
pixels of the frame (the last seen box while waiting out ``off_s``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import BBox, Debounce, Finding, MedianStart, Zone, check_bgr

SMOKE = "smoke"


def _check_finite(
    obj: object, names: Sequence[str], lo: float, hi: float, problems: list[str]
) -> None:
    """Append a message for each attribute of ``obj`` outside ``[lo, hi]`` or not finite."""
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
            problems.append(f"{name} must be a finite number in [{lo}, {hi}], got {v!r}")


@dataclass(frozen=True, slots=True)
class SmokeParams:
    """Tuning of :class:`SmokeDetector`.

    Parameters
    ----------
    analysis_height : int, default 180
        Height of the downscaled image every check runs on (32..1080).
    warmup_s : float, default 2.0
        Seconds spent learning the background before anything is reported (0..600).
    bg_tau_s : float, default 10.0
        Time constant of the background update where nothing changed (0.1..3600).
    fg_tau_s : float, default 600.0
        Slower time constant inside changed areas, so a permanent change is eventually
        learned while a smoke episode of a few minutes is not absorbed, nor a fire whose
        end would otherwise look like a grey veil lifting (bg_tau_s..36000).
    diff_min : float, default 8.0
        Minimum luma change in grey levels for a candidate (1..255).
    chroma_max : float, default 60.0
        Maximum chroma (Euclidean norm of Cb, Cr offsets from 128) of a candidate (1..255).
    chroma_growth_max : float, default 3.0
        Candidates may gain at most this much chroma against the background (0..255).
    persist_s : float, default 3.0
        Seconds a pixel must stay a candidate (leaky counter) to count as smoke (0.2..600).
    decay : float, default 2.0
        Counter decay rate while a pixel is not a candidate, in seconds per second (0..100).
    min_blob : float, default 0.001
        Smallest connected smoke region kept, as a fraction of the analysed frame (0..1),
        about 58 pixels at 320x180: a plume is one sizeable region, whereas camera shake
        leaves many small persistent specks around lit windows and lamps at night.
    min_area : float, default 0.003
        Minimum total smoke area as a fraction of the analysed frame (or zone) (0..1).
    edge_threshold : float, default 80.0
        Gradient magnitude (Sobel on a lightly blurred luma) counted as a strong edge (1..1000).
    max_new_edge_frac : float, default 0.04
        Largest fraction of a region's pixels that may be strong edges absent from the
        background; more means an opaque object, not smoke (0..1).
    on_s, off_s : float, default 1.0, 2.0
        Debounce of the per-zone condition, on top of ``persist_s`` (0..600).
    global_change : float, default 0.5
        Changed share of the frame above which the view itself changed: background and
        warm-up restart (0 < x <= 1).
    """

    analysis_height: int = 180
    warmup_s: float = 2.0
    bg_tau_s: float = 10.0
    fg_tau_s: float = 600.0
    diff_min: float = 8.0
    chroma_max: float = 60.0
    chroma_growth_max: float = 3.0
    persist_s: float = 3.0
    decay: float = 2.0
    min_blob: float = 0.001
    min_area: float = 0.003
    edge_threshold: float = 80.0
    max_new_edge_frac: float = 0.04
    on_s: float = 1.0
    off_s: float = 2.0
    global_change: float = 0.5

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not (isinstance(self.analysis_height, int) and 32 <= self.analysis_height <= 1080):
            problems.append(
                f"analysis_height must be an int in 32..1080, got {self.analysis_height!r}"
            )
        _check_finite(self, ("warmup_s", "on_s", "off_s"), 0, 600, problems)
        _check_finite(self, ("global_change",), 1e-6, 1, problems)
        _check_finite(self, ("bg_tau_s",), 0.1, 3600, problems)
        _check_finite(self, ("fg_tau_s",), 0.1, 36000, problems)
        _check_finite(self, ("diff_min", "chroma_max"), 1, 255, problems)
        _check_finite(self, ("chroma_growth_max",), 0, 255, problems)
        _check_finite(self, ("persist_s",), 0.2, 600, problems)
        _check_finite(self, ("decay",), 0, 100, problems)
        _check_finite(self, ("min_blob", "min_area", "max_new_edge_frac"), 0, 1, problems)
        _check_finite(self, ("edge_threshold",), 1, 1000, problems)
        if not problems and self.fg_tau_s < self.bg_tau_s:
            problems.append(f"fg_tau_s ({self.fg_tau_s}) must be >= bg_tau_s ({self.bg_tau_s})")
        if problems:
            raise ConfigError("; ".join(problems), source="SmokeParams")


def edge_magnitude(luma: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of a lightly blurred luma image.

    Parameters
    ----------
    luma : numpy.ndarray
        ``float32`` 2-D image.

    Returns
    -------
    numpy.ndarray
        ``float32``, same shape. The sigma-1 blur keeps sensor noise from counting as edges.
    """
    soft = cv2.GaussianBlur(luma, (0, 0), 1.0)
    gx = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


class ZoneGate:
    """Per-zone debounced reporting of a boolean pixel mask, shared by smoke and fire.

    Parameters
    ----------
    kind : str
        Finding kind to emit.
    zones : sequence of Zone
        Named polygons in full-resolution pixels; empty means the whole frame, ``zone=None``.
    on_s, off_s : float
        Debounce of each zone's "enough pixels" condition.
    min_area : float
        Fraction of the zone (or frame) the mask must cover.

    Notes
    -----
    Emits one finding per active zone on every :meth:`update`, with the bbox of the mask pixels
    in the zone, or the last one seen while the debounce waits out ``off_s``.
    """

    def __init__(
        self, kind: str, zones: Sequence[Zone], on_s: float, off_s: float, min_area: float
    ) -> None:
        self.kind = kind
        self.zones = tuple(zones)
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ConfigError(f"zone names must be unique, got {names}")
        self.min_area = float(min_area)
        self._debounce = [Debounce(on_s, off_s) for _ in (self.zones or (None,))]
        self._last: list[tuple[BBox, float, dict] | None] = [None] * len(self._debounce)
        self._masks: list[np.ndarray | None] | None = None

    def _zone_masks(self, shape: tuple[int, int], scale: float) -> list[np.ndarray | None]:
        if self._masks is None:
            h, w = shape
            self._masks = [z.mask(w, h, scale) for z in self.zones] if self.zones else [None]
        return self._masks

    def update(
        self,
        mask: np.ndarray,
        ts: float,
        scale: float,
        score: np.ndarray | None = None,
        detail: dict | None = None,
    ) -> list[Finding]:
        """Feed the analysis-resolution ``mask`` (bool) seen at ``ts``; return findings of active zones.

        ``scale`` is analysis / full resolution; ``score`` optional per-pixel confidence in [0, 1].
        """
        out: list[Finding] = []
        for i, zmask in enumerate(self._zone_masks(mask.shape, scale)):
            m = mask if zmask is None else mask & zmask
            total = mask.size if zmask is None else max(1, int(zmask.sum()))
            n = int(np.count_nonzero(m))
            frac = n / total
            present = frac >= self.min_area and n > 0
            self._debounce[i].update(present, ts)
            if present:
                ys, xs = np.nonzero(m)
                x0, y0 = int(xs.min() / scale), int(ys.min() / scale)
                x1, y1 = (
                    int(math.ceil((xs.max() + 1) / scale)),
                    int(math.ceil((ys.max() + 1) / scale)),
                )
                conf = float(np.clip(score[m].mean(), 0, 1)) if score is not None else 1.0
                extra = {"area_frac": round(frac, 5), **(detail or {})}
                self._last[i] = ((x0, y0, max(1, x1 - x0), max(1, y1 - y0)), conf, extra)
            if self._debounce[i].active and self._last[i] is not None:
                bbox, conf, extra = self._last[i]
                zone = self.zones[i].name if self.zones else None
                out.append(Finding(self.kind, conf, bbox, zone, {"present": present, **extra}))
        return out

    @property
    def active(self) -> bool:
        """Whether any zone is currently active."""
        return any(d.active for d in self._debounce)


def prepare(
    frame: np.ndarray, analysis_height: int, shape: tuple[int, int] | None
) -> tuple[np.ndarray, float]:
    """Validate a BGR frame and downscale it to ``analysis_height``; return it and the scale.

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
    return cv2.resize(frame, (max(1, round(w * scale)), rh), interpolation=cv2.INTER_AREA), scale


class SmokeDetector:
    """Per-camera smoke detector; see the module docstring for the method.

    Parameters
    ----------
    params : SmokeParams, optional
    zones : sequence of Zone, optional
        Zones in full-resolution pixels; each is debounced and reported separately.

    Notes
    -----
    State at analysis resolution (320x180 by default for 16:9): a ``float32`` YCrCb background,
    its edge map and a per-pixel counter, about 1.2 MB. The frame size may not change.
    """

    def __init__(self, params: SmokeParams | None = None, zones: Sequence[Zone] = ()) -> None:
        self.params = params if params is not None else SmokeParams()
        p = self.params
        self._gate = ZoneGate(SMOKE, zones, p.on_s, p.off_s, p.min_area)
        self._shape: tuple[int, int] | None = None
        self._bg: np.ndarray | None = None
        self._bg_edges: np.ndarray | None = None
        self._count: np.ndarray | None = None
        self._start: float | None = None
        self._last_ts: float | None = None
        self._boot: MedianStart | None = None
        self._kernel = np.ones((3, 3), np.uint8)
        self.last_mask: np.ndarray | None = None
        """Smoke mask of the most recent frame at analysis resolution, for diagnostics."""

    def update(self, frame: np.ndarray, ts: float) -> list[Finding]:
        """Analyse one frame.

        Parameters
        ----------
        frame : numpy.ndarray
            BGR ``uint8`` of shape ``(height, width, 3)``; not modified.
        ts : float
            Capture time in seconds, non-decreasing.

        Returns
        -------
        list of Finding
            One ``smoke`` finding per active zone, on every frame while active.

        Raises
        ------
        ConfigError
            If the frame is not BGR ``uint8`` or its size changed.
        """
        p = self.params
        small, scale = prepare(frame, p.analysis_height, self._shape)
        self._shape = frame.shape[:2]
        ycc = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb).astype(np.float32)
        if self._bg is None or self._start is None:
            self._restart(ycc, ts)
            return []
        dt = max(0.0, ts - (self._last_ts if self._last_ts is not None else ts))
        self._last_ts = ts
        bg = self._bg

        d_luma = np.abs(ycc[..., 0] - bg[..., 0])
        chroma = np.hypot(ycc[..., 1] - 128.0, ycc[..., 2] - 128.0)
        chroma_bg = np.hypot(bg[..., 1] - 128.0, bg[..., 2] - 128.0)
        # Colour-only changes (a flame at the background's luma) count as changed for the update,
        # so they are not learned into the background and later mistaken for a veil lifting.
        changed = (d_luma >= p.diff_min) | (
            np.abs(ycc[..., 1] - bg[..., 1]) + np.abs(ycc[..., 2] - bg[..., 2]) >= p.diff_min
        )
        if np.count_nonzero(changed) > p.global_change * changed.size:
            self._restart(ycc, ts)  # the view changed, not the air in it
            self.last_mask = np.zeros(changed.shape, bool)
            return self._gate.update(self.last_mask, ts, scale)
        candidate = (
            (d_luma >= p.diff_min)
            & (chroma <= p.chroma_max)
            & (chroma <= chroma_bg + p.chroma_growth_max)
        )

        # Leaky per-pixel persistence: grows by dt while a candidate, decays faster otherwise, so
        # flickering candidates (shake at edges, a passing vehicle) never reach persist_s.
        count = self._count
        count += np.where(candidate, dt, -p.decay * dt).astype(np.float32)
        np.clip(count, 0.0, 1.5 * p.persist_s, out=count)  # short hysteresis: smoke ends promptly

        # Selective background update: fast where nothing changed, slow inside changes.
        k_bg = 1.0 - math.exp(-dt / p.bg_tau_s)
        k_fg = 1.0 - math.exp(-dt / p.fg_tau_s)
        k = np.where(changed, k_fg, k_bg).astype(np.float32)[..., None]
        bg += k * (ycc - bg)
        if self._boot is not None:
            start_bg = self._boot.add(ycc, ts)
            if start_bg is not None:  # end of the warm-up: the median of its frames, without ghosts
                bg[:] = start_bg
                self._boot = None
        self._bg_edges = edge_magnitude(bg[..., 0])

        if ts - self._start < p.warmup_s:
            count[:] = 0.0  # persistence counts from the end of the warm-up
            self.last_mask = np.zeros(count.shape, bool)
            return self._gate.update(self.last_mask, ts, scale)

        persistent = cv2.morphologyEx(
            (count >= p.persist_s).astype(np.uint8), cv2.MORPH_OPEN, self._kernel
        )
        mask = np.zeros(count.shape, bool)
        edge_loss = 0.0
        if persistent.any():
            edges_now = edge_magnitude(ycc[..., 0])
            strong = self._bg_edges >= p.edge_threshold
            n_strong = int(np.count_nonzero(strong))
            if (
                n_strong
                and np.count_nonzero(strong & (edges_now < 0.5 * self._bg_edges)) > 0.6 * n_strong
            ):
                # Most of the view's strong edges went soft at once: the lens is out of focus (or
                # misted), which tamper reports; smoke softens the edges behind it, not everywhere.
                self._restart(ycc, ts)
                self.last_mask = np.zeros(count.shape, bool)
                return self._gate.update(self.last_mask, ts, scale)
            strong_bg = cv2.dilate(strong.astype(np.uint8), self._kernel) > 0
            new_edges = (edges_now >= p.edge_threshold) & ~strong_bg
            n, labels, stats, _ = cv2.connectedComponentsWithStats(persistent, connectivity=8)
            losses = []
            for j in range(1, n):
                area = int(stats[j, cv2.CC_STAT_AREA])
                if area < p.min_blob * count.size:
                    continue
                region = labels == j
                if np.count_nonzero(new_edges & region) > p.max_new_edge_frac * area:
                    continue  # an opaque object with its own edges, not a veil
                mask |= region
                e_bg = float(self._bg_edges[region].mean())
                losses.append(
                    1.0 - float(edges_now[region].mean()) / (e_bg + 1e-6) if e_bg > 1.0 else 0.0
                )
            edge_loss = max(losses) if losses else 0.0
        self.last_mask = mask
        score = np.clip(count / (1.5 * p.persist_s), 0, 1) * 0.5 + 0.5
        detail = {"edge_loss": round(edge_loss, 3)}
        return self._gate.update(mask, ts, scale, score=score, detail=detail)

    def _restart(self, ycc: np.ndarray, ts: float) -> None:
        self._bg = ycc.copy()
        self._bg_edges = edge_magnitude(ycc[..., 0])
        self._count = np.zeros(ycc.shape[:2], np.float32)
        self._start = self._last_ts = ts
        self._boot = MedianStart(self.params.warmup_s)
        self._boot.add(ycc, ts)

    @property
    def active(self) -> bool:
        """Whether smoke is currently reported in any zone."""
        return self._gate.active
