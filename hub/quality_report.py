"""The monthly data quality report of a department (数据质量月报), as one self-contained HTML page
and as CSV: per site and device, the values owed, received and valid, the effective data
transmission rate (有效数据传输率), HJ 75-2017 valid hours and days, timeliness, and the dead
letters and irregularities behind them.

Served by ``GET /api/reports/quality`` (hub/quality.py) and written by ``farsight report
quality`` (app/commands/quality_report.py); both call :func:`collect_quality_report`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jinja2

from farsight.clock import BEIJING
from farsight.quality import (
    Figures,
    compute,
    declared_stops,
    figures_dict,
    periods,
    registry_streams,
    total,
)
from farsight.registry import Registry
from ingest.quality_store import QualityStore, Refusals

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
"""The page needs nothing but its inline styles."""

CSV_COLUMNS = (
    "department",
    "site",
    "site_name",
    "device",
    "expected",
    "received",
    "valid",
    "completeness",
    "validity",
    "effective_rate",
    "hourly_values",
    "hourly_valid",
    "daily_values",
    "daily_valid",
    "latency_mean_s",
    "latency_max_s",
    "late",
    "dead_letters",
    "irregularities",
)
"""One row per site (``device`` empty) and per device."""


def parse_month(text: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as its first and next month's first Beijing midnight (UTC-aware).

    Raises
    ------
    ValueError
        Not ``YYYY-MM``.
    """
    m = MONTH_RE.match(text.strip())
    if m is None:
        raise ValueError(f"month {text!r} is not YYYY-MM, e.g. 2026-11")
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=BEIJING)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=BEIJING)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_month(now: datetime) -> str:
    """The month before the one holding ``now`` (Beijing time), as ``YYYY-MM``."""
    first = now.astimezone(BEIJING).replace(day=1)
    prev = first - timedelta(days=1)
    return f"{prev.year:04d}-{prev.month:02d}"


@dataclass(frozen=True, slots=True)
class Row:
    """One site (``device == ""``) or device line of the report."""

    department: str
    site: str
    site_name: str
    figures: Figures
    refusals: Refusals | None

    @property
    def dead_letters(self) -> int:
        return self.refusals.dead_letter_total if self.refusals else 0

    @property
    def irregularities(self) -> int:
        return self.refusals.irregularity_total if self.refusals else 0


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The month's figures of one department (or all): site and device rows, daily totals."""

    month: str
    department: str | None
    start: datetime
    end: datetime
    covered_end: datetime
    """End of the last whole day with figures (before ``end`` for the current month)."""
    rows: tuple[Row, ...]
    days: tuple[Figures, ...]
    """Per day, every site of the report together (``site`` is the department or ``*``)."""
    overall: Figures | None
    generated: datetime


def collect_quality_report(
    store: QualityStore,
    registry: Registry,
    month: str,
    department: str | None = None,
    now: datetime | None = None,
) -> QualityReport:
    """The figures of ``month`` (``YYYY-MM``) for ``department`` (``None``: all).

    Only whole local days before ``now`` are counted (the current month up to yesterday).

    Raises
    ------
    ValueError
        A bad month, or one that has not begun.
    """
    start, end = parse_month(month)
    now = now or datetime.now(UTC)
    covered_end = min(end, now)
    spans = periods(start, covered_end, "day")
    if not spans:
        raise ValueError(f"month {month} has no whole day before now")
    covered_end = spans[-1][1]
    sites = registry.for_department(department)
    ids = [s.id for s in sites]
    streams = registry_streams(registry, department)
    cells = store.cells(start, covered_end, sites=ids, exclude=declared_stops(streams))
    daily = compute(cells, streams, start, covered_end, "day")
    refusals = store.refusals(start, covered_end, sites=ids)
    by_key: dict[tuple[str, str], list[Figures]] = {}
    for f in daily:
        by_key.setdefault((f.site, f.device), []).append(f)
    rows: list[Row] = []
    for site in sites:
        for device in ["", *(d.id for d in site.devices)]:
            month_total = total(by_key.get((site.id, device), []))
            if month_total is None:
                continue
            if device:
                ref = refusals.get((site.id, device))
            else:
                parts = [r for (s, _), r in refusals.items() if s == site.id]
                ref = Refusals(
                    site.id,
                    "",
                    _sum_counts(r.dead_letters for r in parts),
                    _sum_counts(r.irregularities for r in parts),
                )
            rows.append(Row(site.department, site.id, site.name, month_total, ref))
    label = department or "*"
    days: list[Figures] = []
    for a, _b in spans:
        day_total = total(f for f in daily if f.device == "" and f.start == a)
        if day_total is not None:
            days.append(_relabel(day_total, label))
    site_rows = [r.figures for r in rows if r.figures.device == ""]
    overall = total(site_rows)
    return QualityReport(
        month=month,
        department=department,
        start=start,
        end=end,
        covered_end=covered_end,
        rows=tuple(rows),
        days=tuple(days),
        overall=_relabel(overall, label) if overall is not None else None,
        generated=now,
    )


