"""Relative radiometric normalisation of the after date to the before date.

Per band, ``before ~ gain * after + offset`` is fitted on pseudo-invariant pixels (PIFs): pixels
that did not change. Change is rare but not absent, and clouds, shadows and phenology add
outliers, so the fit is iterated: fit, score each pixel by its largest standardised residual over
the bands, keep the pixels below a robust cutoff as PIFs, refit (Schott et al. 1988 for PIFs;
Canty and Nielsen 2008 choose them from iMAD no-change probabilities instead).

When too few PIFs are found but the overlap still holds enough clear pixels, :func:`fit` degrades
instead of refusing: each after band is histogram (quantile) matched to the before band over the
whole overlap. That assumes change is a minority of the overlap, a weaker assumption than
invariant pixels, so the result is marked ``degraded`` and what is found with it carries
:data:`DEGRADED_CONFIDENCE` times its usual confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farsight.errors import FarsightError


class NormaliseError(FarsightError):
    """Raised when too few valid pixels remain to fit a normalisation."""


MIN_PIF_PIXELS = 200
"""Pseudo-invariant pixels a per-band linear fit needs."""

MIN_OVERLAP_PIXELS = 1000
"""Clear pixels on both dates histogram matching needs (its 201 quantiles each rest on at least
five pixels); fewer and the pair cannot be compared."""

DEGRADED_CONFIDENCE = 0.7
"""Factor on the confidence of every change found with a degraded (histogram-matched)
normalisation: the match erases part of any change that covers much of the overlap and maps
noise of sparse histogram tails, so a change found with it is less certain."""

QUANTILES = np.linspace(0.0, 100.0, 201)


@dataclass(frozen=True, slots=True)
class Normalisation:
    """Per-band linear map of the after date onto the before date."""

    roles: tuple[str, ...]
    gains: tuple[float, ...]
    offsets: tuple[float, ...]
    pif_fraction: float = 1.0
    method: str = "pif"
    pif_count: int = -1
    quantiles: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()
    """Per role, (after quantiles, before quantiles) of a histogram match; empty for a linear
    map."""

    @property
    def degraded(self) -> bool:
        """Whether the normalisation fell back from PIFs to histogram matching."""
        return self.method == "histogram"

    def describe(self) -> str:
        """``pif (1234 pixels)`` or ``histogram (degraded; 57 PIFs)``."""
        if self.degraded:
            return f"{self.method} (degraded; {max(self.pif_count, 0)} PIFs)"
        return f"{self.method} ({self.pif_count} pixels)" if self.pif_count >= 0 else self.method

    def apply(self, after: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The after bands mapped onto the before date's radiometry (new arrays, float32)."""
        out = dict(after)
        if self.quantiles:
            for r, (src, dst) in zip(self.roles, self.quantiles):
                if r in after:
                    out[r] = _match(after[r], np.asarray(src), np.asarray(dst))
            return out
        for r, g, o in zip(self.roles, self.gains, self.offsets):
            if r in after:
                out[r] = after[r] * np.float32(g) + np.float32(o)
        return out


