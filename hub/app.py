"""The hub's FastAPI app: REST API, live stream, metrics and the dashboard.

Endpoints are plain ``def`` functions where they touch SQLite, so FastAPI runs them in its thread
pool and a slow query never blocks the event loop that serves the live stream.
"""

from __future__ import annotations

import base64
import csv
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Cookie, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
)
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from alerts.model import ACTIVITIES, STATES, Alert
from alerts.outbox import start_senders
from alerts.pipeline import build_alert_pipeline
from alerts.store import SORTS, AlertFilter, AlertStore, CursorError
from farsight.db import redact
from farsight.errors import AuthError, FarsightError, NotFoundError, StoreError, TransitionError
from farsight.evidence import EvidenceLedger
from farsight.logs import kv
from farsight.registry import Registry
from farsight.settings import Settings
from farsight.types import SEVERITIES, Site
from hub.access import check_routes, declare_responses, needs
from hub.auth import ID_MAX, Principal, Role, TokenStore
from hub.context import HubContext
from hub.deps import SESSION_COOKIE, WWW_AUTH, context, scoped_department
from hub.docs import install_docs
from hub.evidence import may_cite
from hub.ratelimit import FailureLimiter, LimitPolicy
from hub.schemas import (
    AckRequest,
    ActionRequest,
    AlertDetail,
    AlertOut,
    AlertPage,
    CloseRequest,
    CommentRequest,
    DeadLetterPage,
    DispatchRequest,
    HealthOut,
    ReopenRequest,
    SeriesOut,
    SiteOut,
    StatsOut,
    VerifyRequest,
)
from hub.security import SecurityHeaders, refuse_nul
from hub.stream import StreamHub
from ingest.store import DeadLetter, ReadingStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
RANGE_MAX = timedelta(days=31)
"""Longest time range one readings request may cover (bounds the work of one query)."""
RANGE_DEFAULT = timedelta(hours=1)
SERIES_MAX = 10_000
"""Most points one readings response carries; downsample to see more."""
PREVIEW_CHARS = 200
NOT_CLOSED = ("new", "acknowledged", "dispatched", "verified")

DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src"
    " 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The dashboard loads only its own files: a CSP that says so stops injected content phoning out."""


_ctx = context

AlertId = Annotated[
    int, PathParam(ge=1, le=ID_MAX, description="Alert id (a positive 64-bit integer).")
]

# The role each route needs (hub.access.ROUTES says the same, and create_app holds them equal).
READ = needs(Role.VIEWER, cookie=True)
"""Reads: any role, by bearer token or session cookie."""


# -- helpers -----------------------------------------------------------------------------------


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(422, message)