def _sum_counts(items: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in items:
        for k, v in counts.items():
            out[k] = out.get(k, 0) + v
    return out


def _relabel(f: Figures, site: str) -> Figures:
    return Figures(
        site=site,
        device="",
        start=f.start,
        end=f.end,
        expected=f.expected,
        received=f.received,
        valid=f.valid,
        hourly_values=f.hourly_values,
        hourly_valid=f.hourly_valid,
        daily_values=f.daily_values,
        daily_valid=f.daily_valid,
        latency_mean_s=f.latency_mean_s,
        latency_max_s=f.latency_max_s,
        late=f.late,
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def report_filename(report: QualityReport, ext: str) -> str:
    """``quality-report-<month>[-<department>].<ext>``."""
    dept = f"-{report.department}" if report.department else ""
    return f"quality-report-{report.month}{dept}.{ext}"


def render_quality_csv(report: QualityReport) -> str:
    """The report's rows as CSV (UTF-8, header :data:`CSV_COLUMNS`; rates as fractions)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for row in report.rows:
        d = figures_dict(row.figures)
        values = {
            **d,
            "department": row.department,
            "site_name": row.site_name,
            "dead_letters": row.dead_letters,
            "irregularities": row.irregularities,
        }
        # A spreadsheet runs a cell that starts with = + - @ as a formula: names are data.
        w.writerow([_cell(values[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("hub", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_quality_html(report: QualityReport) -> str:
    """The report as one self-contained HTML5 page (zh-CN with English labels), no script."""
    local = BEIJING

    def day(t: datetime) -> str:
        return t.astimezone(local).strftime("%Y-%m-%d")

    rows = [
        {
            "site": r.site,
            "name": r.site_name,
            "device": r.figures.device,
            "expected": r.figures.expected,
            "received": r.figures.received,
            "valid": r.figures.valid,
            "completeness": _pct(r.figures.completeness),
            "validity": _pct(r.figures.validity),
            "effective": _pct(r.figures.effective_rate),
            "low": r.figures.effective_rate is not None and r.figures.effective_rate < 0.9,
            "hours": f"{r.figures.hourly_valid}/{r.figures.hourly_values}",
            "days": f"{r.figures.daily_valid}/{r.figures.daily_values}",
            "latency": _num(r.figures.latency_mean_s),
            "latency_max": _num(r.figures.latency_max_s),
            "late": r.figures.late,
            "dead": r.dead_letters,
            "irregular": r.irregularities,
            "reasons": ", ".join(
                f"{k} {v}"
                for k, v in sorted((r.refusals.dead_letters if r.refusals else {}).items())
            ),
        }
        for r in report.rows
    ]
    days = [
        {
            "day": day(f.start),
            "expected": f.expected,
            "valid": f.valid,
            "effective": _pct(f.effective_rate),
            "bar": round((f.effective_rate or 0) * 200),
        }
        for f in report.days
    ]
    o = report.overall
    cards = [
        ("card-effective", "有效数据传输率 Effective rate", _pct(o.effective_rate if o else None)),
        ("card-completeness", "传输率 Completeness", _pct(o.completeness if o else None)),
        ("card-validity", "有效率 Validity", _pct(o.validity if o else None)),
        ("card-expected", "应传 Expected", str(o.expected if o else 0)),
        ("card-valid", "有效 Valid", str(o.valid if o else 0)),
        (
            "card-dead",
            "拒收 Dead letters",
            str(sum(r.dead_letters for r in report.rows if not r.figures.device)),
        ),
    ]
    return _TEMPLATES.get_template("quality_report.html.j2").render(
        csp=REPORT_CSP,
        month=report.month,
        period=f"{day(report.start)} – {day(report.covered_end - timedelta(days=1))}",
        department=report.department,
        generated=report.generated.astimezone(local).isoformat(timespec="seconds"),
        cards=cards,
        rows=rows,
        days=days,
    )
