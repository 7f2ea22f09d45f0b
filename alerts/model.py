"""Alert model: an alert has an activity (firing or resolved, set by rules) and a handling
state (open, acknowledged, closed, set by people), as ThingsBoard separates the two."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

ACTIVITIES = ("firing", "resolved")
STATES = ("open", "acknowledged", "closed")

TRANSITIONS: dict[str, dict[str, str]] = {
    "ack": {"open": "acknowledged"},
    "close": {"open": "closed", "acknowledged": "closed"},
}
"""Allowed handling transitions: action -> {from state: to state}."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One supervision alert in the risk queue."""

    id: int
    fingerprint: str
    rule_id: str
    site: str
    device: str
    metric: str
    department: str
    entity_id: str
    item_code: str
    severity: str
    summary: str
    activity: str
    state: str
    value: float | None
    threshold: float | None
    starts_at: datetime
    last_seen: datetime
    resolved_at: datetime | None
    count: int
    created: datetime
    updated: datetime
    labels: dict[str, str]
    previous_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API and the live stream."""
        d = {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]
        for k in ("starts_at", "last_seen", "resolved_at", "created", "updated"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        return d


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of an alert's history: who did what, when, with what note."""

    id: int
    alert_id: int
    at: datetime
    actor: str
    action: str
    note: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "alert_id": self.alert_id, "at": self.at.isoformat(), "actor": self.actor,
                "action": self.action, "note": self.note, "data": self.data}