def _parse_time(raw: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with its UTC offset; naive times are refused (their zone would be a
    guess)."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    # An unescaped '+' in a query string arrives as a space: "08:00:00 08:00" means "+08:00".
    if "T" in text and " " in text:
        text = text.replace(" ", "+")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise _unprocessable(
            f"{name}={raw!r} is not an ISO 8601 time (e.g. 2026-11-25T08:00:00+08:00)"
        ) from None
    if ts.tzinfo is None:
        raise _unprocessable(f"{name}={raw!r} has no UTC offset; add one, e.g. +08:00 or Z")
    return ts.astimezone(UTC)


def _check_department(ctx: HubContext, department: str | None) -> None:
    if department is not None and department not in ctx.registry.departments:
        raise _unprocessable(
            f"unknown department {department!r}; known: {', '.join(ctx.registry.departments)}"
        )


def _site_or_404(ctx: HubContext, site_id: str) -> Site:
    site = ctx.registry.get(site_id)
    if site is None:
        raise HTTPException(404, f"no site {site_id!r}")
    return site


def _site_readable(ctx: HubContext, principal: Principal, site_id: str) -> Site:
    """The site, or the same 404 as for a missing one when it is another department's."""
    site = _site_or_404(ctx, site_id)
    if not principal.may_act_for(site.department):
        log.info(
            "foreign site refused",
            extra=kv(site=site_id, user=principal.user, department=principal.department),
        )
        raise HTTPException(404, f"no site {site_id!r}")
    return site


def _stream_scope(ctx: HubContext, principal: Principal) -> Callable[[Any], bool] | None:
    """The live-stream filter of a department's token: its sites' readings, its alerts."""
    dept = principal.department
    if dept is None:
        return None
    sites = {s.id for s in ctx.registry.for_department(dept)}

    def accept(msg: Any) -> bool:
        data = msg.data if isinstance(msg.data, dict) else {}
        if msg.event == "alert":
            return data.get("department") == dept
        if msg.event == "reading":
            return data.get("site") in sites
        return True

    return accept


def _alert_readable(ctx: HubContext, principal: Principal, alert_id: int) -> Alert:
    """The alert, or for another department's the same 404 (same body) as for a missing one:
    nothing tells a department that the alert exists or whose it is."""
    alert = ctx.alerts.get(alert_id)
    if not principal.may_act_for(alert.department):
        log.info(
            "foreign alert refused",
            extra=kv(alert=alert_id, user=principal.user, department=principal.department),
        )
        raise NotFoundError(f"no alert {alert_id}")
    return alert


def _with_age(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**row, "age_s": round((now - datetime.fromisoformat(row["ts"])).total_seconds(), 3)}


def _site_dict(
    site: Site, latest: list[dict[str, Any]], open_alerts: int, now: datetime
) -> dict[str, Any]:
    return {
        "id": site.id,
        "name": site.name,
        "department": site.department,
        "city": site.city,
        "kind": site.kind,
        "entity_id": site.entity_id,
        "entity_name": site.entity_name,
        "item_code": site.item_code,
        "credit_grade": site.credit_grade,
        "location": {"lon": site.location.lon, "lat": site.location.lat},
        "limits": dict(site.limits),
        "tags": list(site.tags),
        "devices": [
            {
                "id": d.id,
                "kind": d.kind,
                "metrics": list(d.metrics),
                "protocol": d.protocol,
                "cadence_s": d.cadence_s,
            }
            for d in site.devices
        ],
        "open_alerts": open_alerts,
        "latest": [_with_age(r, now) for r in latest],
    }


def _open_alerts(ctx: HubContext, site_id: str) -> int:
    # limit=0 asks only for the total: one indexed count per site.
    return ctx.alerts.list(AlertFilter(state=NOT_CLOSED, site=site_id), limit=0)[1]


def _preview(payload: bytes) -> str:
    """Printable start of a payload: undecodable bytes and control characters shown as '.'."""
    text = payload[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:PREVIEW_CHARS]
    return "".join(c if c.isprintable() and c != "\ufffd" else "." for c in text)


def _dead_letter_dict(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "received": d.received.isoformat(),
        "topic": d.topic,
        "codec": d.codec,
        "reason": d.reason,
        "detail": d.detail,
        "size": len(d.payload),
        "payload_b64": base64.b64encode(d.payload).decode("ascii"),
        "preview": _preview(d.payload),
    }


# -- the API -----------------------------------------------------------------------------------

router = APIRouter()


@router.get("/healthz", response_model=HealthOut, tags=["ops"])
def healthz(ctx: HubContext = Depends(_ctx)) -> Any:
    """Liveness and database reachability."""
    try:
        ctx.readings.max_id()
        ctx.alerts.max_event_id()
    except FarsightError as exc:
        return JSONResponse({"status": "error", "db": str(exc)}, status_code=503)
    return {"status": "ok", "db": "ok"}


@router.get("/api/sites", response_model=list[SiteOut], tags=["sites"])
def list_sites(
    department: str | None = Query(None, description="Only sites of this department."),
    principal: Principal = Depends(READ),
    ctx: HubContext = Depends(_ctx),
) -> Any:
    """Sites with their devices, limits, open alert count and newest readings (a department's
    token: its own sites)."""
    _check_department(ctx, department)
    department = scoped_department(principal, department)
    sites = ctx.registry.for_department(department)
    by_site: dict[str, list[dict[str, Any]]] = {}
    for row in ctx.readings.latest():
        by_site.setdefault(row["site"], []).append(row)
    now = datetime.now(UTC)
    return [_site_dict(s, by_site.get(s.id, []), _open_alerts(ctx, s.id), now) for s in sites]


@router.get("/api/sites/{site_id}", response_model=SiteOut, tags=["sites"])
def get_site(
    site_id: str, principal: Principal = Depends(READ), ctx: HubContext = Depends(_ctx)
) -> Any:
    """One site."""
    site = _site_readable(ctx, principal, site_id)
    return _site_dict(
        site, ctx.readings.latest(site.id), _open_alerts(ctx, site.id), datetime.now(UTC)
    )


@router.get("/api/readings", response_model=SeriesOut, tags=["readings"])
def get_readings(
    site: str = Query(description="Site id."),
    metric: str = Query(description="Metric name, e.g. pm25.", min_length=1, max_length=64),
    start: str | None = Query(
        None,
        alias="from",
        description="ISO 8601 start with UTC offset; default `to` minus one hour.",
    ),
    end: str | None = Query(
        None, alias="to", description="ISO 8601 end with UTC offset; default now."
    ),
    interval: float | None = Query(
        None,
        ge=1,
        le=RANGE_MAX.total_seconds(),
        description="Bucket width in seconds: average on the server.",
    ),
    device: str | None = Query(None, description="Only this device."),
    principal: Principal = Depends(READ),
    ctx: HubContext = Depends(_ctx),
) -> Any:
    """A time series of one site and metric, raw or averaged into buckets."""
    t_end = _parse_time(end, "to") or datetime.now(UTC)
    t_start = _parse_time(start, "from") or (t_end - RANGE_DEFAULT)
    if t_start >= t_end:
        raise _unprocessable(
            f"from ({t_start.isoformat()}) must be before to ({t_end.isoformat()})"
        )
    if t_end - t_start > RANGE_MAX:
        raise _unprocessable(
            f"range {t_end - t_start} is longer than {RANGE_MAX.days} days; request less or in"
            " parts"
        )
    _site_readable(ctx, principal, site)
    points = ctx.readings.series(
        site, metric, t_start, t_end, interval_s=interval, device=device, limit=SERIES_MAX + 1
    )
    return {
        "site": site,
        "metric": metric,
        "from": t_start.isoformat(),
        "to": t_end.isoformat(),
        "interval": interval,
        "points": points[:SERIES_MAX],
        "truncated": len(points) > SERIES_MAX,
    }


@router.get("/api/alerts", response_model=AlertPage, tags=["alerts"])
def list_alerts(
    state: list[str] | None = Query(
        None, description=f"Repeat or comma-separate: {', '.join(STATES)}."
    ),
    activity: str | None = Query(None, description=f"One of {', '.join(ACTIVITIES)}."),
    department: str | None = Query(None),
    site: str | None = Query(None),
    severity: str | None = Query(None, description=f"One of {', '.join(SEVERITIES)}."),
    rule_id: str | None = Query(None),
    entity: str | None = Query(
        None,
        description="Unified social credit code of the operator (统一社会信用代码).",
        max_length=18,
    ),
    start: str | None = Query(
        None, alias="from", description="Raised at or after this ISO 8601 time (with UTC offset)."
    ),
    end: str | None = Query(
        None, alias="to", description="Raised before this ISO 8601 time (with UTC offset)."
    ),
    q: str | None = Query(
        None,
        description="Text: case-insensitive part of the summary, site, rule, device or credit"
        " code.",
        max_length=200,
    ),
    muted: bool | None = Query(
        False,
        description="false (default): hide silenced and inhibited alerts; true: only those; omit"
        " with muted= to see both.",
    ),
    limit: int = Query(100, ge=0, description="Page size; capped at the configured page limit."),
    offset: int = Query(0, ge=0, le=2**31, description="Offset paging (prefer cursor)."),
    cursor: str | None = Query(
        None,
        description="next_cursor of the previous page: keyset paging, stable while alerts arrive.",
        max_length=2000,
    ),
    sort: str = Query(
        "risk",
        description=f"One of {', '.join(SORTS)}; risk (the default) puts the alerts that matter"
        " most first.",
    ),
    principal: Principal = Depends(READ),
    ctx: HubContext = Depends(_ctx),
) -> Any:
    """A page of the risk queue and the number of alerts matching the filters (a department's
    token sees its department's alerts; a province-wide token sees all)."""
    states = tuple(s.strip() for raw in (state or ()) for s in raw.split(",") if s.strip()) or None
    for s in states or ():
        if s not in STATES:
            raise _unprocessable(f"unknown state {s!r}; known: {', '.join(STATES)}")
    if activity is not None and activity not in ACTIVITIES:
        raise _unprocessable(f"unknown activity {activity!r}; known: {', '.join(ACTIVITIES)}")
    if severity is not None and severity not in SEVERITIES:
        raise _unprocessable(f"unknown severity {severity!r}; known: {', '.join(SEVERITIES)}")
    if sort not in SORTS:
        raise _unprocessable(f"unknown sort {sort!r}; known: {', '.join(SORTS)}")
    _check_department(ctx, department)
    department = scoped_department(principal, department)
    limit = min(limit, ctx.settings.hub.page_max)
    if cursor and offset:
        raise _unprocessable("give cursor or offset, not both")
    f = AlertFilter(
        state=states,
        activity=activity,
        department=department,
        site=site,
        severity=severity,
        rule_id=rule_id,
        entity_id=entity,
        since=_parse_time(start, "from"),
        until=_parse_time(end, "to"),
        text=q or None,
        suppressed=muted,
    )
    try:
        page = ctx.alerts.page(f, limit=limit, offset=offset, sort=sort, cursor=cursor)
    except CursorError as exc:
        raise _unprocessable(str(exc)) from None
    return {
        "items": [a.to_dict() for a in page.items],
        "total": page.total,
        "total_exact": page.total_exact,
        "limit": limit,
        "offset": offset,
        "next_cursor": page.next_cursor,
    }


EXPORT_MAX = 100_000
EXPORT_COLUMNS = (
    "id",
    "created",
    "department",
    "site",
    "device",
    "metric",
    "rule_id",
    "severity",
    "state",
    "activity",
    "entity_id",
    "item_code",
    "value",
    "threshold",
    "count",
    "summary",
)


class CSVResponse(PlainTextResponse):
    media_type = "text/csv"


@router.get("/api/alerts/export.csv", tags=["alerts"], response_class=CSVResponse)
def export_alerts(
    state: list[str] | None = Query(None, description="Repeat or comma-separate states."),
    department: str | None = Query(None),
    start: str | None = Query(None, alias="from"),
    end: str | None = Query(None, alias="to"),
    principal: Principal = Depends(needs(Role.SUPERVISOR, cookie=True)),
    ctx: HubContext = Depends(_ctx),
) -> PlainTextResponse:
    """The filtered queue as CSV (UTF-8 with BOM for spreadsheet programs); every export is
    recorded in the audit log with who, what filter and how many rows."""
    states = tuple(s.strip() for raw in (state or ()) for s in raw.split(",") if s.strip()) or None
    for s_ in states or ():
        if s_ not in STATES:
            raise _unprocessable(f"unknown state {s_!r}; known: {', '.join(STATES)}")
    _check_department(ctx, department)
    department = scoped_department(principal, department)
    f = AlertFilter(
        state=states,
        department=department,
        since=_parse_time(start, "from"),
        until=_parse_time(end, "to"),
    )
    page = ctx.alerts.page(f, limit=EXPORT_MAX, sort="oldest", with_total=False)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(EXPORT_COLUMNS)
    for a in page.items:
        d = a.to_dict()
        # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
        w.writerow(
            [
                "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
                for v in (d[c] for c in EXPORT_COLUMNS)
            ]
        )
    ctx.alerts.audit.append(
        principal.user,
        "export",
        "alerts",
        {
            "format": "csv",
            "rows": len(page.items),
            "department": department,
            "states": list(states or ()),
            "from": start,
            "to": end,
        },
    )
    log.info(
        "alerts exported",
        extra=kv(user=principal.user, rows=len(page.items), department=department or "*"),
    )
    return PlainTextResponse(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="alerts.csv"'},
    )


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such alert, or one of another department (the same answer)."}
}


