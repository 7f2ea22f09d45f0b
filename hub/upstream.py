"""The provincial hub's rejections of upstream records, shown to the department and corrected.

- ``GET /api/upstream/rejections?status=&department=``: records the provincial hub refused for
  their quality (``alerts/schemas/upstream-rejection.schema.json``), newest first, each with the
  record as sent, the errors, and any correction; viewer, scoped to the token's department.
- ``POST /api/upstream/rejections/{rejection_id}/correct``: a supervisor replaces fields of the
  record (JSON Pointer -> value); the original stays on the rejection, the correction is an
  entry of the audit chain, and the outbox pushes the corrected record again. Its ``/alert/...``
  fields stand for the alert's later records (the alert row keeps its own values: see
  :mod:`alerts.upstream_rejections`). Another department's rejection is answered 404, like a
  missing one.

The dashboard's 上报退回 Rejections tab (``hub/static/rejections.js``) is built on these two.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from alerts.upstream_rejections import (
    MAX_FIELDS,
    CorrectionError,
    RejectionStateError,
    correct,
    get_rejection,
    list_rejections,
)
from farsight.errors import NotFoundError
from farsight.logs import kv
from hub.access import needs
from hub.auth import ID_MAX, Principal, Role
from hub.context import HubContext
from hub.deps import context, scoped_department

log = logging.getLogger(__name__)

router = APIRouter()


class CorrectionIn(BaseModel):
    """A correction of a rejected record."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, Any] = Field(
        ...,
        title="Corrected fields",
        description="JSON Pointer (RFC 6901) into the record as sent -> its corrected value."
        " Only existing values are replaced; a value keeps its JSON type (or becomes null);"
        " the record's identity (/source, /event/id, /event/key, /alert/id) is not corrected.",
        min_length=1,
        max_length=MAX_FIELDS,
        examples=[{"/alert/value": 50.0}],
    )
    note: str = Field(
        ...,
        title="Note",
        description="Why the values are corrected (kept with the correction and in the audit).",
        min_length=1,
        max_length=2000,
    )


@router.get(
    "/api/upstream/rejections",
    tags=["upstream"],
    responses={
        401: {"description": "Missing, unknown or revoked token."},
        403: {"description": "A department token asked for another department."},
    },
)
def list_upstream_rejections(
    principal: Annotated[Principal, Depends(needs(Role.VIEWER, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
    status: Annotated[
        Literal["open", "corrected"] | None,
        Query(description="open: waiting for a correction; corrected: pushed again."),
    ] = None,
    department: Annotated[
        str | None,
        Query(description="Only this department's (a department token: its own).", max_length=64),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Records the provincial hub rejected, newest first, with its errors and any correction;
    ``delivery`` is the outbox row's status now (dead: set aside, pending, sent)."""
    dept = scoped_department(principal, department)
    items = list_rejections(ctx.alerts.db, dept, status, limit)
    return {"items": [r.to_json() for r in items], "count": len(items)}


@router.post(
    "/api/upstream/rejections/{rejection_id}/correct",
    tags=["upstream"],
    responses={
        401: {"description": "Missing, unknown, expired or revoked token."},
        403: {"description": "The role is below supervisor."},
        404: {"description": "No such rejection, or one of another department (the same answer)."},
        409: {"description": "Corrected already, or the record is no longer set aside."},
        422: {"description": "A field that cannot be corrected: the message names it and why."},
    },
)
def correct_upstream_rejection(
    rejection_id: Annotated[int, Path(ge=1, le=ID_MAX, description="Rejection id.")],
    body: CorrectionIn,
    principal: Annotated[Principal, Depends(needs(Role.SUPERVISOR))],
    ctx: Annotated[HubContext, Depends(context)],
) -> dict[str, Any]:
    """Correct a rejected record by the token's user (audited) and queue it for the outbox."""
    try:
        rejection = get_rejection(ctx.alerts.db, rejection_id)
    except NotFoundError:
        raise HTTPException(404, f"no upstream rejection {rejection_id}") from None
    if principal.department is not None and rejection.department != principal.department:
        raise HTTPException(404, f"no upstream rejection {rejection_id}")
    try:
        fixed = correct(
            ctx.alerts.db,
            ctx.alerts.audit,
            rejection_id,
            body.fields,
            body.note,
            principal.user,
            ctx.alerts.clock.now(),
        )
    except CorrectionError as exc:
        raise HTTPException(422, str(exc)) from None
    except RejectionStateError as exc:
        raise HTTPException(409, str(exc)) from None
    log.info(
        "upstream record corrected",
        extra=kv(rejection=rejection_id, key=fixed.key, user=principal.user),
    )
    return fixed.to_json()
