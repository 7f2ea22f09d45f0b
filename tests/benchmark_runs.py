"""Running a benchmark script the way its smoke test needs: the project's interpreter, from the
repository root, at the size the arguments give, its output kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def run_benchmark(script: str, *args: str, timeout: float) -> list[str]:
    """Run ``benchmarks/<script>`` with ``args`` and return its output lines (stripped).

    Fails the test (an assertion naming the end of stderr) when the script exits non-zero.
    """
    python = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
    proc = subprocess.run(
        [str(python), str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()
