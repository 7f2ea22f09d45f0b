"""Data quality endpoints: figures per device and site (``GET /api/quality``), a per-site and
per-department summary (``GET /api/quality/summary``, the dashboard's quality column) and the
monthly report (``GET /api/reports/quality``, HTML or CSV).

Department-scoped like every read: a department's token sees its own sites only (another
department's site is the same 404 as a site that does not exist). The figures are
:mod:`farsight.quality`'s, from counts :class:`ingest.quality_store.QualityStore` reads.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from alerts.report import parse_report_time
from farsight.clock import BEIJING
from farsight.logs import kv
from farsight.quality import (
    Figures,
    Interval,
    compute,
    declared_stops,
    figures_dict,
    period_start,
    streams_of,
    total,
)
from farsight.types import Site
from hub.access import needs
from hub.auth import Principal, Role
from hub.context import HubContext
from hub.deps import context, scoped_department
from hub.quality_report import (
    REPORT_CSP,
    collect_quality_report,
    last_month,
    render_quality_csv,
    render_quality_html,
    report_filename,
)
from ingest.quality_store import QualityStore

log = logging.getLogger(__name__)

READ = needs(Role.VIEWER, cookie=True)

RANGE_MAX: dict[str, timedelta] = {"hour": timedelta(days=7), "day": timedelta(days=92)}
"""Longest range per interval (bounds one response: sites x devices x periods)."""
RANGE_DEFAULT: dict[str, timedelta] = {"hour": timedelta(hours=24), "day": timedelta(days=7)}
SUMMARY_MAX = timedelta(days=31)

FROM_DOC = "Start, ISO 8601 with UTC offset (default: `to` minus 24 hours, or 7 days for days)."
TO_DOC = (
    "End, ISO 8601 with UTC offset (default: now). Only whole hours or local days (Beijing time)"
    " are counted."
)
DEPARTMENT_DOC = (
    "Only this department; a department token reads only its own (default: its own, or all)."
)

router = APIRouter()


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class FigureOut(_Out):
    """Quality of one device, or of a site (``device`` empty), over one period."""

    site: str
    device: str = Field(description="Device id; empty for the site as a whole.")
    start: str = Field(description="Period start, ISO 8601.")
    end: str = Field(description="Period end (exclusive), ISO 8601.")
    expected: int = Field(description="Values owed by the registered cadence.")
    received: int = Field(description="Values received (at most one per cadence slot).")
    valid: int = Field(description="Values received with a valid HJ 212 flag (N).")
    completeness: float | None = Field(description="received / expected (数据传输率).")
    validity: float | None = Field(description="valid / received (数据有效率).")
    effective_rate: float | None = Field(description="valid / expected (有效数据传输率).")
    hourly_values: int = Field(description="(metric, hour) pairs owed.")
    hourly_valid: int = Field(description="Those with at least 45 valid minutes (HJ 75-2017).")
    daily_values: int = Field(description="(metric, day) pairs owed (interval day).")
    daily_valid: int = Field(description="Those with at least 20 valid hours (HJ 75-2017).")
    latency_mean_s: float | None = Field(description="Mean receive minus measure time, s.")
    latency_max_s: float | None = Field(description="Largest receive minus measure time, s.")
    late: int = Field(description="Readings received more than 300 s after their measure time.")


class RefusalOut(_Out):
    """Dead letters (in the range) and irregularities (since counted) of one device."""

    site: str
    device: str
    dead_letters: dict[str, int] = Field(description="Refused messages by reason.")
    irregularities: dict[str, int] = Field(description="Tolerated quirks by what (totals).")


class QualityOut(_Out):
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    interval: Literal["hour", "day"]
    timezone: str = Field(description="Zone of the local days.")
    figures: list[FigureOut]
    refusals: list[RefusalOut]


class SiteQualityOut(FigureOut):
    name: str
    department: str


class DepartmentQualityOut(_Out):
    department: str
    sites: int
    sites_below: int = Field(description="Sites whose effective rate is below `threshold`.")
    expected: int
    received: int
    valid: int
    completeness: float | None
    validity: float | None
    effective_rate: float | None


class SummaryOut(_Out):
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    threshold: float
    sites: list[SiteQualityOut]
    departments: list[DepartmentQualityOut]


def _time(raw: str | None, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        return parse_report_time(raw, name).astimezone(UTC)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _range(
    start: str | None, end: str | None, default: timedelta, longest: timedelta
) -> tuple[datetime, datetime]:
    t_end = _time(end, "to") or datetime.now(UTC)
    t_start = _time(start, "from") or (t_end - default)
    if t_start >= t_end:
        raise HTTPException(
            422, f"from ({t_start.isoformat()}) must be before to ({t_end.isoformat()})"
        )
    if t_end - t_start > longest:
        raise HTTPException(
            422, f"range {t_end - t_start} is longer than {longest.days} days; ask in parts"
        )
    return t_start, t_end


def _sites(
    ctx: HubContext, principal: Principal, site: str | None, department: str | None
) -> list[Site]:
    """The sites a request covers: one readable site, or the (scoped) department's."""
    if department is not None and department not in ctx.registry.departments:
        raise HTTPException(
            422, f"unknown department {department!r}; known: {', '.join(ctx.registry.departments)}"
        )
    scope = scoped_department(principal, department)
    if site is not None:
        found = ctx.registry.get(site)
        if found is None or not principal.may_act_for(found.department):
            raise HTTPException(404, f"no site {site!r}")
        if scope is not None and found.department != scope:
            raise HTTPException(404, f"no site {site!r}")
        return [found]
    return list(ctx.registry.for_department(scope))


