"""Spectral indices on reflectance arrays (float32 in, float32 out, within -1..1).

Every index is a normalised difference or ratio of bands, so a uniform scaling of all bands (a
cloud shadow, a gain error common to all bands) leaves it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` clipped to -1..1 (a meaningless +-1 where ``a + b`` is not positive:
    nodata or noise over very dark targets, which masks remove).

    Computed in place on two temporaries: a 1024 x 1024 block costs four passes, not eight.
    """
    s = np.add(a, b, dtype=np.float32)
    d = np.subtract(a, b, dtype=np.float32)
    np.maximum(s, np.float32(1e-6), out=s)
    np.divide(d, s, out=d)
    return np.clip(d, -1.0, 1.0, out=d)


def ndvi(bands: dict[str, np.ndarray]) -> np.ndarray:
    """Normalised difference vegetation index (Rouse et al. 1974): nir vs red; 0 everywhere
    for a visible-only (RGB) scene, so no vegetation rule holds on it."""
    if "nir" not in bands:
        return np.zeros(bands["red"].shape, np.float32)
    return normalised_difference(bands["nir"], bands["red"])


def water_index(bands: dict[str, np.ndarray]) -> np.ndarray:
    """MNDWI (Xu 2006, green vs swir1) when a swir1 band exists, else NDWI (McFeeters 1996,
    green vs nir); 0 everywhere for a visible-only scene, so no water rule holds on it."""
    if "swir1" not in bands and "nir" not in bands:
        return np.zeros(bands["green"].shape, np.float32)
    return normalised_difference(
        bands["green"], bands["swir1"] if "swir1" in bands else bands["nir"]
    )


def ndbi(bands: dict[str, np.ndarray]) -> np.ndarray:
    """Normalised difference built-up index (Zha et al. 2003): swir1 vs nir; needs swir1."""
    return normalised_difference(bands["swir1"], bands["nir"])


def bsi(bands: dict[str, np.ndarray]) -> np.ndarray:
    """Bare soil index (Rikimaru et al. 2002): (swir1 + red) vs (nir + blue); needs swir1."""
    return normalised_difference(bands["swir1"] + bands["red"], bands["nir"] + bands["blue"])


def redness(bands: dict[str, np.ndarray]) -> np.ndarray:
    """Red vs blue: soil is red, concrete and roofs are grey; the bare-soil proxy without swir."""
    return normalised_difference(bands["red"], bands["blue"])


def visible(bands: dict[str, np.ndarray]) -> np.ndarray:
    """Mean visible reflectance (blue, green, red)."""
    return (bands["blue"] + bands["green"] + bands["red"]) * np.float32(1 / 3)


@dataclass(frozen=True, slots=True)
class DateIndices:
    """The indices of one date that masks and detectors share, computed once per block."""

    ndvi: np.ndarray
    water: np.ndarray
    visible: np.ndarray


def date_indices(bands: dict[str, np.ndarray]) -> DateIndices:
    """NDVI, water index and mean visible reflectance of one date."""
    return DateIndices(ndvi(bands), water_index(bands), visible(bands))
