"""What a product's metadata file says: Landsat MTL, Sentinel-2 MTD, Gaofen (CRESDA) XML.

Archives deliver a metadata file beside the image: Landsat's ``*_MTL.txt`` (ODL, Collection 1
and 2; Collection 2 also as ``*_MTL.xml``), Sentinel-2's ``MTD_MSIL1C.xml`` /
``MTD_MSIL2A.xml`` at the root of the SAFE folder, and CRESDA's ``<scene>.xml`` beside a
Gaofen-1/6 WFV or Gaofen-2 PMS TIFF. They say which spacecraft and instrument took the scene
(so band numbers have wavelengths, :mod:`remote_sensing.bands`), the processing level, and how
digital numbers become reflectance.

The parsers are pure (text in, a frozen :class:`Sidecar` out); :func:`find_sidecar` is the one
function that looks at the file system. These files come from users: XML is parsed by expat
with every document type declaration refused (no entities, internal or external, so neither
entity expansion nor external fetches), inputs are bounded in size, and every problem is a
:class:`SidecarError` naming the file and the key.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.parsers import expat

from farsight.errors import FarsightError

MAX_BYTES = 4 * 1024 * 1024
"""Largest sidecar read; real ones are 10-200 kB (an MTD_MSIL2A.xml is about 60 kB)."""

MAX_DEPTH = 64
"""Deepest element nesting (or ODL group nesting) accepted; real files nest under 10."""


class SidecarError(FarsightError):
    """Raised when a product metadata file cannot be read or says something impossible; the
    message names the file and the key."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        super().__init__(
            f"{path}: {key}: {problem}; fix or remove the metadata file (or pass --scale)"
        )


@dataclass(frozen=True, slots=True)
class Sidecar:
    """What one product metadata file says.

    ``instrument`` names the band-wavelength table of :mod:`remote_sensing.bands`
    (``landsat8-oli``, ``sentinel2-msi``, ``gf1-wfv``, ...). ``scales``/``offsets`` map a band
    id (``"2"``, ``"8A"``) from the delivered numbers to reflectance; empty when the file gives
    no calibration (Gaofen L1A without gains). ``product`` is ``toa`` (top-of-atmosphere
    reflectance), ``surface`` (surface reflectance) or ``dn`` (uncalibrated digital numbers).
    ``band_files`` pairs band ids with the file names the product delivers them in.
    """

    path: Path
    label: str
    spacecraft: str
    sensor: str
    instrument: str | None
    level: str
    product: str
    scales: tuple[tuple[str, float], ...] = ()
    offsets: tuple[tuple[str, float], ...] = ()
    band_files: tuple[tuple[str, str], ...] = ()
    bands: tuple[str, ...] = ()
    acquired: datetime | None = None
    sun_elevation: float | None = None
    note: str = ""

    def calibration(self, band: str | None) -> tuple[float, float] | None:
        """``(scale, offset)`` of ``band`` to reflectance; when ``band`` is unknown, the one
        pair every band shares (``None`` when they differ or there is none)."""
        scales, offsets = dict(self.scales), dict(self.offsets)
        if band is not None and band in scales:
            return scales[band], offsets.get(band, 0.0)
        pairs = {(s, offsets.get(b, 0.0)) for b, s in self.scales}
        return next(iter(pairs)) if len(pairs) == 1 else None

    def band_of_file(self, name: str) -> str | None:
        """The band id a delivered file name holds (case-insensitive), if the file names it."""
        return next((b for b, f in self.band_files if f.lower() == name.lower()), None)

    def source(self) -> str:
        """How the output names this file's radiometry: ``Landsat MTL, TOA``."""
        if not self.note:
            return self.label
        return (
            f"{self.label}; {self.note}" if self.product == "dn" else f"{self.label}, {self.note}"
        )


def band_id(text: str | None) -> str | None:
    """A band designation normalised: ``B2``, ``B02``, ``SR_B2``, ``band 2``, ``2`` -> ``2``;
    ``B8A`` -> ``8A``; anything else ``None``."""
    if not text:
        return None
    m = re.fullmatch(r"(?:sr_|toa_)?(?:b|band)?[ _]?0*(\d{1,2}a?)", text.strip().lower())
    return m.group(1).upper() if m else None


# ---------------------------------------------------------------------------------------------
# Reading