@router.get(
    "/api/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"], responses=_NOT_FOUND
)
def get_alert(
    alert_id: AlertId, principal: Principal = Depends(READ), ctx: HubContext = Depends(_ctx)
) -> Any:
    """One alert and its history, oldest first."""
    alert = _alert_readable(ctx, principal, alert_id)
    return {"alert": alert.to_dict(), "events": [e.to_dict() for e in ctx.alerts.events(alert_id)]}


@router.get("/api/alerts/{alert_id}/timeline", tags=["alerts"], responses=_NOT_FOUND)
def alert_timeline(
    alert_id: AlertId, principal: Principal = Depends(READ), ctx: HubContext = Depends(_ctx)
) -> Any:
    """Every step of the alert (rules' events, transitions, comments, evidence) with the audit
    entry that seals it: its sequence number and hash in the tamper-evident chain."""
    alert = _alert_readable(ctx, principal, alert_id)
    return {
        "alert": alert.to_dict(),
        "evidence": list(alert.evidence),
        "timeline": ctx.alerts.timeline(alert_id),
    }


_SESSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown, expired or revoked token."},
    429: {"description": "Too many failed sign-ins from this address or for this user."},
}


@router.post("/api/session", tags=["auth"], status_code=204, responses=_SESSION_RESPONSES)
def login(
    request: Request,
    principal: Principal = Depends(needs(Role.VIEWER)),
    ctx: HubContext = Depends(_ctx),
) -> Response:
    """Start a browser session from a bearer token: an HttpOnly cookie holding a session of its
    own, for reads and the live stream (changes still need the bearer token). It ends after
    ``hub.session_ttl_h`` hours, with its token, or at logout. Recorded in the audit log."""
    token, ends = ctx.tokens.start_session(principal)
    ctx.alerts.audit.append(
        principal.user,
        "login",
        f"user:{principal.user}",
        {"department": principal.department, "role": principal.role.value},
    )
    log.info(
        "login",
        extra=kv(
            user=principal.user,
            department=principal.department or "*",
            role=principal.role.value,
            ends=ends.isoformat(timespec="seconds"),
        ),
    )
    resp = Response(status_code=204)
    max_age = max(1, int((ends - datetime.now(UTC)).total_seconds()))
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        max_age=max_age,
        # Over HTTPS (the hub's own TLS, or a trusted proxy's X-Forwarded-Proto) the browser must
        # never send it over plain HTTP.
        secure=request.url.scheme == "https",
    )
    return resp


