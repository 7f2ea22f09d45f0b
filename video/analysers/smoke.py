"""Smoke detection: grey, slow, persistent, edge-softening, moving change against a learned
background.

A pixel is a smoke candidate when, against a selectively updated background (EMA):

* its luma changed by at least ``diff_min`` grey levels (something is there);
* its chroma did not grow and the result is greyish: smoke is a semi-transparent grey veil,
  ``frame = (1 - a) * background + a * grey``, which shrinks the chroma vector towards zero
  (Toreyin et al., "Wavelet based real-time smoke detection in video", EUSIPCO 2005, use the
  same chromaticity cue; fire and coloured objects fail it);
* it stays a candidate for ``persist_s`` seconds (a leaky per-pixel counter): smoke drifts
  slowly and diffusely inside its envelope, so the envelope pixels stay candidates, whereas a
  passing vehicle or camera shake toggles each pixel for a frame or two.

Surviving regions (after a morphological opening, and at least ``min_blob`` large) must also
*lose* high-frequency edge energy relative to the background, or at least gain none: smoke
blurs what is behind it (Toreyin et al. 2005, wavelet high-band energy drop), an opaque object
such as a stopped car adds new strong edges. Regions with more than ``max_new_edge_frac`` new
strong-edge pixels are rejected.

Two more tests tell a plume from other grey, persistent change. It keeps changing inside: the
region's median activity (moving average of the frame-to-frame change of the blurred luma,
steps of ``diff_min`` or more not counted, :func:`luma_activity`) must reach ``activity_min``
and ``activity_ratio`` times the frame's median, the noise floor; ground uncovered by a person
who stood through the warm-up and walked off (OpenCV's vtest clip) is static, as is a parked
grey object. And it is bounded: a flat region spanning ``band_width`` of the frame is sky
texture or haze drifting across the view (:func:`is_band`), not a plume from somewhere.

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

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from video.analysers.base import Finding, MedianStart, Zone, prepare
from video.analysers.foreground import blend_background, ema_weight
from video.analysers.params import (
    AdaptiveBackground,
    ChangeGuarded,
    Debounced,
    Downscaled,
    bg_tau_field,
    fg_tau_field,
)
from video.analysers.zone_gate import ZoneGate

SMOKE = "smoke"


class SmokeParams(Downscaled, ChangeGuarded, AdaptiveBackground, Debounced):
    """Tuning of :class:`SmokeDetector` (``analysers.smoke`` in the camera YAML).

    Besides the shared fields (``analysis_height``, ``global_change``, ``bg_tau_s`` /
    ``fg_tau_s``, ``on_s`` / ``off_s``, see :mod:`video.analysers.params`): ``fg_tau_s``
    defaults to 600 s so that a permanent change is eventually learned while a smoke episode of
    a few minutes is not absorbed, nor a fire whose end would otherwise look like a grey veil
    lifting; ``on_s`` / ``off_s`` come on top of ``persist_s``.
    """

    bg_tau_s: float = bg_tau_field(10.0)
    fg_tau_s: float = fg_tau_field(600.0)
    warmup_s: float = Field(
        2.0,
        title="Warm-up",
        description="Seconds spent learning the background before anything is reported.",
        ge=0,
        le=600,
    )
    diff_min: float = Field(
        8.0,
        title="Luma change",
        description="Minimum luma change in grey levels of a smoke candidate pixel.",
        ge=1,
        le=255,
    )
    chroma_max: float = Field(
        60.0,
        title="Chroma limit",
        description="Maximum chroma (norm of the Cb, Cr offsets from 128) of a candidate.",
        ge=1,
        le=255,
    )
    chroma_growth_max: float = Field(
        3.0,
        title="Chroma growth",
        description="Chroma a candidate may gain against the background (a veil greys).",
        ge=0,
        le=255,
    )
    persist_s: float = Field(
        3.0,
        title="Persistence",
        description="Seconds a pixel must stay a candidate (leaky counter) to count as smoke.",
        ge=0.2,
        le=600,
    )
    decay: float = Field(
        2.0,
        title="Counter decay",
        description="Decay of the counter while a pixel is not a candidate, seconds per second.",
        ge=0,
        le=100,
    )
    min_blob: float = Field(
        0.001,
        title="Minimum region",
        description=(
            "Smallest connected smoke region kept, as a fraction of the analysed frame (about "
            "58 pixels at 320x180): a plume is one sizeable region, camera shake leaves specks."
        ),
        ge=0,
        le=1,
    )
    min_area: float = Field(
        0.003,
        title="Minimum area",
        description="Smallest total smoke area as a fraction of the analysed frame (or zone).",
        ge=0,
        le=1,
    )
    edge_threshold: float = Field(
        80.0,
        title="Strong edge",
        description="Gradient magnitude (Sobel of a lightly blurred luma) counted as strong edge.",
        ge=1,
        le=1000,
    )
    activity_tau_s: float = Field(
        2.0,
        title="Activity time constant",
        description="Seconds over which the frame-to-frame luma change of each pixel is averaged.",
        ge=0.1,
        le=60,
    )
    activity_min: float = Field(
        0.6,
        title="Activity minimum",
        description=(
            "Smallest median activity (grey levels per frame) of a smoke region: a plume keeps "
            "changing inside, ground uncovered by a departing object is static."
        ),
        ge=0,
        le=255,
    )
    activity_ratio: float = Field(
        2.0,
        title="Activity over noise",
        description=(
            "Smallest ratio of a smoke region's median activity to the frame's median (the "
            "noise and compression floor)."
        ),
        ge=0,
        le=100,
    )
    band_width: float = Field(
        0.8,
        title="Band width",
        description=(
            "Share of the frame's width from which a flat region (see band_aspect) is a band "
            "of sky texture or haze across the view, not a plume."
        ),
        gt=0,
        le=1,
    )
    band_aspect: float = Field(
        3.0,
        title="Band aspect",
        description="Width over height from which a region as wide as band_width is a band.",
        ge=1,
        le=1000,
    )
    max_new_edge_frac: float = Field(
        0.04,
        title="New edges",
        description=(
            "Largest share of a region's pixels that may be strong edges absent from the "
            "background; more means an opaque object, not smoke."
        ),
        ge=0,
        le=1,
    )


# --------------------------------------------------------------------------- pure steps


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
    return np.asarray(cv2.magnitude(gx, gy))


def colour_changes(
    ycc: np.ndarray, bg: np.ndarray, diff_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """Luma difference and changed pixels of a ``float32`` YCrCb image against its background.

    Returns
    -------
    d_luma : numpy.ndarray
        ``|Y - Y_bg|``.
    changed : numpy.ndarray
        ``bool``: luma or chroma (``|Cr - Cr_bg| + |Cb - Cb_bg|``) changed by ``diff_min``.
        Colour-only changes (a flame at the background's luma) count, so that they are not
        learned into the background and later mistaken for a veil lifting.
    """
    d_luma = np.abs(ycc[..., 0] - bg[..., 0])
    d_chroma = np.abs(ycc[..., 1] - bg[..., 1]) + np.abs(ycc[..., 2] - bg[..., 2])
    return d_luma, (d_luma >= diff_min) | (d_chroma >= diff_min)


def grey_veil(
    ycc: np.ndarray,
    bg: np.ndarray,
    d_luma: np.ndarray,
    diff_min: float,
    chroma_max: float,
    chroma_growth_max: float,
) -> np.ndarray:
    """Smoke candidates: the luma changed, the result is greyish and no more colourful than
    the background was (a semi-transparent grey veil shrinks the chroma vector)."""
    chroma = np.hypot(ycc[..., 1] - 128.0, ycc[..., 2] - 128.0)
    chroma_bg = np.hypot(bg[..., 1] - 128.0, bg[..., 2] - 128.0)
    return (d_luma >= diff_min) & (chroma <= chroma_max) & (chroma <= chroma_bg + chroma_growth_max)


def leaky_count(
    count: np.ndarray, candidate: np.ndarray, dt: float, decay: float, cap: float
) -> np.ndarray:
    """Per-pixel persistence: grows by ``dt`` while a candidate, shrinks by ``decay * dt``
    otherwise, within ``[0, cap]``; flickering candidates (shake at edges, a passing vehicle)
    never reach the persistence time, and a short cap lets smoke end promptly."""
    grown = count + np.where(candidate, dt, -decay * dt).astype(np.float32)
    return np.clip(grown, 0.0, cap)


def persistent_mask(count: np.ndarray, persist_s: float, kernel: np.ndarray) -> np.ndarray:
    """``uint8`` 0/1 mask of pixels whose counter reached ``persist_s``, opened by ``kernel``."""
    persistent = (count >= persist_s).astype(np.uint8)
    return np.asarray(cv2.morphologyEx(persistent, cv2.MORPH_OPEN, kernel))


def lens_softened(bg_edges: np.ndarray, edges_now: np.ndarray, edge_threshold: float) -> bool:
    """Whether most (60 %) of the background's strong edges lost half their strength at once:
    the lens is out of focus or misted, which tamper reports; smoke softens the edges behind
    it, not everywhere."""
    strong = bg_edges >= edge_threshold
    n_strong = int(np.count_nonzero(strong))
    softened = int(np.count_nonzero(strong & (edges_now < 0.5 * bg_edges)))
    return n_strong > 0 and softened > 0.6 * n_strong


def luma_activity(
    activity: np.ndarray, luma: np.ndarray, prev: np.ndarray, dt: float, p: SmokeParams
) -> np.ndarray:
    """Per-pixel moving average (time constant ``activity_tau_s``) of the frame-to-frame luma
    change, each step clipped at ``diff_min``.

    Smoke is a dynamic texture: its density changes inside the envelope all the time (Toreyin
    et al. 2005 use the same temporal cue). The clip keeps one large step (a person walking
    off and uncovering the ground) from counting as seconds of activity, so a region left
    behind by a departing object goes quiet at once, while a drifting plume keeps it up.

    Parameters
    ----------
    activity, luma, prev : numpy.ndarray
        ``float32`` of the same 2-D shape: the running average, this frame's and the previous
        frame's luma.
    dt : float
        Seconds since the previous frame.
    p : SmokeParams

    Returns
    -------
    numpy.ndarray
        The updated ``float32`` average, in grey levels per frame.
    """
    step = cv2.absdiff(luma, prev)
    # THRESH_TOZERO_INV zeroes what exceeds diff_min: a large step is an object, not a veil.
    _, step = cv2.threshold(step, p.diff_min, 0.0, cv2.THRESH_TOZERO_INV)
    out = activity.copy()
    cv2.accumulateWeighted(step, out, ema_weight(dt, p.activity_tau_s))
    return out


def is_band(box: tuple[int, int, int, int], shape: tuple[int, ...], p: SmokeParams) -> bool:
    """Whether a region's box ``(x, y, w, h)`` spans ``band_width`` of the frame's width and is
    at least ``band_aspect`` times wider than high: sky texture or a haze layer drifting across
    the whole view, not a plume, which rises from somewhere and widens with height."""
    _, _, w, h = box
    return w >= p.band_width * shape[1] and w >= p.band_aspect * h


def veil_regions(
    persistent: np.ndarray,
    bg_edges: np.ndarray,
    edges_now: np.ndarray,
    activity: np.ndarray,
    p: SmokeParams,
    kernel: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Persistent regions that look like a plume: large enough (``min_blob``), without many
    new strong edges (``max_new_edge_frac``, an opaque object has its own), still moving inside
    (median activity at least ``activity_min`` and ``activity_ratio`` times the frame's median,
    the noise floor: a region uncovered by a departing object is static), and not a band across
    the frame (:func:`is_band`).

    Returns
    -------
    mask : numpy.ndarray
        ``bool`` smoke mask.
    edge_loss : float
        Largest relative loss of edge energy over the kept regions (0 without one).
    """
    strong = bg_edges >= p.edge_threshold
    strong_bg = cv2.dilate(strong.astype(np.uint8), kernel) > 0
    new_edges = (edges_now >= p.edge_threshold) & ~strong_bg
    mask = np.zeros(persistent.shape, bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(persistent, connectivity=8)
    floor = None
    losses = []
    for j in range(1, n):
        area = int(stats[j, cv2.CC_STAT_AREA])
        if area < p.min_blob * persistent.size:
            continue
        x, y, w, h = (int(v) for v in stats[j, :4])
        if is_band((x, y, w, h), persistent.shape, p):
            continue
        region = labels == j
        if np.count_nonzero(new_edges & region) > p.max_new_edge_frac * area:
            continue  # an opaque object with its own edges, not a veil
        if floor is None:  # the noise floor, on every 4th pixel each way: a median is costly
            floor = float(np.median(activity[::4, ::4]))
        if float(np.median(activity[region])) < max(p.activity_min, p.activity_ratio * floor):
            continue  # static: uncovered background or a parked grey object, not a plume
        mask |= region
        e_bg = float(bg_edges[region].mean())
        losses.append(1.0 - float(edges_now[region].mean()) / (e_bg + 1e-6) if e_bg > 1.0 else 0.0)
    return mask, max(losses) if losses else 0.0


def smoke_score(count: np.ndarray, persist_s: float) -> np.ndarray:
    """Per-pixel confidence in [0.5, 1] from how long the pixel has persisted."""
    return np.asarray(np.clip(count / (1.5 * persist_s), 0, 1) * 0.5 + 0.5)


# --------------------------------------------------------------------------- detector


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
        self._prev_luma: np.ndarray | None = None
        self._activity: np.ndarray | None = None
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
        bg, count, start = self._bg, self._count, self._start
        if bg is None or count is None or start is None:
            self._restart(ycc, ts)
            return []
        dt = max(0.0, ts - (self._last_ts if self._last_ts is not None else ts))
        self._last_ts = ts
        d_luma, changed = colour_changes(ycc, bg, p.diff_min)
        activity = self._track_activity(cv2.GaussianBlur(ycc[..., 0], (0, 0), 2.0), dt)
        if np.count_nonzero(changed) > p.global_change * changed.size:
            return self._restart_quietly(ycc, ts, scale)  # the view changed, not the air in it
        candidate = grey_veil(ycc, bg, d_luma, p.diff_min, p.chroma_max, p.chroma_growth_max)
        count = leaky_count(count, candidate, dt, p.decay, 1.5 * p.persist_s)
        bg_edges = self._learn(ycc, changed, dt, ts)
        if ts - start < p.warmup_s:
            self._count = np.zeros_like(count)  # persistence counts from the end of the warm-up
            return self._report_nothing(ts, scale)
        self._count = count
        persistent = persistent_mask(count, p.persist_s, self._kernel)
        mask, edge_loss = np.zeros(count.shape, bool), 0.0
        if persistent.any():
            edges_now = edge_magnitude(ycc[..., 0])
            if lens_softened(bg_edges, edges_now, p.edge_threshold):
                return self._restart_quietly(ycc, ts, scale)
            mask, edge_loss = veil_regions(
                persistent, bg_edges, edges_now, activity, p, self._kernel
            )
        self.last_mask = mask
        score = smoke_score(count, p.persist_s)
        detail = {"edge_loss": round(edge_loss, 3)}
        return self._gate.update(mask, ts, scale, score=score, detail=detail)

    def _learn(self, ycc: np.ndarray, changed: np.ndarray, dt: float, ts: float) -> np.ndarray:
        """Update the background (fast where nothing changed, slow inside changes; the median
        of the warm-up frames once it ends, without ghosts) and return its edge map."""
        assert self._bg is not None
        p = self.params
        bg = blend_background(self._bg, ycc, changed, dt, p.bg_tau_s, p.fg_tau_s)
        if self._boot is not None:
            start_bg = self._boot.add(ycc, ts)
            if start_bg is not None:
                bg = start_bg
                self._boot = None
        self._bg = bg
        self._bg_edges = edge_magnitude(bg[..., 0])
        return self._bg_edges

    def _track_activity(self, luma: np.ndarray, dt: float) -> np.ndarray:
        """Update and return the per-pixel activity (:func:`luma_activity`)."""
        prev, activity = self._prev_luma, self._activity
        self._prev_luma = luma
        if prev is None or activity is None:
            activity = np.zeros_like(luma)
        elif dt > 0:
            activity = luma_activity(activity, luma, prev, dt, self.params)
        self._activity = activity
        return activity

    def _report_nothing(self, ts: float, scale: float) -> list[Finding]:
        """Feed an empty mask to the gate (debounces keep running)."""
        assert self._count is not None
        self.last_mask = np.zeros(self._count.shape, bool)
        return self._gate.update(self.last_mask, ts, scale)

    def _restart_quietly(self, ycc: np.ndarray, ts: float, scale: float) -> list[Finding]:
        """Restart the background and warm-up after a change of the view, reporting no smoke."""
        self._restart(ycc, ts)
        return self._report_nothing(ts, scale)

    def _restart(self, ycc: np.ndarray, ts: float) -> None:
        self._bg = ycc.copy()
        self._bg_edges = edge_magnitude(ycc[..., 0])
        self._count = np.zeros(ycc.shape[:2], np.float32)
        self._start = self._last_ts = ts
        self._prev_luma = self._activity = None  # steps across a change of view are not smoke
        self._boot = MedianStart(self.params.warmup_s)
        self._boot.add(ycc, ts)

    @property
    def active(self) -> bool:
        """Whether smoke is currently reported in any zone."""
        return self._gate.active
