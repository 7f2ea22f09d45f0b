"""What a scene's numbers are, and the linear map that brings them to (pseudo-)reflectance.

Archives deliver reflectance (float 0..1, or integers with a scale and offset in the file),
reflectance scaled by 10000 without a scale tag (Level-2 exports), or digital numbers (Landsat
Level-1 uint16, Gaofen 10/12-bit, 8-bit GIS exports). The detectors' thresholds are in
reflectance units, so every band is mapped by ``value * scale + offset``:

* ``--scale``, a file scale/offset, a product metadata file (Landsat MTL, Sentinel-2 MTD:
  :mod:`remote_sensing.sidecar`) or a sensor preset: used as given, in that order;
* float values within -0.5..2: reflectance;
* 16-bit integers whose bulk lies within 0..10000, dark end under 2500 and bright end within
  1500..12000: reflectance x 1e4 (guessed from the range);
* any other integers (digital numbers of any bit depth): a relative map, ``0.02 + (DN - dark) *
  gain`` per band, where ``dark`` is the band's 0.5th percentile (dark-object subtraction,
  Chavez 1988) and one ``gain`` for all bands puts the scene's median visible brightness at
  :data:`TYPICAL_VISIBLE` (land reflectance seldom strays far from it). Band ratios keep their
  order, the normalisation then fits the after date onto the before date, and a cloud still
  reads several times brighter than the land around it; but the values are not physical, so
  what is found carries lower confidence and the output says ``guessed``.

:func:`classify` is pure (statistics in, :class:`Radiometry` out); :func:`sample_stats`
computes the statistics from a decimated read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TYPICAL_VISIBLE = 0.08
"""Median visible reflectance a relative map puts a scene at (vegetated and built land at
10-30 m is mostly 0.04-0.12 in blue to red)."""

DARK = 0.02
"""Reflectance a band's dark end (0.5th percentile) is mapped to by a relative map."""

ZERO_EDGE_FRACTION = 1e-3
"""Share of pixels zero in every band above which an untagged integer file is read as zero-filled
outside its footprint (Level-1 products); real land is never zero in every band at once."""


@dataclass(frozen=True, slots=True)
class BandStats:
    """Robust statistics of one band over the valid pixels of a decimated read."""

    dark: float
    median: float
    high: float
    maximum: float


@dataclass(frozen=True, slots=True)
class Radiometry:
    """What the numbers are and how they were mapped to reflectance.

    ``kind`` is ``reflectance``, ``reflectance-1e4`` or ``dn-<bits>bit``; ``source`` says how
    that was decided (``file scale/offset``, ``sensor preset``, ``--scale``, ``data type``,
    ``guessed from range``); ``scales[i]``, ``offsets[i]`` map band ``i`` (in role order) to
    reflectance. ``relative`` maps are not physical.
    """

    kind: str
    source: str
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    relative: bool = False
    zero_nodata: bool = False

    def describe(self) -> str:
        """``dn-8bit (guessed from range)``, and the zero-edge assumption when made."""
        text = f"{self.kind} ({self.source})"
        return text + ", zero-filled edges as nodata" if self.zero_nodata else text


@dataclass(frozen=True, slots=True)
class ProductScaling:
    """What a product metadata file says about the bands (in role order): ``scales`` and
    ``offsets`` to reflectance, ``kind`` what they give, ``source`` how the output names it
    (``Landsat MTL, TOA``). Without ``scales`` the file gives none (Gaofen L1A): the numbers
    stay a relative map, with ``source`` saying why."""

    source: str
    kind: str = "reflectance"
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()


def _bits(maximum: float, dtype: str) -> int:
    # 10- and 12-bit sensors (Gaofen) deliver in 16-bit files; Landsat's 12-bit data are
    # rescaled to 16 bits, so anything above 4095 is called by its data type.
    if dtype in ("uint8", "int8"):
        return 8
    for bits in (8, 10, 12):
        if maximum < 2**bits:
            return bits
    return 16