@router.delete("/api/session", tags=["auth"], status_code=204, responses=_SESSION_RESPONSES)
def logout(
    request: Request,
    principal: Principal = Depends(READ),
    ctx: HubContext = Depends(_ctx),
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> Response:
    """End the browser session: the session in the cookie is revoked at once (the API token it
    was started from stays valid) and the cookie deleted. Recorded in the audit log."""
    ended = ctx.tokens.end_session(session) if session else False
    ctx.alerts.audit.append(
        principal.user, "logout", f"user:{principal.user}", {"session_ended": ended}
    )
    resp = Response(status_code=204)
    resp.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return resp


def _citable(ctx: HubContext, principal: Principal, alert: Alert, data: dict[str, Any]) -> None:
    """Refuse (422, naming the hash) evidence the step may not cite: a file that does not exist,
    or one the actor's or the alert's department may not read."""
    for sha in data.get("evidence") or ():
        if not may_cite(ctx, principal, alert.department, sha):
            log.warning(
                "evidence citation refused",
                extra=kv(alert=alert.id, user=principal.user, evidence=sha),
            )
            raise HTTPException(
                422,
                f"evidence {sha}: no such file that department {alert.department!r} may use;"
                " upload it first (POST /api/evidence)",
            )


def _transition(
    ctx: HubContext,
    principal: Principal,
    alert_id: int,
    action: str,
    note: str,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    alert = _alert_readable(ctx, principal, alert_id)
    if data:
        _citable(ctx, principal, alert, data)
    updated = ctx.alerts.transition(alert_id, action, actor=principal.user, note=note, data=data)
    log.info(
        "alert transition",
        extra=kv(
            alert=alert_id,
            action=action,
            user=principal.user,
            site=alert.site,
            rule=alert.rule_id,
            state=updated.state,
        ),
    )
    return updated.to_dict()


_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown, expired or revoked bearer token."},
    403: {"description": "The token's role cannot take this step."},
    404: {"description": "No such alert, or one of another department (the same answer)."},
    409: {"description": "Not allowed from the alert's state."},
    422: {"description": "Bad body, or evidence the step may not cite (the hash is named)."},
    429: {"description": "Too many failed sign-ins from this address or for this user."},
}

_ACTION_ROLES = {
    "ack": Role.OFFICER,
    "dispatch": Role.OFFICER,
    "verify": Role.OFFICER,
    "close": Role.OFFICER,
    "comment": Role.OFFICER,
    "reopen": Role.SUPERVISOR,
}
"""The role each handling step needs: reopening a closed case is a supervisor's decision."""


def _action_endpoint(action: str, body_model: type[ActionRequest], doc: str) -> None:
    def endpoint(
        alert_id: AlertId,
        body: ActionRequest,
        principal: Principal = Depends(needs(_ACTION_ROLES[action])),
        ctx: HubContext = Depends(_ctx),
    ) -> Any:
        return _transition(ctx, principal, alert_id, action, body.note, body.data())

    # FastAPI reads the body's model from the annotation: this action's own request class.
    endpoint.__annotations__["body"] = body_model
    endpoint.__name__ = f"{action}_alert"
    endpoint.__doc__ = doc
    router.post(
        f"/api/alerts/{{alert_id}}/{action}",
        response_model=AlertOut,
        tags=["alerts"],
        responses=_ACTION_RESPONSES,
    )(endpoint)


for _action, _model, _doc in (
    ("ack", AckRequest, "Acknowledge an open alert: someone is on it."),
    (
        "dispatch",
        DispatchRequest,
        "Dispatch on-site verification (核查): team, inspector, due date.",
    ),
    ("verify", VerifyRequest, "Record what the on-site verification found, with evidence hashes."),
    (
        "close",
        CloseRequest,
        (
            "Close with the disposal (case number, penalty, rectification, re-check date), or as"
            " a desk closure."
        ),
    ),
    ("reopen", ReopenRequest, "Reopen a closed alert, with the reason as the comment."),
    ("comment", CommentRequest, "Add a comment to the alert's history without changing its state."),
):
    _action_endpoint(_action, _model, _doc)


@router.get(
    "/api/dead-letters",
    response_model=DeadLetterPage,
    tags=["ops"],
    responses={403: {"description": "Not an admin's province-wide token."}},
)
def list_dead_letters(
    limit: int = Query(100, ge=1, le=2**31),
    reason: str | None = Query(None, max_length=64),
    principal: Principal = Depends(needs(Role.ADMIN, cookie=True, province_wide=True)),
    ctx: HubContext = Depends(_ctx),
) -> Any:
    """Rejected messages, newest first; needs an admin's province-wide token because payloads
    can hold any department's operators' data."""
    limit = min(limit, ctx.settings.hub.page_max)
    letters = ctx.readings.dead_letters(limit=limit, reason=reason)
    return {
        "items": [_dead_letter_dict(d) for d in letters],
        "total": ctx.readings.dead_letter_count(),
        "limit": limit,
    }


@router.get("/api/stats", response_model=StatsOut, tags=["ops"])
def stats(principal: Principal = Depends(READ), ctx: HubContext = Depends(_ctx)) -> Any:
    """Headline figures: sites, readings, not-closed alerts by severity and state, and live
    streams, all of the token's department (every department for a province-wide token);
    dead letters, which belong to no department, for province-wide tokens only."""
    dept = principal.department
    counts = ctx.alerts.counts(dept)
    sites = ctx.registry.for_department(dept)
    if dept is None:
        readings = ctx.readings.count()
        dead_letters: int | None = ctx.readings.dead_letter_count()
    else:
        readings = sum(ctx.readings.count(site=s.id) for s in sites)
        dead_letters = None
    return {
        "sites": len(sites),
        "readings": readings,
        "dead_letters": dead_letters,
        "alerts": {"severity": counts["severity"], "state": counts["state"]},
        "stream_subscribers": ctx.stream.count_where(
            lambda key: dept is None or (isinstance(key, tuple) and key[0] == dept)
        ),
    }


@router.get(
    "/api/stream",
    tags=["stream"],
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        429: {"description": "The token holds hub.streams_per_token streams already."},
    },
)
async def stream(
    request: Request, principal: Principal = Depends(READ), ctx: HubContext = Depends(_ctx)
) -> EventSourceResponse:
    """Live events: ``reading`` (a reading) and ``alert`` (the alert plus ``action`` and ``event``).

    Send ``Last-Event-ID`` (browsers do on reconnect) to be replayed what was missed; a
    ``reset`` event means too much was missed and the client should reload its data. One token
    (with the browser sessions started from it) holds at most ``hub.streams_per_token`` streams.
    """
    key = (principal.department, principal.token_id)
    cap = ctx.settings.hub.streams_per_token
    # No await between the count and the subscription in response(): no other request can
    # subscribe in between on this event loop.
    if ctx.stream.count_for(key) >= cap:
        log.warning(
            "stream refused", extra=kv(user=principal.user, token=principal.token_id, cap=cap)
        )
        raise HTTPException(
            429,
            f"this token has {cap} live streams open already; close one",
            headers={"Retry-After": str(max(1, round(ctx.stream.keepalive_s)))},
        )
    return ctx.stream.response(
        request.headers.get("last-event-id"), accept=_stream_scope(ctx, principal), key=key
    )


