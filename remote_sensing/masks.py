"""Cloud and cloud-shadow masks: from a QA band when the product has one, else spectral tests.

All functions take arrays and return boolean masks (True = unusable). Masks are dilated, since
cloud edges are thin and translucent and the QA products themselves under-detect them (Fmask
dilates by 3 pixels, Zhu and Woodcock 2012).
"""

from __future__ import annotations

import cv2
import numpy as np

from remote_sensing.indices import DateIndices, ndvi, visible

SCL_MASKED = (1, 3, 8, 9, 10, 11)
"""Sentinel-2 SCL classes never used: saturated/defective, cloud shadow, cloud medium and high
probability, thin cirrus, snow (ESA L2A product specification)."""

QA_PIXEL_BITS = (1, 2, 3, 4, 5)
"""Landsat Collection 2 QA_PIXEL bits never used: dilated cloud, cirrus, cloud, cloud shadow,
snow."""


def scl_mask(scl: np.ndarray) -> np.ndarray:
    """Pixels the Sentinel-2 scene classification calls cloud, shadow, cirrus, snow or defective."""
    return np.isin(scl, SCL_MASKED)


def qa_pixel_mask(qa: np.ndarray) -> np.ndarray:
    """Pixels a Landsat C2 QA_PIXEL band flags as cloud, dilated cloud, cirrus, shadow or snow."""
    bits = np.uint16(sum(1 << b for b in QA_PIXEL_BITS))
    return (qa.astype(np.uint16) & bits) != 0


def qa_mask(qa: np.ndarray, kind: str) -> np.ndarray:
    """The mask of a QA band of ``kind`` (``scl`` or ``qa_pixel``)."""
    if kind == "scl":
        return scl_mask(qa)
    if kind == "qa_pixel":
        return qa_pixel_mask(qa)
    raise ValueError(f"unknown QA band kind {kind!r}; known: scl, qa_pixel")


def spectral_cloud_mask(
    b: dict[str, np.ndarray], bright: float = 0.3, idx: DateIndices | None = None
) -> np.ndarray:
    """Bright, white, unvegetated pixels: a single-date cloud test.

    A cloud is bright across the visible bands and spectrally flat (the haze-optimised transform
    of Zhang et al. 2002 is positive); concrete and bare soil rarely pass both tests together.
    """
    vis = idx.visible if idx else visible(b)
    nd = idx.ndvi if idx else ndvi(b)
    hot = b["blue"] - 0.5 * b["red"]
    return (vis > bright) & (hot > 0.08) & (nd < 0.35)


def temporal_cloud_shadow(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    ratio: float = 0.72,
    haze: float = 0.05,
    reach_px: int = 12,
    ib: DateIndices | None = None,
    ia: DateIndices | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud and shadow on either date: bright cores plus what the change between dates shows.

    A cloud core is bright and white (:func:`spectral_cloud_mask`). Its translucent margin looks
    like new concrete, so it is told by the shape of the brightening: haze brightens blue, does
    not darken nir (clearing and concrete do) and brightens swir2 far less than blue (clouds
    absorb there; concrete is flat to swir2); within ``reach_px`` of a core a looser swir2 test
    suffices, and without swir2 the blue and nir tests decide alone. A shadow darkens every band
    by about the same factor, which no land-cover change does: every band below ``ratio`` of the
    other date, none below a fifth (water gain darkens nir tenfold). MAJA and Tmask use the same
    multi-temporal cues.

    Returns
    -------
    (cloud, shadow) : tuple of bool arrays
        Pixels with cloud on either date, and pixels shadowed on either date (not dilated).
    """
    roles = [r for r in ("blue", "green", "red", "nir", "swir1") if r in before]
    r32, lo32 = np.float32(ratio), np.float32(0.2)
    dark_a = np.ones(before["blue"].shape, bool)
    dark_b = np.ones(before["blue"].shape, bool)
    for r in roles:
        b, a = before[r], after[r]
        dark_a &= (a < r32 * b) & (a > lo32 * b)
        dark_b &= (b < r32 * a) & (b > lo32 * a)
    shadow = dark_a | dark_b
    dblue = after["blue"] - before["blue"]
    # Without nir (RGB scenes) red stands in: haze does not darken it either.
    long = "nir" if "nir" in before else "red"
    dnir = after[long] - before[long]
    core_a = _cores(spectral_cloud_mask(after, idx=ia))
    core_b = _cores(spectral_cloud_mask(before, idx=ib))
    cloud = core_a | core_b
    haze_a = (dblue > haze) & (dnir > -0.2 * dblue)
    haze_b = (dblue < -haze) & (dnir < -0.2 * dblue)
    if "swir2" in before:
        dlong = after["swir2"] - before["swir2"]
        # Thin cloud raises swir2 by 0.3-0.45 of blue (more over dark forest), concrete by 0.6-0.9.
        cloud |= (haze_a & (dlong < 0.5 * dblue)) | (haze_b & (dlong > 0.5 * dblue))
        # Near a core the margin is thin cloud even when the swir2 test is unsure.
        haze_a &= dlong < 0.55 * dblue
        haze_b &= dlong > 0.55 * dblue
    else:
        # Without swir2 the blue-up, nir-not-down shape is the whole test.
        cloud |= haze_a | haze_b
    if core_a.any():
        cloud |= haze_a & dilate(core_a, reach_px, square=True)
    if core_b.any():
        cloud |= haze_b & dilate(core_b, reach_px, square=True)
    return cloud, shadow


def _cores(mask: np.ndarray) -> np.ndarray:
    # A cloud core is a blob, not a few bright pixels of a roof: an opening by a 3 x 3 square
    # drops specks smaller than that.
    if not mask.any():
        return mask
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(
        bool
    )


def dilate(mask: np.ndarray, px: int, square: bool = False) -> np.ndarray:
    """``mask`` grown by ``px`` pixels (a disc, or a faster separable square)."""
    if px <= 0 or not mask.any():
        return mask
    shape = cv2.MORPH_RECT if square else cv2.MORPH_ELLIPSE
    k = cv2.getStructuringElement(shape, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.view(np.uint8), k).astype(bool)