def _figures(
    ctx: HubContext, sites: list[Site], start: datetime, end: datetime, interval: Interval
) -> list[Figures]:
    ids = [s.id for s in sites]
    streams = streams_of(sites)
    # Hours are UTC hours; a day's cells begin at its local midnight, which is a UTC hour.
    lo = period_start(start, interval, BEIJING)
    return compute(
        QualityStore(ctx.readings).cells(lo, end, sites=ids, exclude=declared_stops(streams)),
        streams,
        start,
        end,
        interval,
    )


@router.get(
    "/api/quality",
    response_model=QualityOut,
    tags=["quality"],
    responses={404: {"description": "No such site, or one of another department (the same)."}},
)
def quality(
    principal: Annotated[Principal, Depends(READ)],
    ctx: Annotated[HubContext, Depends(context)],
    site: Annotated[str | None, Query(description="Only this site.", max_length=64)] = None,
    from_: Annotated[str | None, Query(alias="from", description=FROM_DOC)] = None,
    to: Annotated[str | None, Query(description=TO_DOC)] = None,
    interval: Annotated[
        Literal["hour", "day"], Query(description="Period: hour or local day.")
    ] = "hour",
    department: Annotated[str | None, Query(description=DEPARTMENT_DOC)] = None,
) -> Any:
    """Completeness, validity, effective data transmission rate (有效数据传输率), HJ 75 valid
    hours and days, and timeliness per device and site and per whole hour or day; with the dead
    letters and irregularities of each device.

    A plain ``def``: FastAPI runs it in its thread pool, off the live stream's event loop.
    """
    start, end = _range(from_, to, RANGE_DEFAULT[interval], RANGE_MAX[interval])
    sites = _sites(ctx, principal, site, department)
    figures = _figures(ctx, sites, start, end, interval)
    refusals = QualityStore(ctx.readings).refusals(start, end, sites=[s.id for s in sites])
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "interval": interval,
        "timezone": "Asia/Shanghai",
        "figures": [figures_dict(f) for f in figures],
        "refusals": [
            {
                "site": r.site,
                "device": r.device,
                "dead_letters": r.dead_letters,
                "irregularities": r.irregularities,
            }
            for r in refusals.values()
        ],
    }


