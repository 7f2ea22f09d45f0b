"""Report endpoints: ``GET /api/reports/risk``, the risk warning report (风险预警报告) as an HTML
page.

The page is the same self-contained document ``farsight report risk`` writes, served with a CSP
that lets it load nothing but its inline styles, so a report can be opened from the dashboard,
saved and mailed without change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse

from alerts.report import (
    check_range,
    collect_risk_report,
    default_range,
    parse_report_time,
    render_risk_report_html,
    report_filename,
    store_now,
)
from farsight.errors import ConfigError
from farsight.logs import kv
from hub.access import needs
from hub.auth import Principal, Role
from hub.context import HubContext
from hub.deps import context, scoped_department

if TYPE_CHECKING:
    from farsight.settings import Settings

log = logging.getLogger(__name__)

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
"""The report needs nothing but its inline styles (and inline SVG, which is markup, not a load)."""

FROM_DOC = (
    "Start, ISO 8601 with UTC offset, e.g. 2026-11-01T00:00:00+08:00 (default: 7 days before `to`)."
)
TO_DOC = "End (exclusive), ISO 8601 with UTC offset (default: now)."
DEPARTMENT_DOC = (
    "Only this department; a department token reads only its own (default: its own, or all)."
)

router = APIRouter()


def _rule_kinds(settings: Settings) -> Mapping[str, str] | None:
    """``rule_id -> kind`` of the configured rules, read per request so a hot reload shows at once.

    A broken rule file must not block a report on alerts that exist: logged, and the report goes
    without kinds.
    """
    from rules.loader import load_ruleset

    try:
        return {
            r.id: r.kind for r in load_ruleset(settings.rules.files, settings.rules.default_pack)
        }
    except ConfigError as exc:
        log.warning("report without rule kinds: rules did not load", extra=kv(error=str(exc)))
        return None


@router.get(
    "/api/reports/risk",
    response_class=HTMLResponse,
    tags=["reports"],
    responses={
        401: {"description": "Missing, unknown, expired or revoked token."},
        403: {
            "description": "A department token asked for another department, or the role is"
            " below supervisor (a report is an export)."
        },
        422: {
            "description": "Bad times (ISO 8601 with offset, from before to, at most 366 days) "
            "or unknown department."
        },
    },
)
def risk_report(
    principal: Annotated[Principal, Depends(needs(Role.SUPERVISOR, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
    from_: Annotated[str | None, Query(alias="from", description=FROM_DOC)] = None,
    to: Annotated[str | None, Query(description=TO_DOC)] = None,
    department: Annotated[str | None, Query(description=DEPARTMENT_DOC)] = None,
) -> HTMLResponse:
    """The risk warning report of a period: a self-contained HTML page (no script, no external
    resource).

    A plain ``def``: FastAPI runs it in its thread pool, so the report's queries never block the
    event loop that serves the live stream.
    """
    scope = scoped_department(principal, department or None)
    if scope is not None and scope not in ctx.registry.departments:
        raise HTTPException(
            422, f"unknown department {scope!r}; known: {', '.join(ctx.registry.departments)}"
        )
    try:
        start = parse_report_time(from_, "from") if from_ else None
        end = parse_report_time(to, "to") if to else None
        # The server's local time for a period not given, as the CLI does: local days, not UTC days.
        start, end = default_range(store_now(ctx.alerts).astimezone(), start, end)
        check_range(start, end)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    report = collect_risk_report(
        ctx.alerts,
        start=start,
        end=end,
        department=scope,
        registry=ctx.registry,
        rule_kinds=_rule_kinds(ctx.settings),
    )
    log.info(
        "risk report",
        extra=kv(
            user=principal.user,
            department=scope or "*",
            start=start.isoformat(),
            end=end.isoformat(),
            alerts=report.total,
        ),
    )
    # A report carries supervision data out of the system: an export, recorded in the audit chain.
    ctx.alerts.audit.append(
        principal.user,
        "export",
        "report:risk",
        {
            "format": "html",
            "department": scope,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "alerts": report.total,
        },
    )
    return HTMLResponse(
        render_risk_report_html(report),
        headers={
            "Content-Security-Policy": REPORT_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # The page holds supervision data scoped to the token: no shared cache may keep it.
            "Cache-Control": "no-store",
            "Content-Disposition": f'inline; filename="{report_filename(start, end)}"',
        },
    )
