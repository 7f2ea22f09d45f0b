"""Seeded builders of hard negatives on real photographs: lamps that flicker (steadily, with
mains flicker aliased by the frame rate, or irregularly as a flame does), branches swaying
against the sky, rain and sensor noise, a hand-held pan, a figure that stands and walks off, a
band of sky texture drifting across the view.

Every builder is a pure function of its arguments (randomness from a seed), returning a BGR
``uint8`` frame, so a test reads as "this photograph, with that, at these times".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import cv2
import numpy as np

W, H, FPS = 640, 360, 5.0

Box = tuple[int, int, int, int]


def still(photo: np.ndarray, w: int = W, h: int = H) -> np.ndarray:
    """The photograph at ``w`` x ``h``."""
    return np.asarray(cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA))


def at_night(img: np.ndarray, gain: float = 0.25) -> np.ndarray:
    """A darker copy: the same scene after dusk (lamps then stand out)."""
    return np.asarray(cv2.convertScaleAbs(img, alpha=gain))


def noisy(img: np.ndarray, seed: int, n: int, sigma: float = 2.5) -> np.ndarray:
    """Sensor noise of ``sigma`` grey levels, drawn for frame ``n`` of stream ``seed``."""
    rng = np.random.default_rng([seed, n])
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(img.astype(np.float32) + noise + 0.5, 0, 255).astype(np.uint8)


def with_lamp(
    img: np.ndarray, centre: tuple[int, int], radius: int, level: float, bgr: tuple[int, ...]
) -> np.ndarray:
    """A lamp of colour ``bgr`` at ``level`` (0 off, 1 full) with a soft glow around it."""
    layer = np.zeros(img.shape[:2], np.float32)
    cv2.circle(layer, centre, radius, 1.0, -1)
    glow = cv2.GaussianBlur(layer, (0, 0), radius / 2.0)
    alpha = np.clip(np.maximum(layer, glow) * level, 0.0, 1.0)[..., None]
    out = img.astype(np.float32) * (1.0 - alpha) + np.array(bgr, np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def lamp_level(kind: str, n: int, seed: int, depth: float = 0.4) -> float:
    """Brightness of a lamp in frame ``n``, between ``1 - 2 depth`` and 1.

    ``alias``: 100 Hz mains flicker seen at a frame rate a little off a divisor of it, a
    regular oscillation at 0.4 times the frame rate; ``onoff``: a failing lamp that alternates;
    ``steady``: always on; ``flame``: irregular, a seeded random level each frame.
    """
    if kind == "alias":
        return 1.0 - depth + depth * math.cos(2 * math.pi * 0.4 * n)
    if kind == "onoff":
        return 1.0 if n % 2 else 1.0 - 2 * depth
    if kind == "steady":
        return 1.0
    if kind == "flame":
        return float(np.random.default_rng([seed, 7, n]).uniform(1.0 - 2 * depth, 1.0))
    raise ValueError(kind)


def swayed(img: np.ndarray, box: Box, t: float, amp_px: float, freq_hz: float) -> np.ndarray:
    """``img`` with the content of ``box`` (branches, leaves) shifted sideways by
    ``amp_px * sin(2 pi freq_hz t)`` and a third of it vertically: wind in a tree."""
    x, y, w, h = box
    s = amp_px * math.sin(2 * math.pi * freq_hz * t)
    m = np.array([[1.0, 0.0, s], [0.0, 1.0, s / 3.0]], np.float32)
    out = img.copy()
    out[y : y + h, x : x + w] = cv2.warpAffine(
        img[y : y + h, x : x + w], m, (w, h), borderMode=cv2.BORDER_REFLECT
    )
    return out


def rainy(img: np.ndarray, seed: int, n: int, near: bool = True) -> np.ndarray:
    """Rain: fresh streaks every frame (drops falling through the exposure); ``near`` adds
    thick out-of-focus drops close to the lens."""
    rng = np.random.default_rng([seed, 11, n])
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(w * h // 1200):
        x, y, ln = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.6, 1.4) * h / 22
        cv2.line(layer, (int(x), int(y)), (int(x + 0.25 * ln), int(y + ln)), 1.0, 1)
    if near:
        for _ in range(6):
            x, y, ln = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.2) * h
            cv2.line(layer, (int(x), int(y)), (int(x + 0.2 * ln), int(y + ln)), 0.7, 3)
    out = img.astype(np.float32) * 0.8 + (layer * 40.0)[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def panned(
    scene: np.ndarray, n: int, step_px: float, seed: int, w: int = W, h: int = H
) -> np.ndarray:
    """Frame ``n`` of a hand-held pan across ``scene`` (larger than ``w`` x ``h``): the view
    slides ``step_px`` per frame to the right, with a seeded jitter of a few pixels."""
    rng = np.random.default_rng([seed, 13, n])
    jx, jy = rng.normal(0.0, 1.5, 2)
    x0 = min(scene.shape[1] - w - 1.0, max(0.0, 4.0 + n * step_px + jx))
    y0 = min(scene.shape[0] - h - 1.0, max(0.0, 8.0 + jy))
    m = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]], np.float32)
    return np.asarray(cv2.warpAffine(scene, m, (w, h), flags=cv2.INTER_LINEAR))


def with_figure(img: np.ndarray, box: Box, bgr: tuple[int, int, int]) -> np.ndarray:
    """A standing figure (head and body, soft-edged) filling ``box``."""
    x, y, w, h = box
    layer = np.zeros(img.shape[:2], np.float32)
    cv2.ellipse(layer, (x + w // 2, y + h // 7), (w // 4, h // 8), 0, 0, 360, 1.0, -1)
    cv2.rectangle(layer, (x + w // 6, y + h // 4), (x + w - w // 6, y + h), 1.0, -1)
    alpha = cv2.GaussianBlur(layer, (0, 0), 1.0)[..., None]
    out = img.astype(np.float32) * (1 - alpha) + np.array(bgr, np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def cloud_band(
    img: np.ndarray, y: int, h: int, t: float, seed: int, speed_px_s: float
) -> np.ndarray:
    """A band of whitish cloud texture ``h`` rows high at row ``y``, across the whole width,
    drifting sideways at ``speed_px_s``: weather in the sky, not a plume."""
    rng = np.random.default_rng([seed, 17])
    w = img.shape[1]
    base = cv2.GaussianBlur(rng.random((h, 2 * w), dtype=np.float32), (0, 0), 6.0)
    base = (base - base.min()) / (np.ptp(base) + 1e-6)
    shift = int(t * speed_px_s) % w
    tex = base[:, shift : shift + w]
    rows = np.sin(np.linspace(0, math.pi, h, dtype=np.float32))[:, None]
    alpha = (0.25 + 0.35 * tex) * rows
    out = img.astype(np.float32)
    band = out[y : y + h]
    out[y : y + h] = band * (1 - alpha[..., None]) + 225.0 * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def clip(
    build: Callable[[int, float], np.ndarray], seconds: float, fps: float = FPS
) -> Iterator[tuple[float, np.ndarray]]:
    """``(t, frame)`` for ``build(n, t)`` at ``fps`` over ``seconds``."""
    for n in range(round(seconds * fps)):
        t = n / fps
        yield t, build(n, t)
