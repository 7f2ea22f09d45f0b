"""Joint inspection (进一次门、查多项事): one visit to an entity for the alerts of all its sites
and departments.

An entity (one unified social credit code) with two or more alerts waiting to be taken up (state
``new`` or ``acknowledged``, not closed, not muted), across its sites and/or departments, gets a
:class:`JointProposal`. :func:`dispatch_visit` dispatches a chosen set of them as one visit in
one transaction: every alert is dispatched with the same team, inspector, due date and visit id,
or none is.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from alerts.model import JOINT_VISIT, Alert
from alerts.store import AlertFilter, AlertStore
from alerts.store_reports import entities_with_waiting
from farsight.clock import to_epoch_ms
from farsight.errors import NotFoundError, ScopeError, TransitionError
from farsight.logs import kv
from farsight.registry import Registry

log = logging.getLogger(__name__)

WAITING = ("new", "acknowledged")
"""States of alerts a joint visit can still take up (dispatch is allowed from both)."""

MIN_ALERTS = 2
"""A proposal needs at least this many waiting alerts of one entity."""

VISIT_ACTION = JOINT_VISIT
"""History action recorded next to each alert's dispatch, carrying the visit id and its alerts."""

_PAGE = 500


@dataclass(frozen=True, slots=True)
class JointGroup:
    """The waiting alerts of one site of the entity, for one department."""

    site: str
    site_name: str
    department: str
    alerts: tuple[Alert, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "site_name": self.site_name,
            "department": self.department,
            "alerts": [a.to_dict() for a in self.alerts],
        }


@dataclass(frozen=True, slots=True)
class JointProposal:
    """A suggested joint visit to one entity: its waiting alerts by site and department."""

    entity_id: str
    entity_name: str
    groups: tuple[JointGroup, ...]
    total_risk: float
    """Sum of the risk scores of the alerts shown."""
    checks: tuple[str, ...]
    """What the visit should check: one line per site, department and metric."""
    alert_count: int
    """Waiting alerts of the entity in all departments (those withheld included)."""
    withheld: tuple[tuple[str, int], ...] = ()
    """Other departments' waiting alerts, counted only, when the listing is for one department."""
    departments: tuple[str, ...] = field(default=())
    sites: tuple[str, ...] = field(default=())
    """Sites of the alerts shown (with a department, never another department's)."""

    def __post_init__(self) -> None:
        if self.alert_count < MIN_ALERTS:
            raise ValueError(
                f"a joint proposal needs at least {MIN_ALERTS} alerts, got {self.alert_count}"
            )

    @property
    def alert_ids(self) -> tuple[int, ...]:
        """Ids of the alerts shown, highest risk first within each group."""
        return tuple(a.id for g in self.groups for a in g.alerts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity_id": self.entity_id,
            "entity_name": self.entity_name,
            "alert_count": self.alert_count,
            "total_risk": round(self.total_risk, 3),
            "departments": list(self.departments),
            "sites": list(self.sites),
            "checks": list(self.checks),
            "alert_ids": list(self.alert_ids),
            "withheld": {d: n for d, n in self.withheld},
            "groups": [g.to_dict() for g in self.groups],
        }


def _waiting(store: AlertStore, entity_id: str) -> list[Alert]:
    """The entity's waiting, not-muted alerts with their risk, highest first (all pages)."""
    f = AlertFilter(state=WAITING, entity_id=entity_id, suppressed=False)
    out: list[Alert] = []
    cursor: str | None = None
    while True:
        page = store.page(f, limit=_PAGE, sort="risk", cursor=cursor, with_total=False)
        out += page.items
        cursor = page.next_cursor
        if cursor is None:
            return out


def _check_line(alert: Alert, site_name: str) -> str:
    item = f", item {alert.item_code}" if alert.item_code else ""
    what = alert.metric or alert.rule_id
    return (
        f"{alert.department}: {what} at {site_name} ({alert.site}/{alert.device},"
        f" rule {alert.rule_id}{item})"
    )


def build_proposal(
    entity_id: str,
    alerts: Sequence[Alert],
    registry: Registry | None = None,
    department: str | None = None,
) -> JointProposal | None:
    """The proposal for one entity's waiting alerts, or ``None`` when there are too few.

    Pure: ``alerts`` are the entity's waiting, not-muted alerts in all departments; with
    ``department`` only that department's are shown (the others counted in ``withheld``) and
    there is no proposal unless at least one is of ``department``.
    """
    if len(alerts) < MIN_ALERTS:
        return None
    shown = [a for a in alerts if department is None or a.department == department]
    if not shown:
        return None
    withheld: dict[str, int] = defaultdict(int)
    for a in alerts:
        if department is not None and a.department != department:
            withheld[a.department] += 1
    by_group: dict[tuple[str, str], list[Alert]] = defaultdict(list)
    for a in shown:
        by_group[(a.department, a.site)].append(a)
    entity_name = ""
    groups: list[JointGroup] = []
    checks: list[str] = []
    for (dept, site_id), members in sorted(by_group.items()):
        site = registry.get(site_id) if registry is not None else None
        site_name = site.name if site is not None else site_id
        if site is not None and site.entity_name and not entity_name:
            entity_name = site.entity_name
        members.sort(key=lambda a: (-(a.risk or {}).get("score", 0.0), a.id))
        groups.append(
            JointGroup(site=site_id, site_name=site_name, department=dept, alerts=tuple(members))
        )
        seen: set[tuple[str, str]] = set()
        for a in members:
            key = (a.metric, a.rule_id)
            if key not in seen:
                seen.add(key)
                checks.append(_check_line(a, site_name))
    total = sum(float((a.risk or {}).get("score", 0.0)) for a in shown)
    return JointProposal(
        entity_id=entity_id,
        entity_name=entity_name,
        groups=tuple(groups),
        total_risk=total,
        checks=tuple(checks),
        alert_count=len(alerts),
        withheld=tuple(sorted(withheld.items())),
        departments=tuple(sorted({a.department for a in alerts})),
        # The sites shown only: another department's site ids are its records, not this one's.
        sites=tuple(sorted({a.site for a in shown})),
    )


