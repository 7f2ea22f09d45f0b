"""The checks CI runs with the tests: the import contract (ARCHITECTURE.md's "may import"
column and no circles between a package's modules), ruff and mypy.

Each runs the real tool on the tree, from the virtualenv's pinned versions, so a wrong import,
a lint error or a type error fails the suite like a failing test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_import_contract_holds() -> None:
    proc = _run(str(BIN / "lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout


def test_ruff_finds_nothing() -> None:
    proc = _run(str(BIN / "ruff"), "check", "--no-cache", "--output-format", "concise", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_tree_is_formatted() -> None:
    proc = _run(str(BIN / "ruff"), "format", "--no-cache", "--check", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_mypy_finds_nothing() -> None:
    # The user's cache, outside the tree, like pip's: a clean clone checks in about a second
    # instead of fifteen. mypy keys each module's entry on its content hash and its own version
    # (a stale or foreign entry is checked afresh) and replaces cache files atomically.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "farsight" / "mypy"
    proc = _run(str(BIN / "mypy"), "--cache-dir", str(cache), timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout
