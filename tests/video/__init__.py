"""Video analyser tests; shared seeded synthetic-scene helpers live here."""

from __future__ import annotations

import cv2
import numpy as np

W, H = 640, 360


def scene(seed: int = 0, w: int = W, h: int = H) -> np.ndarray:
    """Textured BGR background: blurred random noise plus random filled shapes."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.standard_normal((h, w, 3), dtype=np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min()) * 160 + 48
    img = base.astype(np.uint8)
    for _ in range(25):
        colour = tuple(int(v) for v in rng.integers(20, 235, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(
                img,
                (x, y),
                (x + int(rng.integers(10, 100)), y + int(rng.integers(10, 100))),
                colour,
                -1,
            )
        else:
            cv2.circle(img, (x, y), int(rng.integers(5, 40)), colour, -1)
    return img


_NOISE_POOL: dict[tuple[tuple[int, ...], float], np.ndarray] = {}


def noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    """Add Gaussian sensor noise of ``sigma`` gray levels, clipped to uint8.

    Noise fields come from a seeded pool of 16 per shape (generating fresh noise per frame
    would dominate test time); ``rng`` picks one, so sequences stay deterministic.
    """
    key = (img.shape, float(sigma))
    if key not in _NOISE_POOL:
        pool_rng = np.random.default_rng(12345)
        _NOISE_POOL[key] = np.round(
            pool_rng.standard_normal((16, *img.shape), dtype=np.float32) * sigma
        ).astype(np.int16)
    noise = _NOISE_POOL[key][int(rng.integers(0, 16))]
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
