"""Read-only views the dashboard needs besides the queue: who is signed in, and the map's
satellite layers (zones of interest and change polygons), scoped to the token's department."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from alerts.store import AlertFilter
from farsight.logs import kv
from hub.access import needs
from hub.auth import Principal, Role
from hub.context import HubContext
from hub.deps import context
from hub.schemas import MeOut

log = logging.getLogger(__name__)

router = APIRouter()

RS_FOLDER = "rs"
"""Where change detection writes under the data directory (``farsight demo``, ``rs watch``):
``zones.geojson`` and ``out/{aoi}/{scene}.geojson``."""
FEATURES_MAX = 5000
"""Most change polygons one response carries (newest scenes first)."""


@router.get("/api/me", tags=["auth"], response_model=MeOut)
def me(
    principal: Annotated[Principal, Depends(needs(Role.VIEWER, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
) -> dict[str, Any]:
    """The signed-in user, the role and the department scope every read and change is limited
    to, and when the token (or browser session) ends."""
    return {
        "user": principal.user,
        "department": principal.department,
        "departments": [principal.department]
        if principal.department
        else list(ctx.registry.departments),
        "role": principal.role.value,
        "expires": principal.expires.isoformat() if principal.expires else None,
    }


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("map layer unreadable", extra=kv(path=str(path), error=str(exc)))
        return []
    return [f for f in data.get("features", []) if isinstance(f, dict) and f.get("geometry")]


@router.get("/api/map/layers", tags=["sites"])
def map_layers(
    principal: Annotated[Principal, Depends(needs(Role.VIEWER, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
) -> dict[str, Any]:
    """Zones of interest and satellite change polygons as GeoJSON (lon/lat). A department's
    token sees the areas of interest whose alerts belong to its department."""
    root = Path(ctx.settings.data_dir) / RS_FOLDER
    changes: list[dict[str, Any]] = []
    out = root / "out"
    aois = sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    visible = []
    for aoi in aois:
        if principal.department is not None:
            n = ctx.alerts.list(
                AlertFilter(site=aoi.name, department=principal.department), limit=0
            )[1]
            if not n:
                continue
        visible.append(aoi.name)
        for scene in sorted(aoi.glob("*.geojson"), key=lambda p: p.stat().st_mtime, reverse=True):
            for f in _read(scene):
                props = dict(f.get("properties") or {})
                props.update(aoi=aoi.name, scene=scene.stem)
                changes.append(
                    {
                        "type": "Feature",
                        "id": f.get("id"),
                        "geometry": f["geometry"],
                        "properties": props,
                    }
                )
    zones: list[dict[str, Any]] = []
    if visible or principal.department is None:
        zones = _read(root / "zones.geojson")
    return {
        "zones": {"type": "FeatureCollection", "features": zones},
        "changes": {"type": "FeatureCollection", "features": changes[:FEATURES_MAX]},
        "aois": visible,
    }