@router.get("/api/quality/summary", response_model=SummaryOut, tags=["quality"])
def quality_summary(
    principal: Annotated[Principal, Depends(READ)],
    ctx: Annotated[HubContext, Depends(context)],
    from_: Annotated[
        str | None, Query(alias="from", description="Start (default: `to` minus 24 hours).")
    ] = None,
    to: Annotated[str | None, Query(description="End (default: now); whole hours.")] = None,
    department: Annotated[str | None, Query(description=DEPARTMENT_DOC)] = None,
    threshold: Annotated[
        float, Query(ge=0, le=1, description="Effective rate under which a site is counted low.")
    ] = 0.9,
) -> Any:
    """Per site and per department, the quality of a period (default the last 24 whole hours):
    the dashboard's quality column."""
    start, end = _range(from_, to, timedelta(hours=24), SUMMARY_MAX)
    sites = _sites(ctx, principal, None, department)
    hourly = _figures(ctx, sites, start, end, "hour")
    by_site: dict[str, list[Figures]] = {}
    for f in hourly:
        if f.device == "":
            by_site.setdefault(f.site, []).append(f)
    out_sites: list[dict[str, Any]] = []
    depts: dict[str, list[Figures]] = {}
    for s in sites:
        t = total(by_site.get(s.id, []))
        if t is None:
            continue
        out_sites.append({**figures_dict(t), "name": s.name, "department": s.department})
        depts.setdefault(s.department, []).append(t)
    departments = []
    for dept, figs in sorted(depts.items()):
        t = total(figs)
        assert t is not None  # figs is never empty
        d = figures_dict(t)
        departments.append(
            {
                "department": dept,
                "sites": len(figs),
                "sites_below": sum(
                    1 for f in figs if f.effective_rate is not None and f.effective_rate < threshold
                ),
                **{k: d[k] for k in ("expected", "received", "valid")},
                **{k: d[k] for k in ("completeness", "validity", "effective_rate")},
            }
        )
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "threshold": threshold,
        "sites": out_sites,
        "departments": departments,
    }


@router.get(
    "/api/reports/quality",
    tags=["reports"],
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "The report: an HTML page, or CSV with `format=csv`.",
            "content": {"text/html": {}, "text/csv": {}},
        },
    },
)
def quality_report(
    principal: Annotated[Principal, Depends(READ)],
    ctx: Annotated[HubContext, Depends(context)],
    month: Annotated[
        str | None,
        Query(
            description="YYYY-MM (default: last month, Beijing time).",
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        ),
    ] = None,
    department: Annotated[str | None, Query(description=DEPARTMENT_DOC)] = None,
    fmt: Annotated[
        Literal["html", "csv"], Query(alias="format", description="html or csv.")
    ] = "html",
) -> Response:
    """The monthly data quality report (数据质量月报) of a department: HTML or CSV."""
    if department is not None and department not in ctx.registry.departments:
        raise HTTPException(
            422, f"unknown department {department!r}; known: {', '.join(ctx.registry.departments)}"
        )
    scope = scoped_department(principal, department)
    now = datetime.now(UTC)
    wanted = month or last_month(now)
    try:
        report = collect_quality_report(
            QualityStore(ctx.readings), ctx.registry, wanted, scope, now=now
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    log.info(
        "quality report",
        extra=kv(user=principal.user, department=scope or "*", month=wanted, format=fmt),
    )
    # A report carries supervision data out of the system: an export, in the audit chain.
    ctx.alerts.audit.append(
        principal.user,
        "export",
        "report:quality",
        {"format": fmt, "department": scope, "month": wanted, "rows": len(report.rows)},
    )
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }
    if fmt == "csv":
        return Response(
            render_quality_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={
                **headers,
                "Content-Disposition": f'attachment; filename="{report_filename(report, "csv")}"',
            },
        )
    return HTMLResponse(
        render_quality_html(report),
        headers={
            **headers,
            "Content-Security-Policy": REPORT_CSP,
            "Content-Disposition": f'inline; filename="{report_filename(report, "html")}"',
        },
    )
