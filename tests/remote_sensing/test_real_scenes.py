"""Real scenes from registry archives: the fetch-and-check fixture module, and change detection
on real pairs as archives deliver them (digital numbers, band descriptions, nodata or
zero-filled edges)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from app.cli import main as farsight_main
from remote_sensing.pipeline import DetectOptions, detect_pair
from tests.real_scenes import (
    Archive,
    RealDataError,
    RealScene,
    archive_path,
    extract,
    manifest,
    sha256_of,
)


def test_manifest_names_archive_hash_member_and_licence_of_every_scene():
    scenes = manifest()
    assert {"l8-224077-b2", "l8-224078-bgr", "rgbn", "rgbn-subb"} <= set(scenes)
    for s in scenes.values():
        assert s.archive.url.startswith("https://") and s.archive.url.endswith(".tar.gz")
        assert len(s.archive.sha256) == 64 and len(s.sha256) == 64
        assert s.member.startswith(s.archive.name + "/")
        assert "MIT" in s.archive.licence and "public domain" in s.archive.licence
        assert len(s.what) > 40


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_is_downloaded_once_checked_and_only_the_member_extracted(served, tmp_path):
    www, base = served
    tar = _tarball(www / "pkg-1.0.tar.gz", {"pkg-1.0/a.tif": b"scene a", "pkg-1.0/b.tif": b"b"})
    archive = Archive("pkg-1.0", f"{base}/pkg-1.0.tar.gz", sha256_of(tar), "MIT")
    (tmp_path / "a").write_bytes(b"scene a")
    scene = RealScene("a", archive, "pkg-1.0/a.tif", sha256_of(tmp_path / "a"), "test scene")
    cache = tmp_path / "cache"
    cache.mkdir()
    got = extract(scene, cache)
    assert got.read_bytes() == b"scene a"
    assert not (cache / "pkg-1.0" / "pkg-1.0" / "b.tif").exists()
    # Cached: the server may go away, the member is still there.
    tar.unlink()
    assert extract(scene, cache) == got


def test_wrong_archive_hash_fails_naming_the_file(served, tmp_path):
    www, base = served
    _tarball(www / "pkg-2.0.tar.gz", {"pkg-2.0/a.tif": b"x"})
    archive = Archive("pkg-2.0", f"{base}/pkg-2.0.tar.gz", "0" * 64, "MIT")
    with pytest.raises(RealDataError, match=r"pkg-2\.0\.tar\.gz.*has sha256 .*says 0{64}"):
        archive_path(archive, tmp_path)
    assert not list(tmp_path.glob("pkg-2.0.tar.gz")), "a bad download is not kept as the archive"


def test_wrong_member_hash_fails_naming_the_scene(served, tmp_path):
    www, base = served
    tar = _tarball(www / "pkg-3.0.tar.gz", {"pkg-3.0/a.tif": b"x"})
    archive = Archive("pkg-3.0", f"{base}/pkg-3.0.tar.gz", sha256_of(tar), "MIT")
    scene = RealScene("a", archive, "pkg-3.0/a.tif", "f" * 64, "test scene")
    with pytest.raises(RealDataError, match=r"a\.tif.*\(scene a\) has sha256"):
        extract(scene, tmp_path)


def test_unreachable_archive_fails_with_the_url(served, tmp_path):
    _, base = served
    archive = Archive("gone-1.0", f"{base}/gone-1.0.tar.gz", "0" * 64, "MIT")
    with pytest.raises(RealDataError, match=r"cannot download test archive gone-1\.0 from http"):
        archive_path(archive, tmp_path)


# ---------------------------------------------------------------------------------------------
# Real pairs


def _detect(before: Path, after: Path, out: Path, *extra: str) -> dict:
    assert farsight_main(["rs", "detect", str(before), str(after), "--out", str(out), *extra]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("method", ["index", "cva", "imad"])
def test_8bit_rgbn_pair_without_change_runs_and_finds_nothing(rgbn_real, tmp_path, method, capsys):
    """Issue 16's report: an 8-bit pair with band descriptions and nodata was refused with
    'only 0 usable pixels to normalise on' by every method, because the reflectance cloud test
    (visible > 0.3) held for every 8-bit DN. The pair is a resampled copy of one scene."""
    before, after = rgbn_real
    fc = _detect(before, after, tmp_path / "out.geojson", "--method", method)
    assert fc["features"] == []
    assert fc["properties"]["radiometry"] == {
        "before": "dn-8bit (guessed from range)",
        "after": "dn-8bit (guessed from range)",
    }
    out = capsys.readouterr().out
    assert "radiometry: before dn-8bit (guessed from range); after dn-8bit" in out
    assert "; radiometry dn-8bit (guessed)\n" in out  # the summary line's end


@pytest.mark.parametrize("method", ["index", "cva", "imad"])
def test_landsat_l1_same_day_overlap_runs_and_finds_nothing(
    landsat_overlap, tmp_path, capsys, method
):
    """Landsat 8 Level-1 rows 077 and 078 of one pass, 3 bands of 16-bit DNs, the after scene
    zero-filled at its edge without a nodata tag: no change, and the output says what was
    assumed and that an RGB pair tells fewer kinds. CVA and iMAD found hundreds of regions here
    (Otsu split the noise; iMAD's variances shrank to the DN rounding) before the change floor."""
    before, after = landsat_overlap
    fc = _detect(before, after, tmp_path / "out.geojson", "--method", method)
    assert fc["features"] == []
    props = fc["properties"]
    assert props["bands"] == ["blue", "green", "red"]
    kinds = ["new_construction", "bare_soil"] + ([] if method == "index" else ["unclassified"])
    assert props["kinds_possible"] == kinds
    # The floor is the physical one (0.015 rms per band over 3 bands): the pair has no noise.
    assert props["change_floor"] == pytest.approx(0.015 * 3**0.5, rel=1e-3)
    assert props["radiometry"] == {
        "before": "dn-16bit (guessed from range)",
        "after": "dn-16bit (guessed from range), zero-filled edges as nodata",
    }
    out = capsys.readouterr().out
    assert "vegetation and water changes cannot be told" in out


def test_plain_cva_otsu_baseline_finds_hundreds_of_false_changes_on_the_same_overlap(
    landsat_overlap,
):
    """What the change floor is for: without it, Otsu's threshold splits the pair's noise."""
    before, after = landsat_overlap
    plain = DetectOptions(
        method="cva", cloud_mask=False, normalise=False, min_change=0.0, noise_k=0.0
    )
    result = detect_pair(before, after, plain)
    assert len(result.regions) > 100
    assert result.calibration.threshold < 0.005


def test_forced_histogram_matching_says_so_and_lowers_confidence(rgbn_real, tmp_path, capsys):
    """--min-pif-pixels above what the sample holds: the normalisation degrades to histogram
    matching instead of refusing, and the output says so."""
    before, after = rgbn_real
    fc = _detect(before, after, tmp_path / "out.geojson", "--min-pif-pixels", "500000")
    norm = fc["properties"]["normalisation"]
    assert norm["method"] == "histogram" and norm["degraded"] is True
    assert norm["confidence_factor"] == pytest.approx(0.7)
    assert fc["features"] == []
    out = capsys.readouterr().out
    assert "normalisation: histogram (degraded;" in out
    assert "histogram-matched to the before date; confidences x0.7" in out
