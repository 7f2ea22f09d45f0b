"""Band roles by wavelength, so two sensors' bands pair up.

Band numbers mean different things on different instruments (Landsat 8's band 2 is blue,
Landsat 7's band 2 is green, Sentinel-2's B02 is blue), so a role is decided from the band's
centre wavelength: :data:`WAVELENGTHS` per instrument, :func:`role_of` for one band and
:func:`match_pair` for the two dates of a pair, which keeps a role only where both dates have a
band for it and says which band each role came from.

Centre wavelengths (nm) are the middles of the published band limits:

* Landsat 4/5 TM, Landsat 7 ETM+, Landsat 8/9 OLI: USGS, "What are the band designations for
  the Landsat satellites?" (usgs.gov/faqs), and the Landsat 8 (L8) Data Users Handbook v5.0,
  table 2-1 (OLI);
* Sentinel-2 MSI: the S2A central wavelengths of the ESA Sentinel-2 User Handbook / MSI
  Technical Guide (spectral response functions, S2-SRF COPE-GSEG-EOPG-TN-15-0007);
* Gaofen-1 WFV, Gaofen-2 PMS (multispectral), Gaofen-6 WFV: CRESDA's satellite pages
  (cresda.com, "GF-1", "GF-2", "GF-6" payload parameters), band limits 0.45-0.52, 0.52-0.59,
  0.63-0.69, 0.77-0.89 um, and for GF-6 WFV also 0.69-0.73, 0.73-0.77, 0.40-0.45, 0.59-0.63 um
  (bands 5-8).
"""

from __future__ import annotations

from dataclasses import dataclass

WAVELENGTHS: dict[str, dict[str, float]] = {
    "landsat5-tm": {"1": 485, "2": 560, "3": 660, "4": 830, "5": 1650, "7": 2215},
    "landsat7-etm": {"1": 485, "2": 560, "3": 660, "4": 835, "5": 1650, "7": 2220, "8": 710},
    "landsat8-oli": {
        "1": 443,
        "2": 482,
        "3": 562,
        "4": 655,
        "5": 865,
        "6": 1609,
        "7": 2201,
        "8": 590,
        "9": 1373,
    },
    "sentinel2-msi": {
        "1": 442.7,
        "2": 492.4,
        "3": 559.8,
        "4": 664.6,
        "5": 704.1,
        "6": 740.5,
        "7": 782.8,
        "8": 832.8,
        "8A": 864.7,
        "9": 945.1,
        "10": 1373.5,
        "11": 1613.7,
        "12": 2202.4,
    },
    "gf1-wfv": {"1": 485, "2": 555, "3": 660, "4": 830},
    "gf2-pms": {"1": 485, "2": 555, "3": 660, "4": 830},
    "gf6-wfv": {
        "1": 485,
        "2": 555,
        "3": 660,
        "4": 830,
        "5": 710,
        "6": 750,
        "7": 425,
        "8": 610,
    },
}
"""Band centre wavelengths (nm) by instrument and band id (``band_id`` of
:mod:`remote_sensing.sidecar`). Panchromatic bands (ETM+ 8, OLI 8) are listed at their centres
but are broader than any role's window below and never picked, as their window is wrong."""

INSTRUMENT_ALIASES: dict[str, str] = {
    "landsat4": "landsat5-tm",
    "landsat5": "landsat5-tm",
    "landsat7": "landsat7-etm",
    "landsat8": "landsat8-oli",
    "landsat9": "landsat8-oli",
    "sentinel2": "sentinel2-msi",
    **{name: name for name in WAVELENGTHS},
}
"""``--sensor`` names of instruments (bands named by number, roles by wavelength)."""

ROLE_WINDOWS: dict[str, tuple[float, float, float]] = {
    "blue": (450, 520, 485),
    "green": (520, 600, 560),
    "red": (620, 690, 660),
    "nir": (800, 900, 840),
    "swir1": (1550, 1750, 1650),
    "swir2": (2080, 2350, 2200),
}
"""Role -> (lowest, highest centre accepted, nominal centre) in nm. A band whose centre lies in
the window can hold the role, the one nearest the nominal centre does. The windows leave out
coastal/aerosol (443 nm), yellow (610), the red edges (704-783: Sentinel-2 B07 at 783 is not a
near-infrared band for the indices) and cirrus (1373). The near-infrared centre, 840 nm, makes
Sentinel-2's 10 m B08 (833 nm) the choice over its 20 m B8A (865 nm)."""

PANCHROMATIC = {("landsat7-etm", "8"), ("landsat8-oli", "8")}

MAX_PAIR_DIFFERENCE_NM = 60.0
"""Largest difference of centre wavelengths two dates' bands may have and still share a role."""