# -- error conversion --------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    """Farsight errors become HTTP errors with a JSON ``{"detail": ...}`` once, here."""

    def handler(
        status: int, headers: dict[str, str] | None = None
    ) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            if status >= 500:
                log.error(
                    "request failed",
                    extra=kv(path=request.url.path, error=type(exc).__name__, detail=str(exc)),
                )
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

        return handle

    app.add_exception_handler(NotFoundError, handler(404))
    app.add_exception_handler(TransitionError, handler(409))
    app.add_exception_handler(AuthError, handler(401, {"WWW-Authenticate": WWW_AUTH}))
    app.add_exception_handler(StoreError, handler(503))
    app.add_exception_handler(FarsightError, handler(500))


# -- assembly ----------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    registry: Registry,
    readings: ReadingStore | None = None,
    alerts: AlertStore | None = None,
    tokens: TokenStore | None = None,
) -> FastAPI:
    """Build the hub; stores not given are opened on ``settings.database`` and closed at shutdown.

    The live-stream poller runs for the app's lifespan.
    """
    owned: list[Any] = []
    if readings is None:
        readings = ReadingStore(settings.database)
        owned.append(readings)
    # Officers' steps through the API go through the same alert pipeline as the rules' signals:
    # the upstream outbox and the handling deadlines move in each step's transaction.
    pipeline = build_alert_pipeline(
        alerts if alerts is not None else settings.database, settings.alerts
    )
    owned.append(pipeline)
    hub = settings.hub
    if tokens is None:
        tokens = TokenStore(
            settings.database,
            registry.departments,
            ttl=timedelta(hours=hub.token_ttl_h),
            session_ttl=timedelta(hours=hub.session_ttl_h),
        )
        owned.append(tokens)
    stream_hub = StreamHub(readings, pipeline.store, poll_ms=hub.stream_poll_ms)
    ctx = HubContext(
        settings=settings,
        registry=registry,
        readings=readings,
        pipeline=pipeline,
        tokens=tokens,
        stream=stream_hub,
        limiter=FailureLimiter(
            LimitPolicy(
                failures=hub.auth_failures,
                window_s=hub.auth_window_s,
                lockout_s=hub.auth_lockout_s,
                tracked_max=hub.auth_tracked_max,
            )
        ),
        # On the alert store's connection (owned and closed by the pipeline).
        evidence=EvidenceLedger(pipeline.store.db),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        await stream_hub.start()
        upstream = settings.alerts.upstream
        senders = start_senders(settings.database, upstream) if upstream.url else None
        log.info(
            "hub started",
            extra=kv(
                db=redact(str(settings.database)),
                sites=len(registry),
                departments=",".join(registry.departments),
                upstream=redact(upstream.url) if upstream.url else "off",
            ),
        )
        try:
            yield
        finally:
            if senders is not None:
                await asyncio.to_thread(
                    senders.stop
                )  # waits for attempts in flight (at most the timeout)
            await stream_hub.stop()
            for store in owned:
                store.close()
            log.info("hub stopped")

    app = FastAPI(
        title="Farsight hub",
        version="0.1.0",
        description="Sites, readings and the alert risk queue of a Farsight installation, with a"
        " live event stream.",
        lifespan=lifespan,
        docs_url=None,  # the default page loads Swagger UI from a CDN; see _install_docs
        redoc_url=None,
        dependencies=[Depends(refuse_nul)],
    )
    app.state.hub = ctx
    app.state.stream = stream_hub
    from hub import evidence, handling, metrics, quality, reports, silences, upstream, views

    app.state.metrics = metrics.registry(ctx)
    _install_error_handlers(app)
    routers = [router] + [
        f.router for f in (reports, silences, handling, upstream, evidence, views, metrics, quality)
    ]
    for r in routers:
        app.include_router(r)
    install_docs(app)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": DASHBOARD_CSP,
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Every route has its rule in hub.access.ROUTES, the same its dependency checks, and its
    # description declares the refusals the rule gives.
    check_routes([*routers, app.router])
    declare_responses(routers)
    # Added last, run first: the proxy's client address and scheme before anything reads them.
    app.add_middleware(SecurityHeaders)
    if hub.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(hub.trusted_proxies))
    return app


