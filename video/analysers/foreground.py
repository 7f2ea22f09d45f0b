"""Foreground against a learned background: the pure steps intrusion, line count, stopped
vehicle, smoke and motion share.

The colour pipeline of intrusion and line count is, per frame::

    fg = foreground_mask(small, background, threshold, global_change, open_kernel, kernel)
    background = blend_background(background, small, fg > 0, dt, bg_tau_s, fg_tau_s)
    blobs = connected_blobs(fg)

Every function takes its parameters explicitly and returns new values; the analysers keep
the state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from farsight.errors import ConfigError
from video.analysers.base import BBox, Polygon, Zone, colour_difference, rasterise_polygons

AnalysisBox = tuple[int, int, int, int]
"""Box ``(x, y, w, h)`` in analysis-resolution pixels."""


def analysis_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """``(w, h)`` for ``cv2.resize`` of a ``width`` x ``height`` frame to ``target_height`` rows
    (never upscaled), keeping the aspect ratio."""
    rh = min(target_height, height)
    return (max(1, round(width * rh / height)), rh)


def scaled_mask(
    polygons: Sequence[Polygon], sx: float, sy: float, size: tuple[int, int]
) -> np.ndarray:
    """``bool`` mask of ``size`` (w, h), True inside any of ``polygons`` given in full-resolution
    pixels (``sx``, ``sy``: analysis / full scale per axis)."""
    sw, sh = size
    return rasterise_polygons([[(x * sx, y * sy) for x, y in poly] for poly in polygons], sw, sh)


def zone_masks(
    zones: Sequence[Zone], sx: float, sy: float, size: tuple[int, int]
) -> list[np.ndarray]:
    """Each zone's :func:`scaled_mask`.

    Raises
    ------
    ConfigError
        A zone covers no pixel at analysis resolution (it could never report).
    """
    masks = []
    for z in zones:
        m = scaled_mask([z.points], sx, sy, size)
        if not m.any():
            raise ConfigError(f"zone {z.name!r} covers no pixel at analysis resolution")
        masks.append(m)
    return masks


def ema_weight(dt: float, tau_s: float) -> float:
    """Weight of a new observation ``dt`` seconds after the last in an exponential moving
    average with time constant ``tau_s``: frame-rate independent, unlike a per-frame alpha."""
    return 1.0 - math.exp(-dt / tau_s)


def foreground_mask(
    small: np.ndarray,
    background: np.ndarray,
    threshold: float,
    global_change: float,
    open_kernel: np.ndarray,
    dilate_kernel: np.ndarray,
) -> np.ndarray | None:
    """Cleaned foreground of a colour image against a ``float32`` colour background.

    Parameters
    ----------
    small : numpy.ndarray
        BGR ``uint8`` image at analysis resolution.
    background : numpy.ndarray
        ``float32`` BGR background of the same size.
    threshold : float
        Largest per-channel difference (:func:`colour_difference`) counted as foreground.
    global_change : float
        Foreground share of the frame above which the view itself changed.
    open_kernel, dilate_kernel : numpy.ndarray
        Structuring elements: an opening drops speckle and one-pixel streaks (rain), one
        dilation joins the parts of a figure.

    Returns
    -------
    numpy.ndarray or None
        ``uint8`` 0/1 mask, or None when more than ``global_change`` of the frame differs (the
        caller adopts the new view instead).
    """
    fg = (colour_difference(small, background) >= threshold).astype(np.uint8)
    if cv2.countNonZero(fg) > global_change * fg.size:
        return None
    opened = cv2.morphologyEx(fg, cv2.MORPH_OPEN, open_kernel)
    return np.asarray(cv2.dilate(opened, dilate_kernel, iterations=1))


def blend_background(
    background: np.ndarray,
    image: np.ndarray,
    foreground: np.ndarray,
    dt: float,
    bg_tau_s: float,
    fg_tau_s: float,
) -> np.ndarray:
    """Selective background update: fast where nothing is foreground, slow under foreground.

    Parameters
    ----------
    background : numpy.ndarray
        ``float32`` image of shape ``(h, w, c)``; not modified.
    image : numpy.ndarray
        The new frame, same shape (any dtype).
    foreground : numpy.ndarray
        ``bool`` of shape ``(h, w)``.
    dt : float
        Seconds since the previous frame.
    bg_tau_s, fg_tau_s : float
        Time constants away from and under foreground.

    Returns
    -------
    numpy.ndarray
        The updated ``float32`` background.
    """
    k_bg, k_fg = ema_weight(dt, bg_tau_s), ema_weight(dt, fg_tau_s)
    k = np.where(foreground, np.float32(k_fg), np.float32(k_bg))[..., None]
    out: np.ndarray = background + k * (image.astype(np.float32) - background)
    return out


@dataclass(frozen=True, slots=True)
class Blob:
    """A connected foreground region at analysis resolution.

    ``x, y, w, h`` is its box, ``area`` its pixel count and ``cx, cy`` the centroid of its
    pixels (0 where a caller builds a blob by hand and needs none).
    """

    x: int
    y: int
    w: int
    h: int
    area: int
    cx: float = 0.0
    cy: float = 0.0


def connected_blobs(mask: np.ndarray) -> list[Blob]:
    """8-connected regions of a ``uint8`` mask, in label order (background excluded)."""
    n, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    blobs = []
    for j in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[j, :5])
        blobs.append(Blob(x, y, w, h, area, float(cents[j][0]), float(cents[j][1])))
    return blobs


def to_full_box(box: AnalysisBox, sx: float, sy: float, width: int, height: int) -> BBox:
    """An analysis-resolution box ``(x, y, w, h)`` in full-resolution pixels, grown outwards to
    whole pixels and clipped to the ``width`` x ``height`` frame (``sx``, ``sy``: analysis /
    full scale per axis)."""
    x, y, w, h = box
    x0, y0 = math.floor(x / sx), math.floor(y / sy)
    x1 = min(width, math.ceil((x + w) / sx))
    y1 = min(height, math.ceil((y + h) / sy))
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
