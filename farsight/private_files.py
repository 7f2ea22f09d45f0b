"""Files only their owner may read (credential store, secrets, broker password and ACL files),
written atomically: a reader (mosquitto on SIGHUP, ingest checking a PW) sees the old file or
the new one, never half of one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from farsight.errors import CredentialError

PRIVATE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600, through a temporary file in the same folder.

    A missing folder is made with mode 0700. Raises :class:`CredentialError` on an I/O error.
    """
    path = Path(path)
    try:
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600 before a byte is written.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, PRIVATE_MODE)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
    except OSError as exc:
        raise CredentialError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (two ``farsight devices`` commands at once
    would otherwise each write the store read before the other's change)."""
    lock = Path(f"{path}.lock")
    try:
        lock.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    except OSError as exc:
        raise CredentialError(f"cannot lock {lock}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
