"""Output: the GeoJSON FeatureCollection of changes, quicklook PNGs as evidence, revisit state.

GeoJSON follows RFC 7946: lon/lat WGS 84 coordinates, no ``crs`` member, counter-clockwise outer
rings (as :func:`shapely.geometry.polygon.orient` makes them), a ``bbox`` per feature. Quicklooks
are stored content-addressed (``<root>/ab/<sha256>.png``), the layout of
``video.evidence.EvidenceStore``, so the hub serves both the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from shapely.geometry import mapping, shape
from shapely.geometry.polygon import orient

from farsight.errors import StoreError
from farsight.evidence import EvidenceStore, atomic_write
from remote_sensing.normalise import DEGRADED_CONFIDENCE, Normalisation
from remote_sensing.pipeline import PairResult, Region


def _rfc7946(geom: dict[str, Any]) -> dict[str, Any]:
    s = shape(geom)
    if s.geom_type == "Polygon":
        s = orient(s, 1.0)
    elif s.geom_type == "MultiPolygon":
        s = type(s)([orient(p, 1.0) for p in s.geoms])
    g = mapping(s)
    return json.loads(json.dumps(g))  # tuples to lists


def feature(region: Region, state: str | None = None) -> dict[str, Any]:
    """One region as an RFC 7946 Feature."""
    props: dict[str, Any] = {
        "kind": region.kind,
        "area_m2": region.area_m2,
        "area_ha": round(region.area_m2 / 1e4, 4),
        "centroid": [round(region.centroid.lon, 7), round(region.centroid.lat, 7)],
        "confidence": region.confidence,
        "pixels": region.pixels,
        "zones": [
            {"zone": z.zone, "kind": z.kind, "overlap_m2": z.overlap_m2} for z in region.zones
        ],
        "evidence": list(region.evidence),
    }
    if state:
        props["state"] = state
    return {
        "type": "Feature",
        "id": region.id,
        "bbox": [round(v, 7) for v in region.bbox],
        "geometry": _rfc7946(region.geometry),
        "properties": props,
    }


def feature_collection(
    result: PairResult,
    regions: tuple[Region, ...] | None = None,
    states: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The FeatureCollection of a pair's regions (default: all), with the pair's metadata."""
    regions = result.regions if regions is None else regions
    states = states or {}
    return {
        "type": "FeatureCollection",
        "features": [feature(r, states.get(r.id)) for r in regions],
        "properties": {
            "before": {
                "path": str(result.before.path),
                "acquired": result.before.acquired.isoformat() if result.before.acquired else None,
            },
            "after": {
                "path": str(result.after.path),
                "acquired": result.after.acquired.isoformat() if result.after.acquired else None,
            },
            "grid": {
                "crs": result.grid.crs.to_string(),
                "width": result.grid.width,
                "height": result.grid.height,
                "res": list(result.grid.res),
            },
            "threshold": round(result.calibration.threshold, 6),
            "change_floor": round(result.calibration.floor, 6),
            "bands": [r for r in result.before.roles if r in result.after.roles],
            "kinds_possible": list(result.kinds_possible),
            "radiometry": {
                "before": result.before.radiometry.describe() if result.before.radiometry else None,
                "after": result.after.radiometry.describe() if result.after.radiometry else None,
            },
            "normalisation": normalisation_properties(result.calibration.normalisation),
        },
    }


def normalisation_properties(norm: Normalisation) -> dict[str, Any]:
    """How the after date was normalised: method, PIF count, whether it degraded and the factor
    on every change's confidence."""
    return {
        "method": norm.method,
        "pif_count": norm.pif_count,
        "degraded": norm.degraded,
        "confidence_factor": DEGRADED_CONFIDENCE if norm.degraded else 1.0,
    }


def write_geojson(path: str | Path, fc: dict[str, Any]) -> Path:
    """Write a FeatureCollection atomically (a reader never sees half a file)."""
    p = Path(path)
    atomic_write(p, json.dumps(fc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return p


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically."""
    p = Path(path)
    atomic_write(p, json.dumps(data, ensure_ascii=False, indent=1, default=str).encode("utf-8"))
    return p


def to_u8(rgb: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflectance stretched from ``lo``..``hi`` to 0..255, with a display gamma of 1.6."""
    x = (np.nan_to_num(rgb) - lo) / max(hi - lo, 1e-6)
    return (np.clip(x, 0, 1) ** (1 / 1.6) * 255).astype(np.uint8)


def quicklook_png(
    before_rgb: np.ndarray, after_rgb: np.ndarray, mask: np.ndarray, scale: int = 4
) -> bytes:
    """A PNG of three panels side by side: before, after (both with the region outlined), mask.

    Both dates share one 2-98 % stretch so a brightness difference is visible as such.
    """
    both = np.concatenate([before_rgb.ravel(), after_rgb.ravel()])
    lo, hi = np.percentile(both, (2, 98)) if both.size else (0.0, 1.0)
    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    panels = []
    for rgb in (before_rgb, after_rgb):
        img = cv2.cvtColor(to_u8(rgb, float(lo), float(hi)), cv2.COLOR_RGB2BGR)
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        scaled = [c * scale + scale // 2 for c in contours]
        cv2.drawContours(img, scaled, -1, (0, 255, 255), 1)
        panels.append(img)
    mk = cv2.resize(m * 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    panels.append(cv2.cvtColor(mk, cv2.COLOR_GRAY2BGR))
    sep = np.full((panels[0].shape[0], 4, 3), 40, np.uint8)
    ok, buf = cv2.imencode(".png", np.hstack([panels[0], sep, panels[1], sep, panels[2]]))
    if not ok:
        raise StoreError("PNG encoding of a quicklook failed")
    return buf.tobytes()


def store_evidence(root: str | Path, data: bytes, suffix: str = ".png") -> str:
    """Store ``data`` once under ``root/ab/<sha256><suffix>`` (the platform's evidence store);
    returns the sha256."""
    return EvidenceStore(root).put(data, suffix)


def quicklook_writer(root: str | Path) -> Callable[[np.ndarray, np.ndarray, np.ndarray], str]:
    """A ``quicklook`` callback for :func:`remote_sensing.pipeline.detect_pair`: PNGs under
    ``root``."""
    return lambda b, a, m: store_evidence(root, quicklook_png(b, a, m))