class HubServer(uvicorn.Server):
    """uvicorn server that ends live streams before it waits for open responses.

    An SSE response never finishes by itself and uvicorn's graceful shutdown waits for every
    response to finish, so without this a connected dashboard would hold shutdown forever.
    """

    def __init__(self, config: uvicorn.Config, stream: StreamHub) -> None:
        super().__init__(config)
        self._stream = stream

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self._stream.close_all()
        await super().shutdown(sockets=sockets)


def make_server(app: FastAPI, host: str, port: int, **options: Any) -> HubServer:
    """A uvicorn server for a hub app; ``port=0`` takes a free port (see :func:`bound_port`).

    Serves HTTPS when the app's settings name a certificate and key (``hub.tls_certfile``,
    ``hub.tls_keyfile``). uvicorn's own proxy-header handling is off: by default it believes
    X-Forwarded-For from localhost, while the app believes only ``hub.trusted_proxies``.
    """
    config_kw: dict[str, Any] = {
        "log_config": None,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        "access_log": False,
        "proxy_headers": False,
    }
    hub_settings = app.state.hub.settings.hub
    if hub_settings.tls:
        config_kw["ssl_certfile"] = str(hub_settings.tls_certfile)
        config_kw["ssl_keyfile"] = str(hub_settings.tls_keyfile)
    config_kw.update(options)
    return HubServer(uvicorn.Config(app, host=host, port=port, **config_kw), app.state.stream)


def bound_port(server: uvicorn.Server) -> int:
    """The TCP port a started server listens on (useful with ``port=0``)."""
    for srv in server.servers:
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server is not listening yet")
