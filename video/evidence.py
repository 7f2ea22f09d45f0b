"""Content-addressed evidence files and annotated snapshots.

:class:`EvidenceStore` keeps each file once under ``<root>/ab/abcdef....jpg`` where the name is
the SHA-256 of its bytes (as Git and IPFS do): the name is the integrity check, and storing the
same bytes twice is a no-op. The conventional root is ``<data_dir>/evidence``
(:meth:`EvidenceStore.for_data_dir`). :func:`snapshot` makes the JPEG pair a detection carries.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from farsight.errors import NotFoundError, StoreError

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX_RE = re.compile(r"^\.[a-z0-9]{1,8}$")


def _check_sha(sha: str) -> str:
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise ValueError(f"evidence id must be 64 lowercase hex digits (sha256), got {sha!r}")
    return sha


class EvidenceStore:
    """Files named by the SHA-256 of their bytes, sharded by the first two hex digits."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_data_dir(cls, data_dir: str | Path) -> "EvidenceStore":
        """The store at ``<data_dir>/evidence``."""
        return cls(Path(data_dir) / "evidence")

    def _target(self, sha: str, suffix: str) -> Path:
        return self.root / sha[:2] / f"{sha}{suffix}"

    def put(self, data: bytes, suffix: str = ".jpg") -> str:
        """Store ``data`` (once) and return its SHA-256 hex digest.

        Writes to a temporary file in the same folder and renames it into place, so a reader
        never sees a partial file; if the file already exists nothing is written.

        Raises
        ------
        ValueError
            If ``data`` is not bytes or ``suffix`` is not like ``.jpg``.
        StoreError
            If the file cannot be written.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"evidence data must be bytes, got {type(data).__name__}")
        if not isinstance(suffix, str) or not _SUFFIX_RE.match(suffix):
            raise ValueError(f"suffix must look like '.jpg' (lowercase, 1-8 characters), got {suffix!r}")
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        target = self._target(sha, suffix)
        if target.is_file():
            return sha
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreError(f"cannot write evidence {target}: {exc.strerror or exc}") from None
        return sha

    def path(self, sha: str) -> Path:
        """Path of the stored file with this digest (any suffix).

        Raises
        ------
        ValueError
            If ``sha`` is not a SHA-256 hex digest.
        NotFoundError
            If no such file is stored.
        """
        _check_sha(sha)
        folder = self.root / sha[:2]
        if folder.is_dir():
            for p in sorted(folder.glob(f"{sha}.*")):
                if p.is_file():
                    return p
        raise NotFoundError(f"no evidence {sha} under {self.root}")

    def __contains__(self, sha: object) -> bool:
        try:
            self.path(sha)  # type: ignore[arg-type]
        except (ValueError, NotFoundError):
            return False
        return True


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
    frame: np.ndarray, bbox: tuple[int, int, int, int] | None, label: str, color: tuple[int, int, int] = (0, 0, 255)
) -> np.ndarray:
    """Copy of ``frame`` with ``bbox`` (if any) outlined and ``label`` written above it (or top-left).

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
    cv2.putText(img, text, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
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
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError("frame must be a BGR uint8 HxWx3 numpy array")
    return encode_jpeg(annotate(frame, bbox, label), quality), encode_jpeg(frame, quality)