def _match(values: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    # Piecewise-linear through the quantile pairs; beyond the sample's range values keep their
    # distance to its end (slope 1), so a cloud brighter than any sampled pixel stays brighter.
    v = values.astype(np.float64)
    inner = np.interp(v, src, dst)
    return (inner + (v - np.clip(v, src[0], src[-1]))).astype(np.float32)


IDENTITY_ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")


def identity(roles: tuple[str, ...] = IDENTITY_ROLES) -> Normalisation:
    """The normalisation that changes nothing."""
    return Normalisation(roles, (1.0,) * len(roles), (0.0,) * len(roles), method="none")


def fit_pif(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    usable: np.ndarray,
    iterations: int = 4,
    cutoff: float = 2.5,
    weights: np.ndarray | None = None,
    min_pixels: int = MIN_PIF_PIXELS,
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
        roles,
        tuple(float(g) for g in gains),
        tuple(float(o) for o in offsets),
        float(sel.mean()),
        pif_count=int(sel.sum()),
    )


def fit_histogram(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    usable: np.ndarray,
    pif_count: int = 0,
) -> Normalisation:
    """Per-band histogram (quantile) matching of the after date to the before date.

    Parameters
    ----------
    before, after : dict of str to ndarray
        Reflectance by role, same shape.
    usable : ndarray of bool
        Pixels valid and cloud-free on both dates.
    pif_count : int
        PIFs the linear fit found (recorded, for the output to say why it degraded).

    Returns
    -------
    Normalisation
        ``method="histogram"``; gains and offsets are the linear fit through the matched
        quantiles' ends (for logs), the map itself is the quantile table.

    Raises
    ------
    NormaliseError
        If no usable pixel is given.
    """
    roles = tuple(r for r in before if r in after)
    if not usable.any():
        raise NormaliseError("no usable pixels to match histograms on")
    table = []
    gains, offsets = [], []
    for r in roles:
        src = np.percentile(after[r][usable].astype(np.float64), QUANTILES)
        dst = np.percentile(before[r][usable].astype(np.float64), QUANTILES)
        # np.interp needs increasing sample points; ties (flat runs) are nudged apart.
        src = np.maximum.accumulate(src + np.arange(src.size) * 1e-9)
        table.append((tuple(float(v) for v in src), tuple(float(v) for v in dst)))
        span = src[-1] - src[0]
        g = (dst[-1] - dst[0]) / span if span > 0 else 1.0
        gains.append(float(g))
        offsets.append(float(dst[0] - g * src[0]))
    return Normalisation(
        roles,
        tuple(gains),
        tuple(offsets),
        pif_fraction=pif_count / max(int(usable.sum()), 1),
        method="histogram",
        pif_count=pif_count,
        quantiles=tuple(table),
    )


def fit(
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    usable: np.ndarray,
    weights: np.ndarray | None = None,
    min_pixels: int = MIN_PIF_PIXELS,
    min_overlap: int = MIN_OVERLAP_PIXELS,
) -> Normalisation:
    """PIF normalisation, degrading to histogram matching when PIFs are few.

    Parameters
    ----------
    before, after, usable, weights
        As for :func:`fit_pif`.
    min_pixels : int
        PIFs the linear fit needs.
    min_overlap : int
        Usable pixels the histogram match needs.

    Returns
    -------
    Normalisation
        Linear (``method="pif"``) when at least ``min_pixels`` PIFs are found, otherwise a
        histogram match (``degraded``).

    Raises
    ------
    NormaliseError
        If fewer than ``min_overlap`` usable pixels are given and PIFs are too few.
    """
    pif = usable if weights is None else usable & (weights >= 0.5)
    n_pif = int(pif.sum())
    if n_pif >= min_pixels:
        return fit_pif(before, after, usable, weights=weights, min_pixels=min_pixels)
    if int(usable.sum()) < min_overlap:
        raise NormaliseError(
            f"only {n_pif} pseudo-invariant and {int(usable.sum())} usable pixels to normalise"
            f" on (need {min_pixels} invariant or {min_overlap} usable)"
        )
    return fit_histogram(before, after, usable, n_pif)


def refusal(overlap: int, valid: int, clear: int, zero_fill: bool, min_overlap: int) -> str | None:
    """Why a pair cannot be compared, and the flag that would help; ``None`` when it can.

    Parameters
    ----------
    overlap : int
        Sampled pixels of the scenes' common grid.
    valid : int
        Of those, pixels with data on both dates.
    clear : int
        Of those, pixels free of cloud and shadow (and unsaturated).
    zero_fill : bool
        Whether zeros were taken as nodata in either scene (untagged zero-filled edges).
    min_overlap : int
        Pixels needed.
    """
    if clear >= min_overlap:
        return None
    if overlap < min_overlap:
        return (
            f"the scenes overlap by only {overlap} pixels (need {min_overlap}); no flag helps:"
            " give two scenes that cover the same ground"
        )
    if valid < min_overlap:
        hint = (
            "zeros were taken as nodata; if they are data, give the file a nodata tag"
            if zero_fill
            else "if nodata was misread, check the files' nodata tags"
        )
        return (
            f"only {valid} of {overlap} overlap pixels hold data on both dates (nodata fills the"
            f" rest; need {min_overlap}); {hint}, or pass --bands if the band count is wrong"
        )
    return (
        f"only {clear} of {valid} pixels with data on both dates are clear (the rest is masked"
        f" as cloud, shadow or saturated; need {min_overlap}); if the scenes are not that"
        " cloudy their values were misread: pass --scale or --sensor (the radiometry line says"
        " what was assumed), or --bands if the band order is wrong"
    )