def read_text(path: Path) -> bytes:
    """The file's bytes, bounded by :data:`MAX_BYTES`.

    Raises
    ------
    SidecarError
        If the file cannot be read or is larger than any real metadata file.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SidecarError(path, "file", f"cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise SidecarError(path, "file", f"larger than {MAX_BYTES} bytes: not a metadata file")
    return data


def parse_xml(data: bytes, path: Path | str) -> ET.Element:
    """Parse XML with expat, refusing any document type declaration (hence every entity).

    Namespace prefixes are dropped from tag names (``n1:General_Info`` -> ``General_Info``).

    Raises
    ------
    SidecarError
        On malformed XML, a DOCTYPE, or nesting deeper than :data:`MAX_DEPTH`.
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    depth = 0

    def refuse(*_: Any) -> int:
        raise SidecarError(path, "DOCTYPE", "document type declarations are not accepted")

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise SidecarError(path, tag, f"elements nested deeper than {MAX_DEPTH}")
        builder.start(tag.rsplit(":", 1)[-1], {k.rsplit(":", 1)[-1]: v for k, v in attrs.items()})

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(tag.rsplit(":", 1)[-1])

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise SidecarError(
            path, f"line {exc.lineno}", f"not well-formed XML ({expat.errors.messages[exc.code]})"
        ) from None
    return builder.close()


# Matched on the stripped line: no lazy group before trailing blanks, whose backtracking is
# quadratic in a long line of blanks.
_ODL_LINE = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*)")


