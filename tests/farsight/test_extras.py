"""Role-specific packages are extras: a missing one is a FarsightError naming the extra to install.

The packages are installed here, so each test hides one the way a missing package looks to
Python: ``sys.modules[name] = None`` makes ``import name`` fail and ``find_spec`` find nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.health import require_psutil
from farsight.broker import AmqttBroker
from farsight.errors import FarsightError, MissingExtraError
from remote_sensing.windowed import run_blocks
from simulators.scenes import SceneSpec, write_pair

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_fallback_broker_names_the_demo_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amqtt", None)
    with pytest.raises(MissingExtraError) as info:
        AmqttBroker()
    assert isinstance(info.value, FarsightError) and info.value.extra == "demo"
    assert "pip install 'farsight[demo]'" in str(info.value) and "mosquitto" in str(info.value)


def test_a_gateway_without_psutil_names_the_edge_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    require_psutil()  # installed: nothing to say
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'farsight\[edge\]'"):
        require_psutil()


def test_dask_blocks_name_the_distributed_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'farsight\[distributed\]'"):
        list(run_blocks(abs, [1, -2], executor="dask"))
    # The threads executor needs nothing extra.
    assert sorted(r for _, r in run_blocks(abs, [1, -2], executor="threads")) == [1, 2]


def test_the_cli_reports_a_missing_extra_as_its_own_error(tmp_path: Path) -> None:
    """End to end: the command exits 1 with one line naming the extra, no traceback."""
    spec = SceneSpec(
        seed=21,
        width=256,
        height=256,
        tile=64,
        changes_per_kind=1,
        kinds=("new_construction",),
        cloud_cover=(0.0, 0.0),
        change_ha=(0.8, 1.2),
    )
    pair = write_pair(spec, tmp_path)
    before, after = pair.before, pair.after
    hide = "import sys; sys.modules['dask.distributed'] = None; "
    run = "from app.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", hide + run, "rs", "detect", str(before), str(after)]
        + ["--out", str(tmp_path / "c.geojson"), "--executor", "dask"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "farsight: dask[distributed] is not installed" in proc.stderr
    assert "pip install 'farsight[distributed]'" in proc.stderr and "Traceback" not in proc.stderr
