"""Content-addressed evidence files: snapshots, clips, quicklooks, inspectors' photos.

:class:`EvidenceStore` keeps each file once under ``<root>/ab/abcdef....jpg`` where the name is
the SHA-256 of its bytes (as Git and IPFS do): the name is the integrity check, and storing the
same bytes twice is a no-op. The conventional root is ``<data_dir>/evidence``
(:meth:`EvidenceStore.for_data_dir`); alerts refer to evidence by hash. Every producer (video,
remote sensing, the hub's uploads) and the hub's reader share this one store.

:class:`EvidenceLedger` records, in the hub database, who uploaded a file through the hub and for
which department: the files carry no owner, and the hub decides from this record (and from the
alerts that list a file) which department may read or cite it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from farsight.clock import Clock, SystemClock, from_epoch_ms, to_epoch_ms
from farsight.db import Database
from farsight.errors import NotFoundError, StoreError
from farsight.migrate import ensure_schema

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


@dataclass(frozen=True, slots=True)
class Upload:
    """One upload of an evidence file through the hub."""

    sha256: str
    department: str | None
    """The uploading token's department; ``None`` for a province-wide token."""
    uploader: str
    uploaded: datetime
    media_type: str
    size: int


class EvidenceLedger:
    """Who uploaded which evidence file, for which department (table ``evidence_uploads``).

    Every upload is a row, so the same bytes uploaded by two departments belong to both; files
    that producers (video, remote sensing, gateways through ingest) put into the store directly
    have no row.
    """

    def __init__(self, path: Path | str | Database, clock: Clock | None = None) -> None:
        self.db = ensure_schema(Database.open(path))
        self.clock = clock or SystemClock()

    def record(
        self, sha: str, department: str | None, uploader: str, media_type: str, size: int
    ) -> Upload:
        """Record one upload of the file ``sha``; returns it."""
        upload = Upload(
            sha256=_check_sha(sha),
            department=department,
            uploader=uploader,
            uploaded=self.clock.now(),
            media_type=media_type,
            size=int(size),
        )
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO evidence_uploads (sha256, department, uploader, uploaded, media_type,"
                " size) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    upload.sha256,
                    upload.department,
                    upload.uploader,
                    to_epoch_ms(upload.uploaded),
                    upload.media_type,
                    upload.size,
                ),
            )
        return upload

    def uploads(self, sha: str) -> list[Upload]:
        """Every recorded upload of ``sha``, oldest first; none for a file no one uploaded."""
        rows = self.db.query(
            "SELECT sha256, department, uploader, uploaded, media_type, size"
            " FROM evidence_uploads WHERE sha256 = ? ORDER BY id",
            (_check_sha(sha),),
        )
        return [
            Upload(
                sha256=r["sha256"],
                department=r["department"],
                uploader=r["uploader"],
                uploaded=from_epoch_ms(int(r["uploaded"])),
                media_type=r["media_type"],
                size=int(r["size"]),
            )
            for r in rows
        ]

    def departments(self, sha: str) -> frozenset[str | None]:
        """The departments ``sha`` was uploaded for (``None``: by a province-wide token)."""
        rows = self.db.query(
            "SELECT DISTINCT department FROM evidence_uploads WHERE sha256 = ?", (_check_sha(sha),)
        )
        return frozenset(r["department"] for r in rows)

    def close(self) -> None:
        self.db.close()
