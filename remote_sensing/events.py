"""Revisit state changes as :class:`~farsight.types.ChangeEvent` values for the rule engine.

A change region is already a finding; which findings become alerts, and how serious, is policy:
the ``change_region`` rules of the rule files (default pack: ``rules/packs/remote-sensing.yaml``)
judge each event in :meth:`rules.engine.Engine.judge_changes`.
"""

from __future__ import annotations

from datetime import datetime

from farsight.types import ChangeEvent
from remote_sensing.revisits import StateChange


def change_event(
    change: StateChange, before: datetime, after: datetime, department: str = ""
) -> ChangeEvent:
    """The :class:`ChangeEvent` of one revisit state change (its region as a ChangeRegion, the
    track's id, state and sightings, the zones it touches)."""
    region, track = change.region, change.track
    return ChangeEvent(
        region=region.to_change_region(track.aoi, before, after),
        track=track.id,
        state=track.state,
        sightings=track.sightings,
        zones=tuple((z.zone, z.kind) for z in region.zones),
        department=department,
    )
