"""Product metadata files (Landsat MTL, Sentinel-2 MTD, Gaofen XML) and band roles by
wavelength: the real MTL parsed, a Landsat Level-1 scene read as TOA reflectance through its
MTL, a Landsat / Sentinel-2 pair on the real Landsat overlap matched by wavelength, and hostile
or malformed metadata refused naming the file.

Only one real metadata file is in the archives the tests fetch (a Collection 2 Level-2 MTL);
every other one here is hand-written after the format it names, with only the keys the parsers
read and the values the scenes need, and says so where it is defined.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.warp import reproject

from app.cli import main as farsight_main
from remote_sensing.bands import (
    BandSource,
    match_pair,
    roles_by_wavelength,
)
from remote_sensing.io import open_scene
from remote_sensing.sidecar import (
    MAX_BYTES,
    SidecarError,
    band_id,
    find_sidecar,
    parse_gaofen,
    parse_mtd,
    parse_mtl,
    parse_odl,
    read_sidecar,
)
from tests.real_scenes import LANDSAT_OVERLAP, RealDataError, scene_path
from tests.remote_sensing.conftest import write_raster


def _real(name: str) -> Path:
    try:
        return scene_path(name)
    except RealDataError as exc:
        pytest.fail(str(exc), pytrace=False)


# ---------------------------------------------------------------------------------------------
# Landsat MTL


def _mtl_value(text: str, group: str, key: str) -> str:
    block = text.split(f"GROUP = {group}\n", 1)[1].split(f"END_GROUP = {group}", 1)[0]
    m = re.search(rf"^\s*{key} = \"?([^\"\n]*)\"?$", block, re.MULTILINE)
    assert m, f"{key} not in {group}"
    return m.group(1)


def test_the_real_collection2_level2_mtl_parsed_as_its_own_text_says():
    path = _real("l8-224078-c2l2-mtl")
    text = path.read_text()
    side = read_sidecar(path)
    assert (side.label, side.spacecraft, side.sensor, side.level, side.product) == (
        "Landsat MTL",
        _mtl_value(text, "IMAGE_ATTRIBUTES", "SPACECRAFT_ID"),
        _mtl_value(text, "IMAGE_ATTRIBUTES", "SENSOR_ID"),
        _mtl_value(text, "PRODUCT_CONTENTS", "PROCESSING_LEVEL"),
        "surface",
    )
    assert (side.spacecraft, side.level, side.instrument) == ("LANDSAT_8", "L2SP", "landsat8-oli")
    assert side.sun_elevation == float(_mtl_value(text, "IMAGE_ATTRIBUTES", "SUN_ELEVATION"))
    group = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"
    for b in "1234567":
        assert side.calibration(b) == (
            float(_mtl_value(text, group, f"REFLECTANCE_MULT_BAND_{b}")),
            float(_mtl_value(text, group, f"REFLECTANCE_ADD_BAND_{b}")),
        )
    assert side.calibration("4") == (2.75e-5, -0.2)
    # Surface reflectance is not corrected by the sun elevation again.
    assert side.source() == "Landsat MTL, surface"
    sr_b4 = _mtl_value(text, "PRODUCT_CONTENTS", "FILE_NAME_BAND_4")
    assert sr_b4.endswith("_SR_B4.TIF") and side.band_of_file(sr_b4.lower()) == "4"
    assert side.acquired is not None and side.acquired.isoformat().startswith(
        "2020-01-27T13:36:10.394624"
    )


def test_the_mtl_xml_layout_says_the_same_as_the_text(tmp_path):
    """Collection 2 also ships ``*_MTL.xml``, the text's groups and keys as elements: the real
    MTL's content written in that layout parses to the same values."""
    path = _real("l8-224078-c2l2-mtl")
    doc = parse_odl(path.read_bytes(), path)
    groups = "".join(
        f"<{g}>" + "".join(f"<{k}>{v}</{k}>" for k, v in keys.items()) + f"</{g}>"
        for g, keys in doc.items()
        if g != "LANDSAT_METADATA_FILE"
    )
    xml = tmp_path / path.name.replace("_MTL.txt", "_MTL.xml")
    xml.write_text(f'<?xml version="1.0"?><LANDSAT_METADATA_FILE>{groups}</LANDSAT_METADATA_FILE>')
    text, as_xml = read_sidecar(path), read_sidecar(xml)
    assert as_xml.path == xml
    for field in ("spacecraft", "level", "product", "scales", "offsets", "band_files", "acquired"):
        assert getattr(as_xml, field) == getattr(text, field)