def instrument_of(name: str | None) -> str | None:
    """The wavelength table's name for a ``--sensor`` instrument name or alias."""
    return INSTRUMENT_ALIASES.get(name or "")


def wavelength(instrument: str | None, band: str | None) -> float | None:
    """Centre wavelength (nm) of ``band`` on ``instrument``, or ``None`` when unknown."""
    if instrument is None or band is None:
        return None
    return WAVELENGTHS.get(instrument, {}).get(band)


def role_of(centre: float | None) -> str | None:
    """The role a band centred at ``centre`` nm can hold, or ``None``."""
    if centre is None:
        return None
    return next((r for r, (lo, hi, _) in ROLE_WINDOWS.items() if lo <= centre <= hi), None)


def roles_by_wavelength(instrument: str, bands: tuple[str | None, ...]) -> tuple[str | None, ...]:
    """Per band (ids as ``band_id`` gives them; ``None`` for unknown), the role it holds on
    ``instrument``: for each role the band nearest its nominal centre, the others ``None``."""
    best: dict[str, tuple[float, int]] = {}
    for i, b in enumerate(bands):
        if (instrument, b) in PANCHROMATIC:
            continue
        centre = wavelength(instrument, b)
        role = role_of(centre)
        if role is None or centre is None:
            continue
        distance = abs(centre - ROLE_WINDOWS[role][2])
        if role not in best or distance < best[role][0]:
            best[role] = (distance, i)
    chosen = {i: r for r, (_, i) in best.items()}
    return tuple(chosen.get(i) for i in range(len(bands)))


def band_of_role(instrument: str | None, role: str) -> str | None:
    """The band id of ``instrument`` that holds ``role`` (for sidecar coefficients of a file
    whose bands are named by role)."""
    if instrument is None:
        return None
    ids = tuple(WAVELENGTHS.get(instrument, {}))
    return next((b for b, r in zip(ids, roles_by_wavelength(instrument, ids)) if r == role), None)


@dataclass(frozen=True, slots=True)
class BandSource:
    """Where one date's band for a role came from: the file's band name (``B2``, ``B02``,
    ``blue``), the instrument and the centre wavelength when known."""

    name: str
    instrument: str | None = None
    centre_nm: float | None = None

    def describe(self) -> str:
        """``B2 (landsat8-oli, 482 nm)``, or the name alone."""
        if self.centre_nm is None:
            return self.name
        return f"{self.name} ({self.instrument}, {self.centre_nm:g} nm)"


@dataclass(frozen=True, slots=True)
class PairMatch:
    """Roles both dates have (``roles``), each date's band per role, and the roles dropped
    because only one date has them, with why."""

    roles: tuple[str, ...]
    before: tuple[BandSource, ...]
    after: tuple[BandSource, ...]
    dropped: tuple[tuple[str, str], ...]
    by_wavelength: bool

    def lines(self) -> tuple[str, ...]:
        """What the output says about the pairing, one line each."""
        out = []
        if self.by_wavelength:
            pairs = "; ".join(
                f"{r} {b.describe()} / {a.describe()}"
                for r, b, a in zip(self.roles, self.before, self.after)
            )
            out.append(f"bands: matched by wavelength (before / after): {pairs}")
        out += [f"bands: {role} dropped: {why}" for role, why in self.dropped]
        return tuple(out)


def match_pair(
    before: dict[str, BandSource], after: dict[str, BandSource], order: tuple[str, ...]
) -> PairMatch:
    """Pair the two dates' bands by role.

    Parameters
    ----------
    before, after : dict of str to BandSource
        Each date's band per role.
    order : tuple of str
        Roles in output order.

    Returns
    -------
    PairMatch
        Roles both dates hold within :data:`MAX_PAIR_DIFFERENCE_NM` of each other; a role one
        date lacks, or whose centres are further apart, is dropped with a reason.
        ``by_wavelength`` when any band's centre is known (the roles came from wavelengths).
    """
    roles: list[str] = []
    dropped: list[tuple[str, str]] = []
    for role in order:
        b, a = before.get(role), after.get(role)
        if b is None and a is None:
            continue
        if b is None or a is None:
            have, name = ("after", a) if b is None else ("before", b)
            assert name is not None
            dropped.append((role, f"only the {have} date has it ({name.describe()})"))
            continue
        if (
            b.centre_nm is not None
            and a.centre_nm is not None
            and abs(b.centre_nm - a.centre_nm) > MAX_PAIR_DIFFERENCE_NM
        ):
            dropped.append(
                (role, f"{b.describe()} and {a.describe()} are too far apart to compare")
            )
            continue
        roles.append(role)
    known = any(s.centre_nm is not None for s in (*before.values(), *after.values()))
    return PairMatch(
        tuple(roles),
        tuple(before[r] for r in roles),
        tuple(after[r] for r in roles),
        tuple(dropped),
        known,
    )
