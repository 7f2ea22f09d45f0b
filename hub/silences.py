"""Silence endpoints: list, create and expire silences (``/api/silences``).

Department scoping (decided here): a department token may only silence alerts of its own
department. Its silence's matchers therefore always pin ``department`` to the token's
department: when the posted matchers do not name ``department`` the hub adds
``department: <own>`` (the response shows the stored matchers); a ``department`` matcher that
is a regex or names another department is refused with 403. It lists and expires only silences
pinned to its department. A province-wide token (no department) may silence anything.

Creating or expiring a silence re-evaluates the queue at once (the mute stage's tick), so the
effect shows without waiting for the ingest worker's next tick. Every create and expire is in
the audit log with the token's user as actor.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from alerts.matchers import MatcherError, parse_matchers, pinned, to_dict
from alerts.mute import MuteStage
from alerts.silences import Silence, SilenceError, SilenceStore
from farsight.errors import NotFoundError
from farsight.logs import kv
from hub.access import needs
from hub.auth import ID_MAX, Principal, Role
from hub.context import HubContext
from hub.deps import context, scoped_department

log = logging.getLogger(__name__)

router = APIRouter()


class SilenceIn(BaseModel):
    """A new silence."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[str, Any] = Field(
        ...,
        description="Label matchers {label: value | '~regex'} (full match); all must match. A"
        " regex is RE2 syntax, at most 256 characters: no backreferences, lookahead or"
        " lookbehind; \\d \\w \\s are ASCII only (use \\p{Han}, \\p{L}, \\p{N}).",
        examples=[{"site": "yc-aq-1", "metric": "~pm.*"}],
    )
    starts_at: AwareDatetime | None = Field(
        None, description="Start, ISO 8601 with UTC offset (default: now)."
    )
    ends_at: AwareDatetime = Field(
        ..., description="End, ISO 8601 with UTC offset; at most 90 days after the start."
    )
    reason: str = Field(..., description="Why these alerts may be muted.", max_length=2000)


def silence_store(ctx: Annotated[HubContext, Depends(context)]) -> SilenceStore:
    """The hub's silence store, on the alert store's database and audit chain."""
    return ctx.pipeline.silences


def mute_stage(ctx: Annotated[HubContext, Depends(context)]) -> MuteStage:
    """The hub's mute stage: a new or expired silence re-evaluates the alerts it covers."""
    return ctx.pipeline.mute


def _visible(principal: Principal, s: Silence) -> bool:
    return principal.department is None or s.department == principal.department


def _scoped_matchers(principal: Principal, ctx: HubContext, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        ms = parse_matchers(raw)
    except MatcherError as exc:
        raise HTTPException(422, str(exc)) from None
    dept = pinned(ms, "department")
    named = any(m.label == "department" for m in ms)
    if principal.department is not None:
        if not named:
            return {**to_dict(ms), "department": principal.department}
        if dept != principal.department:
            raise HTTPException(
                403,
                f"token of department {principal.department!r} may only silence its own"
                " department's "
                f"alerts: matcher 'department' must be {principal.department!r}, got"
                f" {raw.get('department')!r}",
            )
    elif dept is not None and dept not in ctx.registry.departments:
        raise HTTPException(
            422,
            f"matcher 'department': unknown department {dept!r}; known:"
            f" {', '.join(ctx.registry.departments)}",
        )
    return to_dict(ms)


@router.get(
    "/api/silences",
    tags=["silences"],
    responses={
        401: {"description": "Missing, unknown or revoked token."},
        403: {"description": "A department token asked for another department."},
    },
)
def list_silences(
    principal: Annotated[Principal, Depends(needs(Role.VIEWER, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
    silences: Annotated[SilenceStore, Depends(silence_store)],
    status: Annotated[
        Literal["pending", "active", "expired"] | None,
        Query(description="Only silences in this status now."),
    ] = None,
    department: Annotated[
        str | None,
        Query(description="Only silences pinned to this department (a department token: its own)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Silences, newest first, with their status now."""
    dept = scoped_department(principal, department)
    now = ctx.alerts.clock.now()
    items = silences.list(status, now=now, department=dept, limit=limit)
    return {"items": [s.to_dict(now) for s in items], "count": len(items)}


@router.post(
    "/api/silences",
    status_code=201,
    tags=["silences"],
    responses={
        401: {"description": "Missing, unknown, expired or revoked token."},
        403: {
            "description": "A department token tried to silence another department's alerts, or"
            " the role is below supervisor."
        },
        422: {
            "description": "Bad matchers (the message names the label; a regex RE2 refuses says"
            " why and what RE2 lacks), times or reason."
        },
    },
)
def create_silence(
    body: SilenceIn,
    principal: Annotated[Principal, Depends(needs(Role.SUPERVISOR))],
    ctx: Annotated[HubContext, Depends(context)],
    silences: Annotated[SilenceStore, Depends(silence_store)],
    stage: Annotated[MuteStage, Depends(mute_stage)],
) -> dict[str, Any]:
    """Create a silence by the token's user; matching alerts are muted at once."""
    matchers = _scoped_matchers(principal, ctx, body.matchers)
    try:
        s = silences.create(matchers, body.starts_at, body.ends_at, body.reason, principal.user)
    except SilenceError as exc:
        raise HTTPException(422, str(exc)) from None
    muted = stage.tick()
    log.info("silence created", extra=kv(silence=s.id, user=principal.user, muted=len(muted)))
    return {**s.to_dict(ctx.alerts.clock.now()), "changed_alerts": [a.id for a in muted]}


@router.delete(
    "/api/silences/{silence_id}",
    tags=["silences"],
    responses={
        401: {"description": "Missing, unknown, expired or revoked token."},
        403: {
            "description": "The silence belongs to another department, or the role is below"
            " supervisor."
        },
        404: {"description": "No such silence."},
        409: {"description": "The silence has already expired."},
    },
)
def expire_silence(
    silence_id: Annotated[int, Path(ge=1, le=ID_MAX, description="Silence id.")],
    principal: Annotated[Principal, Depends(needs(Role.SUPERVISOR))],
    ctx: Annotated[HubContext, Depends(context)],
    silences: Annotated[SilenceStore, Depends(silence_store)],
    stage: Annotated[MuteStage, Depends(mute_stage)],
) -> dict[str, Any]:
    """Expire a silence early (audited with the token's user); its alerts are unmuted at once."""
    try:
        s = silences.get(silence_id)
    except NotFoundError:
        raise HTTPException(404, f"no silence {silence_id}") from None
    if not _visible(principal, s):
        raise HTTPException(
            403, f"silence {silence_id} is not of department {principal.department!r}"
        )
    try:
        s = silences.expire(silence_id, principal.user)
    except SilenceError as exc:
        raise HTTPException(409, str(exc)) from None
    changed = stage.tick()
    log.info("silence expired", extra=kv(silence=s.id, user=principal.user, unmuted=len(changed)))
    now: datetime = ctx.alerts.clock.now()
    return {**s.to_dict(now), "changed_alerts": [a.id for a in changed]}
