"""Alert model: an alert has an activity (firing or resolved, set by rules) and a handling
state (new, acknowledged, dispatched, verified, closed, set by people), as ThingsBoard separates the
two."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from farsight.errors import TransitionError

ACTIVITIES = ("firing", "resolved")
STATES = ("new", "acknowledged", "dispatched", "verified", "closed")
"""Handling states: ``new`` is untouched; dispatched means on-site verification (核查)
is under way; verified carries the finding; closed carries the disposal."""

FINDINGS = ("violation_confirmed", "no_violation", "equipment_fault", "data_fault")
"""What on-site verification found."""

TRANSITIONS: dict[str, dict[str, str]] = {
    "ack": {"new": "acknowledged"},
    "dispatch": {"new": "dispatched", "acknowledged": "dispatched"},
    "verify": {"dispatched": "verified"},
    # Closing before verification is a desk closure (a false alarm seen from the data alone).
    "close": {"new": "closed", "acknowledged": "closed", "verified": "closed"},
    "reopen": {"closed": "acknowledged"},
    "comment": {s: s for s in STATES},
}
"""Allowed handling transitions: action -> {from state: to state}."""

JOINT_VISIT = "joint_visit"
"""History action of a joint visit, next to each alert's dispatch: it sets
``handling.dispatch.visit`` (:mod:`alerts.joint`)."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_action(
    action: str, state: str, note: str, data: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """Validate one handling action; return the target state and the fields it records.

    Pure: the store calls it inside its transaction with the alert's current state.

    Raises
    ------
    TransitionError
        Unknown action, not allowed from ``state``, missing comment or missing or bad fields.
    """
    moves = TRANSITIONS.get(action)
    if moves is None:
        raise TransitionError(f"unknown action {action!r}; known: {', '.join(TRANSITIONS)}")
    target = moves.get(state)
    if target is None:
        allowed = ", ".join(moves)
        raise TransitionError(
            f"cannot {action} an alert that is {state}; {action} is allowed from: {allowed}"
        )
    if not note or not note.strip():
        raise TransitionError(
            f"{action} needs a comment saying why (every step is recorded with one)"
        )
    data = dict(data or {})
    fields: dict[str, Any] = {}
    if action == "dispatch":
        for key in ("team", "inspector", "due"):
            if not str(data.get(key) or "").strip():
                raise TransitionError(
                    f"dispatch needs '{key}' (team, inspector and due date of the on-site check)"
                )
        try:
            due = date.fromisoformat(str(data["due"]))
        except ValueError:
            raise TransitionError(
                f"dispatch 'due' {data['due']!r} is not a date (YYYY-MM-DD)"
            ) from None
        fields["dispatch"] = {
            "team": str(data["team"]),
            "inspector": str(data["inspector"]),
            "due": due.isoformat(),
        }
    elif action == "verify":
        finding = data.get("finding")
        if finding not in FINDINGS:
            raise TransitionError(
                f"verify needs a 'finding', one of {', '.join(FINDINGS)}; got {finding!r}"
            )
        evidence = list(data.get("evidence") or [])
        bad = [e for e in evidence if not isinstance(e, str) or not _SHA256.match(e)]
        if bad:
            raise TransitionError(
                f"evidence must be sha256 hashes of stored evidence files; bad: {bad[:3]}"
            )
        fields["verification"] = {"finding": finding, "evidence": evidence}
    elif action == "close":
        disposal = {
            k: data[k]
            for k in ("case_number", "penalty", "rectification", "recheck")
            if data.get(k) not in (None, "")
        }
        if "recheck" in disposal:
            try:
                disposal["recheck"] = date.fromisoformat(str(disposal["recheck"])).isoformat()
            except ValueError:
                raise TransitionError(
                    f"close 'recheck' {disposal['recheck']!r} is not a date (YYYY-MM-DD)"
                ) from None
        fields["disposal"] = disposal or {"desk": True}
    elif action == "reopen":
        fields["reopened"] = {"reason": note.strip()}
    return target, fields


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
    handling: dict[str, Any] | None = None
    credit_grade: str = "B"
    entity_repeats: int = 0
    evidence: tuple[str, ...] = ()
    suppressed: dict[str, Any] | None = None
    """Why the alert is muted: ``{"silence": id}`` or ``{"inhibited_by": alert id}``; empty when
    not."""
    escalation: int = 0
    due_at: datetime | None = None
    """Deadline of the current handling step (acknowledgement, then verification)."""
    risk: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API and the live stream."""
        d = {k: getattr(self, k) for k in self.__slots__}
        d["evidence"] = list(self.evidence)
        for k in ("starts_at", "last_seen", "resolved_at", "created", "updated", "due_at"):
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
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "note": self.note,
            "data": self.data,
        }