def proposals(
    store: AlertStore, department: str | None = None, registry: Registry | None = None
) -> list[JointProposal]:
    """Joint-inspection proposals, highest total risk first.

    Parameters
    ----------
    store : AlertStore
        The risk queue.
    department : str, optional
        Only entities with a waiting alert of this department, showing that department's alerts
        (other departments' are counted, not shown: a department reads only its own records).
        ``None``: every entity, every alert.
    registry : Registry, optional
        Gives entity and site names; without it names are the codes and ids.
    """
    out = []
    for entity_id in entities_with_waiting(store.db, WAITING, MIN_ALERTS):
        p = build_proposal(entity_id, _waiting(store, entity_id), registry, department)
        if p is not None:
            out.append(p)
    out.sort(key=lambda p: (-p.total_risk, p.entity_id))
    return out


def new_visit_id() -> str:
    """A fresh visit id (``JV-`` and 16 hex digits)."""
    return f"JV-{uuid.uuid4().hex[:16]}"


def dispatch_visit(
    store: AlertStore,
    entity_id: str,
    alert_ids: Iterable[int],
    actor: str,
    note: str,
    team: str,
    inspector: str,
    due: str | date,
    department_scope: str | None = None,
    visit_id: str | None = None,
) -> str:
    """Dispatch several alerts of one entity as one on-site visit, all or none.

    In one transaction, each alert is dispatched (``transition_in``: team, inspector, due) and a
    ``joint_visit`` event records the visit id and the visit's alerts; the visit id is also
    kept in the alert's ``handling["dispatch"]["visit"]``.

    Parameters
    ----------
    store : AlertStore
        The risk queue.
    entity_id : str
        The entity visited; every alert must be of it.
    alert_ids : iterable of int
        The alerts to dispatch, at least one, no repeats.
    actor, note : str
        Who dispatches and why (the note is recorded on every alert).
    team, inspector : str
        Who goes.
    due : str or date
        Due date of the visit, ``YYYY-MM-DD``.
    department_scope : str, optional
        The actor's department: only alerts of it may be included. ``None``: province-wide.
    visit_id : str, optional
        Default a new one (:func:`new_visit_id`).

    Returns
    -------
    str
        The visit id.

    Raises
    ------
    ValueError
        No alerts, repeated ids, an alert of another entity, empty team or inspector, bad date.
    NotFoundError
        An alert does not exist.
    ScopeError
        An alert is of another department than ``department_scope``.
    TransitionError
        An alert cannot be dispatched from its state (nothing is dispatched).
    """
    ids = [int(i) for i in alert_ids]
    if not ids:
        raise ValueError("a visit needs at least one alert")
    if len(set(ids)) != len(ids):
        raise ValueError("an alert is listed twice")
    if not str(team or "").strip() or not str(inspector or "").strip():
        raise ValueError("a visit needs a team and an inspector")
    if not str(note or "").strip():
        raise ValueError("a visit needs a note saying why")
    try:
        due_s = (due if isinstance(due, date) else date.fromisoformat(str(due))).isoformat()
    except ValueError:
        raise ValueError(f"due {due!r} is not a date (YYYY-MM-DD)") from None
    visit = visit_id or new_visit_id()
    now = to_epoch_ms(store.clock.now())
    with store.db.transaction() as c:
        rows = store.heads_in(c, ids)
        for aid in ids:
            r = rows.get(aid)
            if r is None:
                raise NotFoundError(f"no alert {aid}")
            if r["entity_id"] != entity_id:
                raise ValueError(f"alert {aid} is of entity {r['entity_id']!r}, not {entity_id!r}")
            if department_scope is not None and r["department"] != department_scope:
                raise ScopeError(
                    f"alert {aid} is of department {r['department']!r}; "
                    f"a {department_scope!r} visit can include only its own department's alerts"
                )
        for aid in ids:
            state = rows[aid]["state"]
            if state not in WAITING:
                raise TransitionError(
                    f"alert {aid} is {state}; a visit dispatches alerts that are"
                    f" {' or '.join(WAITING)}"
                )
            store.transition_in(
                c,
                aid,
                "dispatch",
                actor,
                note,
                {"team": team, "inspector": inspector, "due": due_s, "visit": visit},
                now,
            )
            handling = store.handling_in(c, aid)
            handling.setdefault("dispatch", {})["visit"] = visit
            # record() joins this transaction: the visit event and its audit entry commit with the
            # dispatches.
            store.record(
                aid,
                actor,
                VISIT_ACTION,
                note,
                data={
                    "visit": visit,
                    "entity_id": entity_id,
                    "alerts": ids,
                    "team": team,
                    "inspector": inspector,
                    "due": due_s,
                },
                changes={"handling": json.dumps(handling, ensure_ascii=False)},
            )
    log.info(
        "joint visit dispatched",
        extra=kv(
            visit=visit,
            entity=entity_id,
            alerts=",".join(map(str, ids)),
            user=actor,
            department=department_scope or "*",
        ),
    )
    return visit
