"""Relative radiometric normalisation of the after date to the before date.

Per band, ``before ~ gain * after + offset`` is fitted on pseudo-invariant pixels (PIFs): pixels
that did not change. Change is rare but not absent, and clouds, shadows and phenology add
outliers, so the fit is iterated: fit, score each pixel by its largest standardised residual over
the bands, keep the pixels below a robust cutoff as PIFs, refit (Schott et al. 1988 for PIFs;
Canty and Nielsen 2008 choose them from iMAD no-change probabilities instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farsight.errors import FarsightError


class NormaliseError(FarsightError):
    """Raised when too few valid pixels remain to fit a normalisation."""


@dataclass(frozen=True, slots=True)
class Normalisation:
    """Per-band linear map of the after date onto the before date."""

    roles: tuple[str, ...]
    gains: tuple[float, ...]
    offsets: tuple[float, ...]
    pif_fraction: float = 1.0

    def apply(self, after: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The after bands mapped onto the before date's radiometry (new arrays, float32)."""
        out = dict(after)
        for r, g, o in zip(self.roles, self.gains, self.offsets):
            if r in after:
                out[r] = after[r] * np.float32(g) + np.float32(o)
        return out


IDENTITY_ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")


def identity(roles: tuple[str, ...] = IDENTITY_ROLES) -> Normalisation:
    """The normalisation that changes nothing."""
    return Normalisation(roles, (1.0,) * len(roles), (0.0,) * len(roles))


def fit_pif(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    usable: np.ndarray,
    iterations: int = 4,
    cutoff: float = 2.5,
    weights: np.ndarray | None = None,
    min_pixels: int = 200,
) -> Normalisation:
    """Fit ``before ~ gain * after + offset`` per band on pseudo-invariant pixels.

    Parameters
    ----------
    before, after : dict of str to ndarray
        Reflectance by role, same shape (typically a decimated sample of the whole overlap).
    usable : ndarray of bool
        Pixels valid and cloud-free on both dates.
    iterations : int
        Fit/select rounds.
    cutoff : float
        PIFs have every band's residual within ``cutoff`` robust standard deviations.
    weights : ndarray, optional
        Prior no-change weights in 0..1 (e.g. iMAD no-change probabilities); pixels with weight
        below 0.5 are never PIFs.

    Returns
    -------
    Normalisation

    Raises
    ------
    NormaliseError
        If fewer than ``min_pixels`` usable pixels are given.
    """
    roles = tuple(r for r in before if r in after)
    pif = usable.copy()
    if weights is not None:
        pif &= weights >= 0.5
    if pif.sum() < min_pixels:
        raise NormaliseError(
            f"only {int(pif.sum())} usable pixels to normalise on (need {min_pixels}); "
            "the overlap is too small or too cloudy"
        )
    x = np.stack([after[r][usable] for r in roles]).astype(np.float64)
    y = np.stack([before[r][usable] for r in roles]).astype(np.float64)
    sel = pif[usable]
    gains = np.ones(len(roles))
    offsets = np.zeros(len(roles))
    for _ in range(iterations):
        for i in range(len(roles)):
            xs, ys = x[i, sel], y[i, sel]
            xm, ym = xs.mean(), ys.mean()
            var = ((xs - xm) ** 2).mean()
            gains[i] = ((xs - xm) * (ys - ym)).mean() / var if var > 0 else 1.0
            offsets[i] = ym - gains[i] * xm
        res = y - (gains[:, None] * x + offsets[:, None])
        mad = (
            np.median(np.abs(res[:, sel] - np.median(res[:, sel], axis=1, keepdims=True)), axis=1)
            * 1.4826
        )
        score = np.max(np.abs(res) / np.maximum(mad[:, None], 1e-6), axis=0)
        new = score < cutoff
        if weights is not None:
            new &= (weights >= 0.5)[usable]
        if new.sum() < min_pixels:
            break
        sel = new
    return Normalisation(
        roles, tuple(float(g) for g in gains), tuple(float(o) for o in offsets), float(sel.mean())
    )
