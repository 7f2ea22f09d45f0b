"""Content-addressed evidence files: snapshots, clips, quicklooks, inspectors' photos.

:class:`EvidenceStore` keeps each file once under ``<root>/ab/abcdef....jpg`` where the name is
the SHA-256 of its bytes (as Git and IPFS do): the name is the integrity check, and storing the
same bytes twice is a no-op. The conventional root is ``<data_dir>/evidence``
(:meth:`EvidenceStore.for_data_dir`); alerts refer to evidence by hash. Every producer (video,
remote sensing, the hub's uploads) and the hub's reader share this one store.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from farsight.errors import NotFoundError, StoreError

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX_RE = re.compile(r"^\.[a-z0-9]{1,8}$")


def _check_sha(sha: str) -> str:
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise ValueError(f"evidence id must be 64 lowercase hex digits (sha256), got {sha!r}")
    return sha


def atomic_write(path: Path, data: bytes, what: str = "") -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so a
    reader never sees a partial file; creates the folder.

    Raises
    ------
    StoreError
        If the file cannot be written (``what`` prefixes the path in the message).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StoreError(f"cannot write {what}{path}: {exc.strerror or exc}") from None


class EvidenceStore:
    """Files named by the SHA-256 of their bytes, sharded by the first two hex digits."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_data_dir(cls, data_dir: str | Path) -> EvidenceStore:
        """The store at ``<data_dir>/evidence``."""
        return cls(Path(data_dir) / "evidence")

    def _target(self, sha: str, suffix: str) -> Path:
        return self.root / sha[:2] / f"{sha}{suffix}"

    def put(self, data: bytes, suffix: str = ".jpg") -> str:
        """Store ``data`` (once) and return its SHA-256 hex digest.

        Writes to a temporary file in the same folder and renames it into place, so a reader
        never sees a partial file; if the file already exists nothing is written.

        Raises
        ------
        ValueError
            If ``data`` is not bytes or ``suffix`` is not like ``.jpg``.
        StoreError
            If the file cannot be written.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"evidence data must be bytes, got {type(data).__name__}")
        if not isinstance(suffix, str) or not _SUFFIX_RE.match(suffix):
            raise ValueError(
                f"suffix must look like '.jpg' (lowercase, 1-8 characters), got {suffix!r}"
            )
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        target = self._target(sha, suffix)
        if not target.is_file():
            atomic_write(target, data, what="evidence ")
        return sha

    def path(self, sha: str) -> Path:
        """Path of the stored file with this digest (any suffix).

        Raises
        ------
        ValueError
            If ``sha`` is not a SHA-256 hex digest.
        NotFoundError
            If no such file is stored.
        """
        _check_sha(sha)
        folder = self.root / sha[:2]
        if folder.is_dir():
            for p in sorted(folder.glob(f"{sha}.*")):
                if p.is_file():
                    return p
        raise NotFoundError(f"no evidence {sha} under {self.root}")

    def __contains__(self, sha: object) -> bool:
        if not isinstance(sha, str):
            return False
        try:
            self.path(sha)
        except (ValueError, NotFoundError):
            return False
        return True
