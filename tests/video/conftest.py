"""Fixtures of the video tests: real footage from registry packages
(tests/data/real_footage.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.real_footage import RealDataError, clip_path, photo_path


def _real(get: Callable[[str], Path], name: str) -> Path:
    # CI installs everything: a clip that cannot be fetched is a failure that says why, never a
    # skip.
    try:
        return get(name)
    except RealDataError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def real_clip() -> Callable[[str], Path]:
    """``real_clip(name)``: the path (AVI or MP4) of a clip of tests/data/real_footage.yaml,
    fetched into the test-data cache on first use; ``analyze_file`` and ``farsight video
    analyze`` read it as they read any file."""
    return lambda name: _real(clip_path, name)


@pytest.fixture(scope="session")
def real_photo() -> Callable[[str], Path]:
    """``real_photo(name)``: the path of a photograph of tests/data/real_footage.yaml."""
    return lambda name: _real(photo_path, name)