# Hand-written after the USGS Collection 1 Level-1 MTL format (LSDS-1574, the Landsat 8 Data
# Users Handbook's metadata section) for the real row-077 scene the tests read, which the
# archive ships without its MTL. REFLECTANCE_MULT/ADD are the values every OLI Level-1 product
# carries (2.0E-05, -0.1); SUN_ELEVATION is not read from USGS but computed from the solar
# position for 2020-05-18 13:36 UTC at 24.6 S 55.5 W (about 36.8 degrees).
L1_SUN_ELEVATION = 36.8
L1_PRODUCT = "LC08_L1TP_224077_20200518_20200518_01_RT"
L1_MTL = f"""GROUP = L1_METADATA_FILE
  GROUP = METADATA_FILE_INFO
    ORIGIN = "Image courtesy of the U.S. Geological Survey"
    LANDSAT_PRODUCT_ID = "{L1_PRODUCT}"
    COLLECTION_NUMBER = 01
  END_GROUP = METADATA_FILE_INFO
  GROUP = PRODUCT_METADATA
    DATA_TYPE = "L1TP"
    COLLECTION_CATEGORY = "RT"
    SPACECRAFT_ID = "LANDSAT_8"
    SENSOR_ID = "OLI_TIRS"
    WRS_PATH = 224
    WRS_ROW = 077
    DATE_ACQUIRED = 2020-05-18
    SCENE_CENTER_TIME = "13:36:02.1234560Z"
    FILE_NAME_BAND_2 = "{L1_PRODUCT}_B2.TIF"
    FILE_NAME_BAND_3 = "{L1_PRODUCT}_B3.TIF"
    FILE_NAME_BAND_4 = "{L1_PRODUCT}_B4.TIF"
  END_GROUP = PRODUCT_METADATA
  GROUP = IMAGE_ATTRIBUTES
    SUN_ELEVATION = {L1_SUN_ELEVATION}
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = RADIOMETRIC_RESCALING
    REFLECTANCE_MULT_BAND_2 = 2.0000E-05
    REFLECTANCE_MULT_BAND_3 = 2.0000E-05
    REFLECTANCE_MULT_BAND_4 = 2.0000E-05
    REFLECTANCE_ADD_BAND_2 = -0.100000
    REFLECTANCE_ADD_BAND_3 = -0.100000
    REFLECTANCE_ADD_BAND_4 = -0.100000
  END_GROUP = RADIOMETRIC_RESCALING
END_GROUP = L1_METADATA_FILE
END
"""

TOA_SCALE = 2e-5 / math.sin(math.radians(L1_SUN_ELEVATION))
TOA_OFFSET = -0.1 / math.sin(math.radians(L1_SUN_ELEVATION))


def test_collection1_level1_mtl_gives_toa_reflectance_corrected_by_sun_elevation():
    side = parse_mtl(L1_MTL.encode(), "x_MTL.txt")
    assert (side.level, side.product, side.source()) == ("L1TP", "toa", "Landsat MTL, TOA")
    assert side.calibration("3") == pytest.approx((TOA_SCALE, TOA_OFFSET))
    assert side.band_of_file(f"{L1_PRODUCT}_B3.TIF") == "3"
    # A DN of 20000 is (0.4 - 0.1) / sin(36.8 deg) = 0.50 TOA reflectance.
    s, o = side.calibration("2") or (0, 0)
    assert 20000 * s + o == pytest.approx(0.3 / math.sin(math.radians(36.8)))