def parse_odl(data: bytes, path: Path | str) -> dict[str, dict[str, str]]:
    """Parse a Landsat MTL (ODL ``GROUP = X`` ... ``END_GROUP = X`` ... ``END``) into
    ``{group: {key: value}}`` (innermost group; quotes removed).

    Raises
    ------
    SidecarError
        On a line that is not ``KEY = VALUE``, an unbalanced group, or non-ASCII text.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SidecarError(path, "file", f"not ASCII text (byte {exc.start})") from None
    groups: list[str] = []
    out: dict[str, dict[str, str]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.strip() == "END":
            break
        m = _ODL_LINE.fullmatch(line.strip())
        if m is None:
            raise SidecarError(path, f"line {n}", f"not KEY = VALUE: {line.strip()[:60]!r}")
        key, value = m.group(1), m.group(2).strip('"')
        if key == "GROUP":
            groups.append(value)
            if len(groups) > MAX_DEPTH:
                raise SidecarError(path, f"line {n}", f"groups nested deeper than {MAX_DEPTH}")
            out.setdefault(value, {})
        elif key == "END_GROUP":
            if not groups or groups[-1] != value:
                raise SidecarError(path, f"line {n}", f"END_GROUP = {value} closes no open group")
            groups.pop()
        else:
            if not groups:
                raise SidecarError(path, key, "outside any GROUP")
            out[groups[-1]][key] = value
    if groups:
        raise SidecarError(path, groups[-1], "GROUP never closed (END_GROUP missing)")
    return out


def _number(value: str | None, path: Path | str, key: str) -> float:
    if value is None:
        raise SidecarError(path, key, "missing")
    try:
        x = float(value)
    except ValueError:
        raise SidecarError(path, key, f"not a number: {value[:40]!r}") from None
    if not math.isfinite(x):
        raise SidecarError(path, key, f"not a finite number: {value[:40]!r}")
    return x


# ---------------------------------------------------------------------------------------------
# Landsat MTL

_LANDSAT_INSTRUMENTS = {
    "LANDSAT_4": "landsat5-tm",
    "LANDSAT_5": "landsat5-tm",
    "LANDSAT_7": "landsat7-etm",
    "LANDSAT_8": "landsat8-oli",
    "LANDSAT_9": "landsat8-oli",
}


def _first(doc: dict[str, dict[str, str]], key: str, groups: tuple[str, ...]) -> str | None:
    return next((doc[g][key] for g in groups if g in doc and key in doc[g]), None)


def _landsat_time(doc: dict[str, dict[str, str]]) -> datetime | None:
    date = _first(doc, "DATE_ACQUIRED", ("IMAGE_ATTRIBUTES", "PRODUCT_METADATA"))
    clock = _first(doc, "SCENE_CENTER_TIME", ("IMAGE_ATTRIBUTES", "PRODUCT_METADATA")) or "00:00:00"
    if not date:
        return None
    # Seven fractional digits in the MTL; fromisoformat takes at most six.
    clock = re.sub(r"(\.\d{6})\d*", r"\1", clock.rstrip("Z"))
    try:
        return datetime.fromisoformat(f"{date}T{clock}").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_mtl(data: bytes, path: Path | str) -> Sidecar:
    """A Landsat Collection 1 or 2 ``*_MTL.txt``.

    Level-1 products map to top-of-atmosphere reflectance corrected for the sun elevation,
    ``(REFLECTANCE_MULT * Q + REFLECTANCE_ADD) / sin(SUN_ELEVATION)`` (USGS Landsat 8 Data
    Users Handbook, section 5.1); Collection 2 Level-2 products to surface reflectance with the
    file's own ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (2.75e-5 and -0.2).

    Raises
    ------
    SidecarError
        If the file is not an MTL, or a coefficient or the sun elevation is missing or not a
        number.
    """
    return _mtl(parse_odl(data, path), path)


def parse_mtl_xml(data: bytes, path: Path | str) -> Sidecar:
    """A Landsat Collection 2 ``*_MTL.xml``: the ODL file's groups and keys as elements
    (``<LANDSAT_METADATA_FILE><IMAGE_ATTRIBUTES><SUN_ELEVATION>``), read as :func:`parse_mtl`
    reads the text.

    Raises
    ------
    SidecarError
        As :func:`parse_mtl`, and on malformed or hostile XML (:func:`parse_xml`).
    """
    root = parse_xml(data, path)
    doc: dict[str, dict[str, str]] = {root.tag: {}}
    for group in root:
        doc[group.tag] = {el.tag: (el.text or "").strip() for el in group}
    return _mtl(doc, path)


def _mtl(doc: dict[str, dict[str, str]], path: Path | str) -> Sidecar:
    c2 = "LANDSAT_METADATA_FILE" in doc
    if not c2 and "L1_METADATA_FILE" not in doc:
        raise SidecarError(
            path, "GROUP", "neither LANDSAT_METADATA_FILE nor L1_METADATA_FILE: not a Landsat MTL"
        )
    info = ("PRODUCT_CONTENTS", "IMAGE_ATTRIBUTES") if c2 else ("PRODUCT_METADATA",)
    spacecraft = _first(doc, "SPACECRAFT_ID", ("IMAGE_ATTRIBUTES", "PRODUCT_METADATA"))
    if not spacecraft:
        raise SidecarError(path, "SPACECRAFT_ID", "missing")
    sensor = _first(doc, "SENSOR_ID", ("IMAGE_ATTRIBUTES", "PRODUCT_METADATA")) or ""
    level = _first(doc, "PROCESSING_LEVEL" if c2 else "DATA_TYPE", info) or ""
    files_group = info[0]
    band_files = tuple(
        (k.removeprefix("FILE_NAME_BAND_"), v)
        for k, v in doc.get(files_group, {}).items()
        if re.fullmatch(r"FILE_NAME_BAND_\d+", k)
    )
    sun = _number(_first(doc, "SUN_ELEVATION", ("IMAGE_ATTRIBUTES",)), path, "SUN_ELEVATION")
    if not 0 < sun <= 90:
        raise SidecarError(path, "SUN_ELEVATION", f"{sun} is not within 0..90 degrees")
    if level.startswith("L2"):
        group, product, note = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", "surface", "surface"
        factor = 1.0
    else:
        group = "LEVEL1_RADIOMETRIC_RESCALING" if c2 else "RADIOMETRIC_RESCALING"
        product, note = "toa", "TOA"
        factor = 1.0 / math.sin(math.radians(sun))
    coeffs = doc.get(group, {})
    scales, offsets = [], []
    for key, value in coeffs.items():
        m = re.fullmatch(r"REFLECTANCE_MULT_BAND_(\d+)", key)
        if m:
            b = m.group(1)
            add_key = f"REFLECTANCE_ADD_BAND_{b}"
            scales.append((b, _number(value, path, f"{group}.{key}") * factor))
            offsets.append((b, _number(coeffs.get(add_key), path, f"{group}.{add_key}") * factor))
    if not scales:
        raise SidecarError(path, f"{group}.REFLECTANCE_MULT_BAND_n", "missing for every band")
    return Sidecar(
        path=Path(path),
        label="Landsat MTL",
        spacecraft=spacecraft,
        sensor=sensor,
        instrument=_LANDSAT_INSTRUMENTS.get(spacecraft),
        level=level,
        product=product,
        scales=tuple(scales),
        offsets=tuple(offsets),
        band_files=band_files,
        bands=tuple(b for b, _ in band_files),
        acquired=_landsat_time(doc),
        sun_elevation=sun,
        note=note,
    )


# ---------------------------------------------------------------------------------------------
# Sentinel-2 MTD

S2_BANDS = ("1", "2", "3", "4", "5", "6", "7", "8", "8A", "9", "10", "11", "12")
"""Sentinel-2 MSI bands in ``band_id`` order (0..12) of the product metadata."""


def _text(root: ET.Element, tag: str) -> str | None:
    el = root.find(f".//{tag}")
    return el.text.strip() if el is not None and el.text else None


def parse_mtd(data: bytes, path: Path | str) -> Sidecar:
    """A Sentinel-2 ``MTD_MSIL1C.xml`` (top-of-atmosphere) or ``MTD_MSIL2A.xml`` (surface).

    Reflectance is ``(DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE`` (L2A:
    ``BOA_ADD_OFFSET`` and ``BOA_QUANTIFICATION_VALUE``); the offset, -1000 from processing
    baseline 04.00 on, is absent (0) before it (ESA Sentinel-2 Products Specification
    Document, and the baseline 04.00 note of January 2022).

    Raises
    ------
    SidecarError
        If the file is not a Sentinel-2 product MTD, or the quantification value or an offset
        is missing, not a number, or not positive.
    """
    root = parse_xml(data, path)
    if root.tag not in ("Level-1C_User_Product", "Level-2A_User_Product"):
        raise SidecarError(path, root.tag, "not a Sentinel-2 Level-1C/2A product MTD")
    l2a = root.tag.startswith("Level-2A")
    qkey = "BOA_QUANTIFICATION_VALUE" if l2a else "QUANTIFICATION_VALUE"
    quant = _number(_text(root, qkey), path, qkey)
    if quant <= 0:
        raise SidecarError(path, qkey, f"{quant} is not positive")
    names = {
        el.get("bandId", ""): band_id(el.get("physicalBand"))
        for el in root.iter("Spectral_Information")
    }
    okey = "BOA_ADD_OFFSET" if l2a else "RADIO_ADD_OFFSET"
    offsets: dict[str, float] = {}
    for el in root.iter(okey):
        bid = el.get("band_id", "")
        if not bid.isdigit() or int(bid) >= len(S2_BANDS):
            raise SidecarError(path, f"{okey}[band_id={bid[:10]!r}]", "band_id is not 0..12")
        name = names.get(bid) or S2_BANDS[int(bid)]
        offsets[name] = _number(el.text, path, f"{okey}[band_id={bid}]")
    spacecraft = _text(root, "SPACECRAFT_NAME") or ""
    baseline = _text(root, "PROCESSING_BASELINE") or ""
    uniform = set(offsets.values())
    if uniform - {0.0}:
        note = f"offset {next(iter(uniform)):g}" if len(uniform) == 1 else "offsets per band"
    else:
        note = f"baseline {baseline}" if baseline else ""
    start = _text(root, "PRODUCT_START_TIME")
    acquired = None
    if start:
        try:
            ts = datetime.fromisoformat(start)
            acquired = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        except ValueError:
            acquired = None
    return Sidecar(
        path=Path(path),
        label="Sentinel-2 MTD",
        spacecraft=spacecraft,
        sensor="MSI",
        instrument="sentinel2-msi",
        level=_text(root, "PROCESSING_LEVEL") or ("Level-2A" if l2a else "Level-1C"),
        product="surface" if l2a else "toa",
        scales=tuple((b, 1.0 / quant) for b in S2_BANDS),
        offsets=tuple((b, offsets.get(b, 0.0) / quant) for b in S2_BANDS),
        bands=S2_BANDS,
        acquired=acquired,
        note=note,
    )


# ---------------------------------------------------------------------------------------------
# Gaofen (CRESDA)

_GAOFEN = {
    ("GF1", "WFV"): ("gf1-wfv", "Gaofen-1 WFV"),
    ("GF6", "WFV"): ("gf6-wfv", "Gaofen-6 WFV"),
    ("GF2", "PMS"): ("gf2-pms", "Gaofen-2 PMS"),
    ("GF1", "PMS"): ("gf2-pms", "Gaofen-1 PMS"),
}
"""(SatelliteID, SensorID without its camera number) -> (wavelength table, label). Gaofen-1
PMS has Gaofen-2 PMS's multispectral bands (0.45-0.89 um in four bands)."""


def parse_gaofen(data: bytes, path: Path | str) -> Sidecar:
    """A CRESDA ``ProductMetaData`` XML of a Gaofen-1/6 WFV or Gaofen-1/2 PMS scene.

    The delivery file carries no calibration: CRESDA publishes absolute calibration gains per
    satellite, camera and year separately, and none are invented here, so the scene stays a
    relative map (``product`` ``dn``) and the output says so.

    Raises
    ------
    SidecarError
        If the root is not ``ProductMetaData``, SatelliteID or SensorID is missing or unknown,
        or the sun angles are not numbers.
    """
    root = parse_xml(data, path)
    if root.tag != "ProductMetaData":
        raise SidecarError(path, root.tag, "not a CRESDA ProductMetaData file")
    sat = (_text(root, "SatelliteID") or "").upper()
    sensor = _text(root, "SensorID") or ""
    if not sat:
        raise SidecarError(path, "SatelliteID", "missing")
    kind = (sat, re.sub(r"\d+$", "", sensor.upper()))
    if kind not in _GAOFEN:
        raise SidecarError(
            path,
            "SatelliteID/SensorID",
            f"{sat}/{sensor or '?'} is not Gaofen-1/6 WFV or Gaofen-1/2 PMS",
        )
    instrument, label = _GAOFEN[kind]
    sun: float | None = None
    elevation, zenith = _text(root, "SolarElevation"), _text(root, "SolarZenith")
    if elevation is not None:
        sun = _number(elevation, path, "SolarElevation")
    elif zenith is not None:
        sun = 90.0 - _number(zenith, path, "SolarZenith")
    bands = tuple(
        b for b in (band_id(x) for x in (_text(root, "Bands") or "").split(",")) if b is not None
    )
    acquired = None
    for key in ("CenterTime", "StartTime", "ReceiveTime"):
        t = _text(root, key)
        if t:
            try:
                acquired = datetime.fromisoformat(t).replace(tzinfo=UTC)
                break
            except ValueError:
                continue
    return Sidecar(
        path=Path(path),
        label=f"{label} XML",
        spacecraft=sat,
        sensor=sensor,
        instrument=instrument,
        level=_text(root, "ProductLevel") or "",
        product="dn",
        bands=bands,
        acquired=acquired,
        sun_elevation=sun,
        note="no calibration gains: relative",
    )


# ---------------------------------------------------------------------------------------------
# Finding the sidecar of a scene

S2_MTD = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")

SAFE_DEPTH = 4
"""Folders above a scene searched for a Sentinel-2 MTD (SAFE: GRANULE/<tile>/IMG_DATA/R10m)."""


def _stem(name: str) -> str:
    # A per-band file (LC08_..._B4.TIF, ..._SR_B4.TIF) shares the product id with its MTL.
    return re.sub(r"_(?:SR_|ST_)?B\d{1,2}$", "", Path(name).stem, flags=re.IGNORECASE)


def find_sidecar(scene: Path) -> Path | None:
    """The metadata file of ``scene``, if there is one.

    In order: ``<scene stem>.xml`` (CRESDA delivers the XML under the TIFF's name); a
    ``<product id>_MTL.txt`` (or ``_MTL.xml``) in the same folder whose product id starts the
    scene's name (``LC08_L1TP_..._T1_B4.TIF``, ``LC08_L1TP_..._T1_stack.tif``); a Sentinel-2
    ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` in the folder or up to :data:`SAFE_DEPTH` above it.
    """
    folder = scene.parent
    same = folder / f"{scene.stem}.xml"
    if same.is_file():
        return same
    stem = _stem(scene.name).lower()
    # The text MTL first where both are delivered (Collection 2 ships both).
    mtls = sorted(
        (
            p
            for p in [*folder.glob("*_MTL.txt"), *folder.glob("*_MTL.xml")]
            if stem.startswith(p.name[: -len("_MTL.txt")].lower())
        ),
        key=lambda p: (-len(p.name), p.suffix != ".txt"),
    )
    if mtls:
        return mtls[0]
    for up in [folder, *folder.parents][: SAFE_DEPTH + 1]:
        for name in S2_MTD:
            if (up / name).is_file():
                return up / name
    return None


def read_sidecar(path: Path) -> Sidecar:
    """Parse the metadata file at ``path`` by its name (MTL, MTD or CRESDA XML).

    Raises
    ------
    SidecarError
        If it cannot be read or parsed (see the parsers).
    """
    data = read_text(path)
    if path.name.upper().endswith("_MTL.TXT"):
        return parse_mtl(data, path)
    if path.name.upper().endswith("_MTL.XML"):
        return parse_mtl_xml(data, path)
    if path.name in S2_MTD:
        return parse_mtd(data, path)
    return parse_gaofen(data, path)
