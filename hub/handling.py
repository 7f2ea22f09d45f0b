"""Handling endpoints: handling statistics (MTTA, MTTR) and joint inspections (进一次门、查多项事).

- ``GET /api/handling-stats?from=&to=&department=``: per-department figures of the alerts raised
  in a period (reader, scoped to the token's department).
- ``GET /api/joint-inspections?department=``: entities with several waiting alerts across their
  sites and departments (reader; a department token sees its own alerts and sites, and only how
  many alerts other departments have waiting).
- ``POST /api/joint-inspections/{entity_id}/dispatch``: dispatch chosen alerts as one visit, all
  or none (supervisor; a department token may include only its department's alerts, and another
  department's is answered 404 like a missing one).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.handling_stats import handling_stats
from alerts.joint import ScopeError, dispatch_visit, proposals
from alerts.report import check_range, default_range, parse_report_time, store_now
from farsight.errors import NotFoundError, TransitionError
from farsight.logs import kv
from hub.access import needs
from hub.auth import ID_MAX, Principal, Role
from hub.context import HubContext
from hub.deps import context, scoped_department

log = logging.getLogger(__name__)

router = APIRouter()

_READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked token."},
    403: {"description": "A department token asked for another department."},
    422: {"description": "Bad times or unknown department."},
}


def _department(ctx: HubContext, principal: Principal, requested: str | None) -> str | None:
    scope = scoped_department(principal, requested or None)
    if scope is not None and scope not in ctx.registry.departments:
        raise HTTPException(
            422, f"unknown department {scope!r}; known: {', '.join(ctx.registry.departments)}"
        )
    return scope


@router.get("/api/handling-stats", tags=["handling"], responses=_READ_RESPONSES)
def get_handling_stats(
    principal: Annotated[Principal, Depends(needs(Role.VIEWER, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            description="Start, ISO 8601 with UTC offset (default: 7 days before `to`).",
        ),
    ] = None,
    to: Annotated[
        str | None, Query(description="End (exclusive), ISO 8601 with UTC offset (default: now).")
    ] = None,
    department: Annotated[
        str | None,
        Query(description="Only this department (a department token reads only its own)."),
    ] = None,
) -> Any:
    """Alerts raised, taken up, closed and escalated, MTTA and MTTR (mean, median, p90 minutes)
    per department."""
    scope = _department(ctx, principal, department)
    try:
        start = parse_report_time(from_, "from") if from_ else None
        end = parse_report_time(to, "to") if to else None
        start, end = default_range(store_now(ctx.alerts), start, end)
        check_range(start, end)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return handling_stats(ctx.alerts, start, end, department=scope)


@router.get("/api/joint-inspections", tags=["handling"], responses=_READ_RESPONSES)
def list_joint_inspections(
    principal: Annotated[Principal, Depends(needs(Role.VIEWER, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
    department: Annotated[
        str | None, Query(description="Only entities with alerts of this department.")
    ] = None,
) -> Any:
    """Joint-inspection proposals: entities with two or more waiting alerts, highest total risk
    first."""
    scope = _department(ctx, principal, department)
    items = proposals(ctx.alerts, department=scope, registry=ctx.registry)
    return {"items": [p.to_dict() for p in items], "total": len(items), "department": scope}


class VisitRequest(BaseModel):
    """One joint visit: which alerts, who goes, by when, and why."""

    model_config = ConfigDict(extra="forbid")

    alert_ids: list[Annotated[int, Field(ge=1, le=ID_MAX)]] = Field(
        ..., min_length=1, max_length=200, description="Alerts of the entity to dispatch together."
    )
    team: str = Field(..., min_length=1, max_length=200, description="Team doing the visit.")
    inspector: str = Field(..., min_length=1, max_length=200, description="Inspector in charge.")
    due: date = Field(..., description="Due date of the visit, YYYY-MM-DD.")
    note: str = Field(
        ..., min_length=1, max_length=2000, description="Why: recorded on every alert."
    )

    @field_validator("team", "inspector", "note")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    @field_validator("alert_ids")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("an alert is listed twice")
        return v


@router.post(
    "/api/joint-inspections/{entity_id}/dispatch",
    tags=["handling"],
    responses={
        401: {"description": "Missing, unknown, expired or revoked token."},
        403: {"description": "The role is below supervisor."},
        404: {
            "description": "No such alert, or one of another department than the token's (the"
            " same answer)."
        },
        409: {
            "description": "An alert cannot be dispatched from its state; nothing was dispatched."
        },
        422: {"description": "Bad body, or an alert of another entity."},
    },
)
def dispatch_joint_visit(
    body: VisitRequest,
    principal: Annotated[Principal, Depends(needs(Role.SUPERVISOR))],
    ctx: Annotated[HubContext, Depends(context)],
    entity_id: Annotated[
        str,
        Path(min_length=1, max_length=64, description="Unified social credit code of the entity."),
    ],
) -> Any:
    """Dispatch the listed alerts of one entity as one on-site visit (all or none); returns the
    visit and the alerts."""
    if principal.department is not None:
        # Another department's alert is answered as a missing one, before anything else about it
        # (its entity, its state) can show in a refusal.
        for aid in body.alert_ids:
            try:
                foreign = ctx.alerts.get(aid).department != principal.department
            except NotFoundError:
                foreign = True
            if foreign:
                raise HTTPException(404, f"no alert {aid}")
    try:
        visit = dispatch_visit(
            ctx.alerts,
            entity_id,
            body.alert_ids,
            actor=principal.user,
            note=body.note,
            team=body.team,
            inspector=body.inspector,
            due=body.due,
            department_scope=principal.department,
        )
    except ScopeError as exc:
        # Checked above; an alert that moved department in between is refused the same way.
        log.warning(
            "joint visit refused",
            extra=kv(
                entity=entity_id,
                user=principal.user,
                token_department=principal.department,
                reason=str(exc),
            ),
        )
        raise HTTPException(404, "an alert of the visit does not exist") from None
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    alerts = [ctx.alerts.get(i).to_dict() for i in body.alert_ids]
    return {
        "visit": visit,
        "entity_id": entity_id,
        "team": body.team,
        "inspector": body.inspector,
        "due": body.due.isoformat(),
        "alerts": alerts,
    }