def _crop(path: Path, size: int, row0: int) -> tuple[np.ndarray, rasterio.crs.CRS, Affine]:
    with rasterio.open(path) as src:
        win = rasterio.windows.from_bounds(*LANDSAT_OVERLAP, src.transform)
        win = rasterio.windows.Window(round(win.col_off), round(win.row_off) + row0, size, size)
        return src.read(window=win), src.crs, src.window_transform(win)


def _landsat_l1_stack(out: Path, size: int = 400, row0: int = 120) -> Path:
    """The real row-077 crop as a 3-band stack named B2/B3/B4 (band numbers, as a user's stack
    of the per-band files is), with the hand-written MTL beside it."""
    out.mkdir(parents=True, exist_ok=True)
    crops = [_crop(_real(f"l8-224077-{b}"), size, row0) for b in ("b2", "b3", "b4")]
    data = np.concatenate([c[0] for c in crops])
    (out / f"{L1_PRODUCT}_MTL.txt").write_text(L1_MTL)
    path = out / f"{L1_PRODUCT}_stack.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint16",
        crs=crops[0][1],
        transform=crops[0][2],
        tiled=True,
        blockxsize=128,
        blockysize=128,
    ) as dst:
        dst.write(data)
        for i, name in enumerate(("B2", "B3", "B4"), start=1):
            dst.set_band_description(i, name)
    return path


def test_landsat_level1_scene_with_its_mtl_is_toa_reflectance_and_says_so(tmp_path):
    path = _landsat_l1_stack(tmp_path / "l1")
    assert find_sidecar(path) == tmp_path / "l1" / f"{L1_PRODUCT}_MTL.txt"
    scene = open_scene(path)
    assert scene.radiometry is not None
    assert scene.radiometry.describe() == "reflectance (Landsat MTL, TOA)"
    assert not scene.radiometry.relative
    assert scene.scales == pytest.approx((TOA_SCALE,) * 3)
    assert scene.offsets == pytest.approx((TOA_OFFSET,) * 3)
    # B2/B3/B4 are blue/green/red on OLI by wavelength (on TM and ETM+, B2 would be green).
    assert scene.roles == ("blue", "green", "red") and scene.indexes == (1, 2, 3)
    assert [s.describe() for s in scene.sources] == [
        "B2 (landsat8-oli, 482 nm)",
        "B3 (landsat8-oli, 562 nm)",
        "B4 (landsat8-oli, 655 nm)",
    ]
    assert scene.acquired is not None and scene.acquired.isoformat().startswith("2020-05-18T13")
    # --scale still wins over the metadata file.
    scaled = open_scene(path, scale=(1e-4, 0.0))
    assert scaled.radiometry is not None and scaled.radiometry.source == "--scale"


# ---------------------------------------------------------------------------------------------
# Sentinel-2 MTD


def _mtd(level: str = "1C", offset: int | None = -1000, baseline: str = "04.00") -> str:
    """Hand-written after ESA's Sentinel-2 product metadata (PSD 14.x, MTD_MSIL1C.xml /
    MTD_MSIL2A.xml): only the keys the parser reads, with the band ids of the real files."""
    names = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{n}"><RESOLUTION>10</RESOLUTION>'
        "</Spectral_Information>"
        for i, n in enumerate(names)
    )
    if level == "1C":
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        key = "RADIO_ADD_OFFSET"
        wrap = ("<Radiometric_Offset_List>", "</Radiometric_Offset_List>")
    else:
        quant = (
            '<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000'
            "</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>"
        )
        key = "BOA_ADD_OFFSET"
        wrap = ("<BOA_ADD_OFFSET_VALUES_LIST>", "</BOA_ADD_OFFSET_VALUES_LIST>")
    offsets = (
        wrap[0] + "".join(f'<{key} band_id="{i}">{offset}</{key}>' for i in range(13)) + wrap[1]
        if offset is not None
        else ""
    )
    ns = f"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level}.xsd"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- hand-written test file after the ESA Sentinel-2 product format -->
