"""Confidence over revisits: a change seen once is ``possible``; seen again in a later scene,
``confirmed``.

A :class:`Track` follows one change across scenes of one area of interest; :func:`update` matches
a scene's regions to the tracks (same kind, IoU >= ``min_iou`` or one holding the other's
centroid) and returns the new tracks and a :class:`StateChange` for each new or promoted track:
those are the events the rule engine receives. It is pure and idempotent: processing the same
scene twice changes nothing, since only a sighting later than a track's last one counts (GLAD-L
alerts confirm in the same spirit, when later observations agree).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shapely.geometry import shape

from remote_sensing.pipeline import Region

STATES: tuple[str, ...] = ("possible", "confirmed")


@dataclass(frozen=True, slots=True)
class Track:
    """One change followed over scenes of an area of interest."""

    id: str
    aoi: str
    kind: str
    geometry: dict[str, Any]
    state: str
    first_seen: datetime
    last_seen: datetime
    sightings: int = 1

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"track state {self.state!r} must be one of {STATES}")
        if self.first_seen.tzinfo is None or self.last_seen.tzinfo is None:
            raise ValueError("track times must be timezone-aware")


@dataclass(frozen=True, slots=True)
class StateChange:
    """A track entered ``track.state`` (from ``previous``; ``None`` for a new track) at ``ts``."""

    track: Track
    previous: str | None
    region: Region
    ts: datetime


def _same(a: dict[str, Any], b: dict[str, Any], min_iou: float) -> bool:
    sa, sb = shape(a), shape(b)
    if not sa.intersects(sb):
        return False
    inter = sa.intersection(sb).area
    union = sa.union(sb).area
    return (
        (union > 0 and inter / union >= min_iou)
        or sa.contains(sb.centroid)
        or sb.contains(sa.centroid)
    )


def update(
    tracks: tuple[Track, ...],
    found: Iterable[Region],
    aoi: str,
    seen_at: datetime,
    confirm_after: int = 2,
    min_iou: float = 0.2,
) -> tuple[tuple[Track, ...], tuple[StateChange, ...]]:
    """Tracks after one scene of ``aoi`` taken at ``seen_at``, and the state changes it caused.

    Parameters
    ----------
    tracks : tuple of Track
        Current tracks (any AOI).
    found : iterable of Region
        The scene's regions.
    aoi : str
        Area of interest of the scene.
    seen_at : datetime
        Acquisition time of the scene (the after date of the pair).
    confirm_after : int
        Sightings on distinct, later scenes that confirm a track.
    min_iou : float
        Overlap that makes a region the same change as a track.

    Returns
    -------
    (tracks, changes)
    """
    if seen_at.tzinfo is None:
        raise ValueError("seen_at must be timezone-aware")
    current = list(tracks)
    changes: list[StateChange] = []
    for region in found:
        idx = next(
            (
                i
                for i, t in enumerate(current)
                if t.aoi == aoi
                and t.kind == region.kind
                and _same(t.geometry, region.geometry, min_iou)
            ),
            None,
        )
        if idx is None:
            t = Track(
                f"{aoi}:{region.id}",
                aoi,
                region.kind,
                region.geometry,
                "possible",
                seen_at,
                seen_at,
                1,
            )
            if confirm_after <= 1:
                t = replace(t, state="confirmed")
            current.append(t)
            changes.append(StateChange(t, None, region, seen_at))
            continue
        t = current[idx]
        if seen_at <= t.last_seen:
            continue  # the same scene again, or an older one: no new evidence
        n = t.sightings + 1
        state = "confirmed" if n >= confirm_after else t.state
        new = replace(t, geometry=region.geometry, last_seen=seen_at, sightings=n, state=state)
        current[idx] = new
        if state != t.state:
            changes.append(StateChange(new, t.state, region, seen_at))
    return tuple(current), tuple(changes)


def to_json(tracks: tuple[Track, ...]) -> dict[str, Any]:
    """Tracks as a JSON-ready document (the revisit state file)."""
    return {
        "version": 1,
        "tracks": [
            {
                "id": t.id,
                "aoi": t.aoi,
                "kind": t.kind,
                "geometry": t.geometry,
                "state": t.state,
                "first_seen": t.first_seen.isoformat(),
                "last_seen": t.last_seen.isoformat(),
                "sightings": t.sightings,
            }
            for t in tracks
        ],
    }


def from_json(doc: dict[str, Any]) -> tuple[Track, ...]:
    """Tracks from a document written by :func:`to_json` (empty for ``{}``)."""
    return tuple(
        Track(
            d["id"],
            d["aoi"],
            d["kind"],
            d["geometry"],
            d["state"],
            datetime.fromisoformat(d["first_seen"]),
            datetime.fromisoformat(d["last_seen"]),
            int(d["sightings"]),
        )
        for d in doc.get("tracks", [])
    )