def classify(
    stats: tuple[BandStats, ...],
    roles: tuple[str, ...],
    dtype: str,
    file_scales: tuple[float, ...],
    file_offsets: tuple[float, ...],
    preset: tuple[float, float] | None = None,
    scale: tuple[float, float] | None = None,
    sidecar: ProductScaling | None = None,
) -> Radiometry:
    """Decide what a scene's numbers are and how to map them to reflectance.

    Parameters
    ----------
    stats : tuple of BandStats
        Per band, in ``roles`` order, of the raw values (before any scale).
    roles : tuple of str
    dtype : str
        The file's data type.
    file_scales, file_offsets : tuple of float
        The file's band scale and offset (1 and 0 when it has none).
    preset : (scale, offset), optional
        The sensor preset's product scaling.
    scale : (scale, offset), optional
        The user's ``--scale``; wins over everything.
    sidecar : ProductScaling, optional
        What the product's metadata file says; behind the file's own scale/offset, ahead of
        the preset and the guess. Without scales, it names the relative map's source.
    """
    n = len(roles)
    if scale is not None:
        return Radiometry("reflectance", "--scale", (scale[0],) * n, (scale[1],) * n)
    if any(s != 1.0 or o != 0.0 for s, o in zip(file_scales, file_offsets)):
        return Radiometry("reflectance", "file scale/offset", file_scales, file_offsets)
    if sidecar is not None and sidecar.scales:
        return Radiometry(sidecar.kind, sidecar.source, sidecar.scales, sidecar.offsets)
    if preset is not None:
        return Radiometry("reflectance", "sensor preset", (preset[0],) * n, (preset[1],) * n)
    if not stats:
        return Radiometry("reflectance", "no valid pixels; assumed", (1.0,) * n, (0.0,) * n)
    top = max(s.high for s in stats)
    if dtype.startswith("float"):
        if -0.5 <= min(s.dark for s in stats) and top <= 2.0:
            return Radiometry("reflectance", "data type", (1.0,) * n, (0.0,) * n)
    elif (
        max(s.median for s in stats) <= 10000
        and min(s.dark for s in stats) < 2500
        and dtype not in ("uint8", "int8")
        and 1500 < top <= 12000
    ):
        # Level-2 exports keep reflectance x 1e4 in int16/uint16 without a scale tag: bright
        # land and cloud reach thousands, dark land is near zero. Level-1 DNs start higher
        # (Landsat's dark end is near 5000-7000) and 8-12 bit DNs never reach 1500 in bulk.
        return Radiometry("reflectance-1e4", "guessed from range", (1e-4,) * n, (0.0,) * n)
    bits = _bits(max(s.maximum for s in stats), dtype)
    visible = [s for r, s in zip(roles, stats) if r in ("blue", "green", "red")] or list(stats)
    spread = float(np.mean([s.median - s.dark for s in visible]))
    gain = (TYPICAL_VISIBLE - DARK) / spread if spread > 0 else 1.0 / 2**bits
    guessed = "guessed from range" if not dtype.startswith("float") else "float outside 0..2"
    return Radiometry(
        f"dn-{bits}bit",
        sidecar.source if sidecar is not None else guessed,
        (gain,) * n,
        tuple(DARK - s.dark * gain for s in stats),
        relative=True,
    )


def band_stats(values: np.ndarray, valid: np.ndarray) -> tuple[BandStats, ...]:
    """Per band (first axis) statistics over ``valid`` pixels."""
    out = []
    for band in values:
        v = band[valid].astype(np.float64)
        if v.size == 0:
            return ()
        dark, median, high = np.percentile(v, [0.5, 50, 99.5])
        out.append(BandStats(float(dark), float(median), float(high), float(v.max())))
    return tuple(out)


def zero_filled(values: np.ndarray, dtype: str) -> bool:
    """Whether an untagged integer scene is zero-filled outside its footprint."""
    if dtype.startswith("float"):
        return False
    return float((values == 0).all(axis=0).mean()) > ZERO_EDGE_FRACTION