<n1:Level-{level}_User_Product xmlns:n1="{ns}">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2020-05-18T13:46:21.024Z</PRODUCT_START_TIME>
      <PROCESSING_LEVEL>Level-{level}</PROCESSING_LEVEL>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="GS2A_20200518T134621_025566_N04.00">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
      </Datatake>
    </Product_Info>
    <Product_Image_Characteristics>
      {quant}
      {offsets}
      <Spectral_Information_List>{spectral}</Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-{level}_User_Product>
"""


def test_sentinel2_mtd_quantification_and_offset_by_baseline():
    l1c = parse_mtd(_mtd().encode(), "MTD_MSIL1C.xml")
    assert (l1c.spacecraft, l1c.level, l1c.product) == ("Sentinel-2A", "Level-1C", "toa")
    assert l1c.source() == "Sentinel-2 MTD, offset -1000"
    assert l1c.calibration("2") == pytest.approx((1e-4, -0.1))
    assert l1c.calibration("8A") == pytest.approx((1e-4, -0.1))
    l2a = parse_mtd(_mtd("2A").encode(), "MTD_MSIL2A.xml")
    assert (l2a.product, l2a.calibration("11")) == ("surface", pytest.approx((1e-4, -0.1)))
    # Before baseline 04.00 there is no offset.
    old = parse_mtd(_mtd(offset=None, baseline="02.09").encode(), "MTD_MSIL1C.xml")
    assert old.calibration("4") == pytest.approx((1e-4, 0.0))
    assert old.source() == "Sentinel-2 MTD, baseline 02.09"
    assert (
        old.acquired is not None and old.acquired.isoformat() == "2020-05-18T13:46:21.024000+00:00"
    )


def _sentinel2_like(out: Path, before: Path, size: int = 400, row0: int = 120) -> Path:
    """The real row-078 crop of the same place as a Sentinel-2 Level-1C file: TOA reflectance
    from its DNs (the same pass, so the same hand-written MTL values), resampled to 10 m,
    encoded with QUANTIFICATION_VALUE 10000 and RADIO_ADD_OFFSET -1000, bands named
    B02/B03/B04, nodata 0 where row 078 has no data; the hand-written MTD at the SAFE root."""
    dn, crs, transform = _crop(_real("l8-224078-bgr"), size, row0)
    empty = (dn == 0).all(axis=0)
    toa = dn.astype(np.float64) * TOA_SCALE + TOA_OFFSET
    s2 = np.where(empty, 0, np.clip(np.round(toa * 10000 + 1000), 1, 65535)).astype(np.uint16)
    fine = transform * Affine.scale(1 / 3)
    resampled = np.zeros((3, size * 3, size * 3), np.uint16)
    for i in range(3):
        reproject(
            s2[i],
            resampled[i],
            src_transform=transform,
            src_crs=crs,
            dst_transform=fine,
            dst_crs=crs,
            src_nodata=0,
            dst_nodata=0,
            resampling=Resampling.bilinear,
        )
    safe = out / "S2A_MSIL1C_20200518T134621_N0400_R124_T21JXM_20200518T150000.SAFE"
    img = safe / "GRANULE" / "L1C_T21JXM_A025566_20200518T134621" / "IMG_DATA"
    img.mkdir(parents=True)
    (safe / "MTD_MSIL1C.xml").write_text(_mtd())
    with rasterio.open(before) as ref:
        assert ref.crs == crs
    return write_raster(
        img / "T21JXM_20200518T134621_B02_B03_B04.tif",
        resampled,
        crs=crs.to_string(),
        origin=(fine.c, fine.f),
        res=10.0,
        nodata=0,
        descriptions=("B02", "B03", "B04"),
        blockxsize=256,
        blockysize=256,
    )


def test_landsat_before_sentinel2_after_matched_by_wavelength_finds_no_change(tmp_path, capsys):
    before = _landsat_l1_stack(tmp_path / "landsat")
    after = _sentinel2_like(tmp_path / "s2", before)
    out = tmp_path / "out.geojson"
    assert farsight_main(["rs", "detect", str(before), str(after), "--out", str(out)]) == 0
    fc = json.loads(out.read_text())
    assert fc["features"] == []
    props = fc["properties"]
    assert props["radiometry"] == {
        "before": "reflectance (Landsat MTL, TOA)",
        "after": "reflectance (Sentinel-2 MTD, offset -1000)",
    }
    assert props["band_match"] == {
        "by_wavelength": True,
        "roles": {
            "blue": {
                "before": "B2 (landsat8-oli, 482 nm)",
                "after": "B02 (sentinel2-msi, 492.4 nm)",
            },
            "green": {
                "before": "B3 (landsat8-oli, 562 nm)",
                "after": "B03 (sentinel2-msi, 559.8 nm)",
            },
            "red": {
                "before": "B4 (landsat8-oli, 655 nm)",
                "after": "B04 (sentinel2-msi, 664.6 nm)",
            },
        },
        "dropped": {},
    }
    assert props["metadata"] == {
        "before": str(before.parent / f"{L1_PRODUCT}_MTL.txt"),
        "after": str(after.parents[3] / "MTD_MSIL1C.xml"),
    }
    printed = capsys.readouterr().out
    assert (
        "radiometry: before reflectance (Landsat MTL, TOA); after reflectance (Sentinel-2 MTD"
        in (printed)
    )
    assert (
        "bands: matched by wavelength (before / after): blue B2 (landsat8-oli, 482 nm)" in printed
    )


# ---------------------------------------------------------------------------------------------
# Band roles by wavelength, --sensor per date


def test_band_numbers_mean_different_roles_on_different_instruments():
    ids = tuple(band_id(x) for x in ("B1", "B2", "B3", "B4", "B5", "B7"))
    assert ids == ("1", "2", "3", "4", "5", "7")
    assert roles_by_wavelength("landsat7-etm", ids) == (
        "blue",
        "green",
        "red",
        "nir",
        "swir1",
        "swir2",
    )
    assert roles_by_wavelength("landsat8-oli", ids) == (
        None,  # coastal/aerosol
        "blue",
        "green",
        "red",
        "nir",
        "swir2",
    )
    s2 = tuple(band_id(x) for x in ("B02", "B03", "B04", "B05", "B07", "B08", "B8A", "B11"))
    # B08 is nearer the near-infrared centre than B8A; the red edges hold no role.
    assert roles_by_wavelength("sentinel2-msi", s2) == (
        "blue",
        "green",
        "red",
        None,
        None,
        "nir",
        None,
        "swir1",
    )
    assert [band_id(x) for x in ("SR_B2", "band 3", "B8A", "blue", "")] == [
        "2",
        "3",
        "8A",
        None,
        None,
    ]


def test_pair_keeps_roles_both_dates_have_and_says_what_it_dropped():
    before = {
        "blue": BandSource("B1", "landsat5-tm", 485),
        "red": BandSource("B3", "landsat5-tm", 660),
        "nir": BandSource("B4", "landsat5-tm", 830),
        "swir1": BandSource("B5", "landsat5-tm", 1650),
    }
    after = {
        "blue": BandSource("B02", "sentinel2-msi", 492.4),
        "red": BandSource("B04", "sentinel2-msi", 664.6),
        "nir": BandSource("B08", "sentinel2-msi", 832.8),
    }
    m = match_pair(before, after, ("blue", "green", "red", "nir", "swir1"))
    assert m.roles == ("blue", "red", "nir") and m.by_wavelength
    assert m.dropped == (("swir1", "only the before date has it (B5 (landsat5-tm, 1650 nm))"),)
    assert (
        m.lines()[-1]
        == "bands: swir1 dropped: only the before date has it (B5 (landsat5-tm, 1650 nm))"
    )
    far = match_pair(
        {"blue": BandSource("X", "a", 450)}, {"blue": BandSource("Y", "b", 519)}, ("blue",)
    )
    assert far.roles == () and "too far apart" in far.dropped[0][1]


def _four_band(path: Path, names: tuple[str, ...], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    data = (rng.normal(0.08, 0.01, (4, 96, 96)) * 1e4).astype(np.float32) / 1e4
    data[3] += 0.2  # near infrared brighter than the visible bands, as on vegetated land
    return write_raster(path, data, descriptions=names)


def test_sensor_per_date_gives_band_numbers_their_roles(tmp_path, capsys):
    # TM band 1-4 and OLI band 2-5 are both blue, green, red, nir: with one sensor per date the
    # two files' "B2" are different roles and still pair up.
    before = _four_band(tmp_path / "tm.tif", ("B1", "B2", "B3", "B4"), 1)
    after = _four_band(tmp_path / "oli.tif", ("B2", "B3", "B4", "B5"), 1)
    out = tmp_path / "out.geojson"
    args = ["rs", "detect", str(before), str(after), "--out", str(out)]
    assert farsight_main([*args, "--sensor", "landsat5,landsat8"]) == 0
    roles = json.loads(out.read_text())["properties"]["band_match"]["roles"]
    assert roles["green"] == {
        "before": "B2 (landsat5-tm, 560 nm)",
        "after": "B3 (landsat8-oli, 562 nm)",
    }
    assert roles["nir"] == {
        "before": "B4 (landsat5-tm, 830 nm)",
        "after": "B5 (landsat8-oli, 865 nm)",
    }
    capsys.readouterr()
    # Without the instruments, "B2" names no role: refused with the flag that helps.
    assert farsight_main(args) == 2
    assert "--sensor" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        farsight_main([*args, "--sensor", "landsat8,sentinel2,gf1-wfv"])
    assert exit_.value.code == 2
    assert "give one sensor for both dates or BEFORE,AFTER" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Gaofen

# Hand-written after CRESDA's Gaofen-1 WFV delivery XML (ProductMetaData beside the TIFF);
# like the real files, it carries no calibration gains.
GF1_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ProductMetaData>
  <SatelliteID>GF1</SatelliteID>
  <SensorID>WFV3</SensorID>
  <ProductLevel>LEVEL1A</ProductLevel>
  <Bands>1,2,3,4</Bands>
  <CenterTime>2020-05-18 03:12:45</CenterTime>
  <SolarAzimuth>150.2</SolarAzimuth>
  <SolarZenith>25.5</SolarZenith>
</ProductMetaData>
"""


