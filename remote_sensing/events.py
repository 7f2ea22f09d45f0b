"""Revisit state changes as alert signals for the risk queue.

The rule engine evaluates :class:`~farsight.types.Reading` series; a change region is already a
finding, so :func:`alert_signal` turns each revisit :class:`~remote_sensing.revisits.StateChange`
into the :class:`~farsight.types.AlertSignal` the alert pipeline takes (``AlertStore.apply``).
One track is one alerting series: its fingerprint is stable over revisits, so ``confirmed``
updates the alert ``possible`` opened (raising its severity) instead of opening a second one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from farsight.types import AlertSignal
from remote_sensing.revisits import StateChange

RULE_ID = "rs.change_region"
"""Rule id the signals carry."""

SENSITIVE_ZONES = ("protected_area", "ecological_red_line")
"""Zone kinds that raise a change's severity one step."""

_SEVERITY = {"possible": "warning", "confirmed": "major"}
_UP = {"warning": "major", "major": "critical", "critical": "critical"}


def signal_fingerprint(aoi: str, track: str) -> str:
    """The alert fingerprint of one track (the rule engine's formula: rule, site, device, metric)."""
    return hashlib.sha256(f"{RULE_ID}\x1f{aoi}\x1fsatellite\x1f{track}".encode()).hexdigest()[:16]


def alert_signal(change: StateChange, before: datetime, after: datetime, department: str = "") -> AlertSignal:
    """The firing signal of one revisit state change.

    Severity is ``warning`` for a possible change and ``major`` once confirmed, one step higher
    when the change touches a protected area or an ecological red line. Labels carry the kind,
    state, track and zones; ``value`` is the area in m2; evidence is the quicklook's sha256.
    """
    region, track = change.region, change.track
    severity = _SEVERITY[track.state]
    if any(z.kind in SENSITIVE_ZONES for z in region.zones):
        severity = _UP[severity]
    zones = ",".join(z.zone for z in region.zones)
    where = f" in {zones}" if zones else ""
    summary = f"{region.kind.replace('_', ' ')} of {region.area_m2 / 1e4:.2f} ha{where} ({track.state}, seen {track.sightings}x)"
    labels = (("kind", region.kind), ("state", track.state), ("track", track.id), ("zones", zones))
    annotations = (
        ("summary", summary),
        ("centroid", f"{region.centroid.lon:.6f},{region.centroid.lat:.6f}"),
        ("before", before.isoformat()),
        ("after", after.isoformat()),
        ("confidence", f"{region.confidence:.2f}"),
    )
    return AlertSignal(
        rule_id=RULE_ID, fingerprint=signal_fingerprint(track.aoi, track.id), status="firing", site=track.aoi,
        device="satellite", metric=region.kind, severity=severity, summary=summary, ts=change.ts, value=region.area_m2,
        department=department, labels=labels, evidence=region.evidence, annotations=annotations,
    )
