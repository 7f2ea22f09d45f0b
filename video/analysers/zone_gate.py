"""Per-zone debounced reporting of a pixel mask, shared by the smoke and fire detectors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from video.analysers.base import BBox, Debounce, Finding, Zone, unique_zones


def mask_bbox(mask: np.ndarray, scale: float) -> BBox:
    """Box of the True pixels of a non-empty analysis-resolution ``mask``, in full-resolution
    pixels (``scale``: analysis / full resolution)."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min() / scale), int(ys.min() / scale)
    x1 = math.ceil((xs.max() + 1) / scale)
    y1 = math.ceil((ys.max() + 1) / scale)
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def covered_share(mask: np.ndarray, zone: np.ndarray | None) -> tuple[np.ndarray, int, float]:
    """The mask inside ``zone`` (the whole frame when None), its pixel count and its share of
    the zone's pixels."""
    m = mask if zone is None else mask & zone
    total = mask.size if zone is None else max(1, int(zone.sum()))
    n = int(np.count_nonzero(m))
    return m, n, n / total


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
        self.zones = unique_zones(zones)
        self.min_area = float(min_area)
        self._debounce = [Debounce(on_s, off_s) for _ in (self.zones or (None,))]
        self._last: list[tuple[BBox, float, dict[str, Any]] | None] = [None] * len(self._debounce)
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
        detail: dict[str, Any] | None = None,
    ) -> list[Finding]:
        """Feed the analysis-resolution ``mask`` (bool) seen at ``ts``; return findings of
        active zones.

        ``scale`` is analysis / full resolution; ``score`` optional per-pixel confidence in
        [0, 1].
        """
        out: list[Finding] = []
        for i, zmask in enumerate(self._zone_masks(mask.shape[:2], scale)):
            m, n, frac = covered_share(mask, zmask)
            present = frac >= self.min_area and n > 0
            self._debounce[i].update(present, ts)
            if present:
                conf = float(np.clip(score[m].mean(), 0, 1)) if score is not None else 1.0
                extra = {"area_frac": round(frac, 5), **(detail or {})}
                self._last[i] = (mask_bbox(m, scale), conf, extra)
            last = self._last[i]
            if self._debounce[i].active and last is not None:
                bbox, conf, extra = last
                zone = self.zones[i].name if self.zones else None
                out.append(Finding(self.kind, conf, bbox, zone, {"present": present, **extra}))
        return out

    @property
    def active(self) -> bool:
        """Whether any zone is currently active."""
        return any(d.active for d in self._debounce)