def test_gaofen_xml_without_gains_stays_relative_and_says_so(tmp_path):
    side = parse_gaofen(GF1_XML.encode(), "gf.xml")
    assert (side.spacecraft, side.sensor, side.level, side.instrument) == (
        "GF1",
        "WFV3",
        "LEVEL1A",
        "gf1-wfv",
    )
    assert side.sun_elevation == pytest.approx(64.5) and side.bands == ("1", "2", "3", "4")
    assert side.calibration("1") is None
    rng = np.random.default_rng(3)
    dn = rng.integers(60, 900, (4, 64, 64), dtype=np.uint16)
    name = "GF1_WFV3_E113.8_N30.5_20200518_L1A0004812345"
    path = write_raster(tmp_path / f"{name}.tiff", dn)
    (tmp_path / f"{name}.xml").write_text(GF1_XML)
    scene = open_scene(path)
    assert scene.radiometry is not None and scene.radiometry.relative
    assert (
        scene.radiometry.describe() == "dn-10bit (Gaofen-1 WFV XML; no calibration gains: relative)"
    )
    assert scene.roles == ("blue", "green", "red", "nir")  # bands 1-4 in the XML's order


# ---------------------------------------------------------------------------------------------
# Malformed and hostile metadata


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ProductMetaData><SatelliteID>&lol3;</SatelliteID></ProductMetaData>
"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<ProductMetaData><SatelliteID>&secret;</SatelliteID></ProductMetaData>
"""


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        ("a.xml", BILLION_LAUGHS, "DOCTYPE"),
        ("a.xml", EXTERNAL, "DOCTYPE"),
        ("a.xml", "<ProductMetaData><SatelliteID>GF1</Sat", "line 1"),
        ("a.xml", "<Other/>", "Other"),
        ("a.xml", GF1_XML.replace("GF1<", "SPOT7<"), "SatelliteID/SensorID"),
        ("MTD_MSIL1C.xml", _mtd().replace(">10000<", ">ten thousand<"), "QUANTIFICATION_VALUE"),
        ("MTD_MSIL1C.xml", _mtd().replace('band_id="3"', 'band_id="99"'), "RADIO_ADD_OFFSET"),
        (
            "x_MTL.txt",
            L1_MTL.replace("SUN_ELEVATION = 36.8", "SUN_ELEVATION = low"),
            "SUN_ELEVATION",
        ),
        (
            "x_MTL.txt",
            L1_MTL.replace("SUN_ELEVATION = 36.8", "SUN_ELEVATION = -3"),
            "SUN_ELEVATION",
        ),
        ("x_MTL.txt", L1_MTL.replace("END_GROUP = IMAGE_ATTRIBUTES", ""), "line"),
        ("x_MTL.txt", L1_MTL.replace("    DATA_TYPE", "    DATA TYPE"), "line 8"),
        ("x_MTL.txt", L1_MTL.replace("2.0000E-05", "nan", 1), "REFLECTANCE_MULT_BAND_2"),
        ("x_MTL.txt", "GROUP = SOMETHING\nEND_GROUP = SOMETHING\nEND\n", "GROUP"),
        ("x_MTL.txt", L1_MTL.replace("LANDSAT_8", "LANDSÄT"), "file"),
        # Words apart by blanks after "=": quadratic for a lazy value pattern before trailing
        # blanks (40 000 blanks took 7 s; 400 000 would hang the test).
        ("x_MTL.txt", "GROUP = A\n  SUN_ELEVATION = x" + " " * 400_000 + "y\nEND\n", "A"),
    ],
    ids=[
        "entity-expansion",
        "external-entity",
        "truncated-xml",
        "not-cresda",
        "unknown-satellite",
        "quantification-not-a-number",
        "offset-band-out-of-range",
        "sun-elevation-not-a-number",
        "sun-below-horizon",
        "unbalanced-group",
        "not-key-value",
        "nan-coefficient",
        "not-an-mtl",
        "not-ascii",
        "long-blank-value",
    ],
)
def test_malformed_or_hostile_metadata_is_refused_naming_file_and_key(tmp_path, name, text, key):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SidecarError) as err:
        read_sidecar(path)
    assert err.value.path == str(path) and key in err.value.key
    assert str(err.value).startswith(f"{path}: ")


def test_oversized_metadata_is_refused_before_parsing(tmp_path):
    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_bytes(b"<a>" + b" " * MAX_BYTES + b"</a>")
    with pytest.raises(SidecarError, match=r"MTD_MSIL2A\.xml: file: larger than"):
        read_sidecar(path)


def test_rs_detect_with_a_broken_mtl_beside_the_scene_fails_naming_it(tmp_path, capsys):
    """A metadata file found beside a scene decides its radiometry: a broken one is an error
    (exit 1, the file and key named), not silently replaced by a guess."""
    before = _landsat_l1_stack(tmp_path / "l1", size=64)
    mtl = tmp_path / "l1" / f"{L1_PRODUCT}_MTL.txt"
    mtl.write_text(L1_MTL.replace("SUN_ELEVATION = 36.8", "SUN_ELEVATION = ?"))
    out = tmp_path / "out.geojson"
    assert farsight_main(["rs", "detect", str(before), str(before), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{mtl}: SUN_ELEVATION: not a number" in err and "fix or remove" in err
    assert not out.exists()
