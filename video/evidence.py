"""Annotated snapshots for detections; the content-addressed store itself is
:mod:`farsight.evidence`.

:func:`snapshot` makes the JPEG pair a detection carries (annotated, raw).
"""

from __future__ import annotations

import cv2
import numpy as np

from farsight.evidence import EvidenceStore

__all__ = ["EvidenceStore", "annotate", "encode_jpeg", "snapshot"]


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """Encode a BGR ``uint8`` image as JPEG bytes.

    Raises
    ------
    ValueError
        If the image is not ``uint8`` HxW or HxWx3, quality is outside 1..100, or encoding fails.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("image must be a uint8 HxW or HxWx3 numpy array")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality!r}")
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return buf.tobytes()


def annotate(
    frame: np.ndarray,
    bbox: tuple[int, int, int, int] | None,
    label: str,
    color: tuple[int, int, int] = (0, 0, 255),
) -> np.ndarray:
    """Copy of ``frame`` with ``bbox`` (if any) outlined and ``label`` written above it (or
    top-left).

    Parameters
    ----------
    frame : numpy.ndarray
        BGR ``uint8`` image; not modified.
    bbox : tuple of int or None
        ``(x, y, w, h)`` in pixels; None for a whole-frame finding (label only).
    label : str
        Text to draw; OpenCV's Hershey font only renders ASCII, other characters become ``?``.
    """
    img = frame.copy()
    h, w = img.shape[:2]
    thick = max(1, round(min(w, h) / 240))
    scale = max(0.35, min(w, h) / 600)
    text = label.encode("ascii", "replace").decode("ascii")
    if bbox is not None:
        x, y, bw, bh = (int(v) for v in bbox)
        cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), color, thick)
        anchor = (x, y)
    else:
        anchor = (0, 0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    tx = min(max(0, anchor[0]), max(0, w - tw - 2))
    ty = anchor[1] - base - 2 if anchor[1] - th - base - 4 >= 0 else anchor[1] + th + 4
    ty = min(max(th + 2, ty), h - base - 1)
    # Filled backing box so the label stays readable on any background.
    cv2.rectangle(img, (tx, ty - th - 2), (tx + tw + 2, ty + base), color, cv2.FILLED)
    cv2.putText(
        img,
        text,
        (tx + 1, ty),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thick,
        cv2.LINE_AA,
    )
    return img


def snapshot(
    frame: np.ndarray, bbox: tuple[int, int, int, int] | None, label: str, quality: int = 85
) -> tuple[bytes, bytes]:
    """JPEG pair for a detection: ``(annotated, raw)``.

    Parameters
    ----------
    frame : numpy.ndarray
        BGR ``uint8`` image of shape ``(height, width, 3)``; not modified.
    bbox : tuple of int or None
        Box to outline, ``(x, y, w, h)``; None draws the label only.
    label : str
        E.g. ``"motion 0.82 gate"``.
    quality : int, default 85
        JPEG quality, 1..100.

    Returns
    -------
    tuple of bytes
        Annotated JPEG, raw JPEG.
    """
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or frame.shape[2] != 3
    ):
        raise ValueError("frame must be a BGR uint8 HxWx3 numpy array")
    return encode_jpeg(annotate(frame, bbox, label), quality), encode_jpeg(frame, quality)
