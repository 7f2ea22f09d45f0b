"""The demo's satellite part: one area of interest, two simulated scenes, a protected zone.

:func:`prepare_demo_aoi` writes a simulated Sentinel-2-like pair for the area of interest
:data:`AOI` (new construction and cleared vegetation among fields and water near Yichang) and an
ecological red line drawn around one of the inserted changes; :func:`run_demo_watch` runs
``rs watch`` over it once, so the change inside the red line becomes an alert in the risk queue
with its quicklook, as a department would see after a revisit.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from shapely.geometry import mapping, shape

from app.roles.satellite import queue_sink
from farsight.logs import kv
from farsight.settings import Settings
from remote_sensing.cli import watch_once
from remote_sensing.pipeline import DetectOptions
from remote_sensing.zones import parse_zones
from simulators.scenes import SceneSpec, write_pair

log = logging.getLogger(__name__)

AOI = "yc-changjiang-redline"
"""Area of interest id of the demo (the alert's site)."""

ZONE_NAME = "长江宜昌段生态保护红线（示例）"


def prepare_demo_aoi(root: Path, seed: int = 2026) -> tuple[Path, Path, int]:
    """Write the scenes under ``root/AOI/`` and the zones file; return (scenes root, zones file,
    changes in the zone)."""
    aoi_dir = root / "scenes" / AOI
    zones_file = root / "zones.geojson"
    if (aoi_dir / "after.tif").is_file() and zones_file.is_file():
        return (
            root / "scenes",
            zones_file,
            len(json.loads(zones_file.read_text(encoding="utf-8"))["features"]),
        )
    spec = SceneSpec(
        seed=seed,
        width=384,
        height=384,
        kinds=("new_construction", "vegetation_loss"),
        changes_per_kind=1,
        cloud_cover=(0.0, 0.03),
    )
    pair = write_pair(spec, root / "pair")
    aoi_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(pair.before), aoi_dir / "before.tif")
    shutil.move(str(pair.after), aoi_dir / "after.tif")
    # The red line: around the first inserted change, with a margin of about 150 m.
    target = shape(pair.changes[0].geometry)
    zone = target.envelope.buffer(0.0015, join_style=2)
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "redline-1",
                "geometry": mapping(zone),
                "properties": {"name": ZONE_NAME, "kind": "ecological_red_line"},
            }
        ],
    }
    zones_file.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    return root / "scenes", zones_file, 1


def run_demo_watch(settings: Settings, work: Path, department: str = "env") -> int:
    """Prepare the demo AOI (once) and process it; return the number of change events raised."""
    scenes, zones_file, _ = prepare_demo_aoi(work, settings.simulator.seed)
    zones = parse_zones(json.loads(zones_file.read_text(encoding="utf-8")), str(zones_file))
    on_change, close = queue_sink(settings)
    try:
        events = watch_once(
            scenes,
            work / "out",
            DetectOptions(),
            zones,
            evidence=settings.evidence_dir,
            on_change=on_change,
            department=department,
        )
    finally:
        close()
    log.info("satellite demo processed", extra=kv(aoi=AOI, events=len(events)))
    return len(events)
