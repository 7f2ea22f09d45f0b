"""The risk warning report (风险预警报告): what the risk queue raised in a period, counted, drawn.

Two halves, so that the numbers can be tested without parsing HTML and the page can be drawn
without a database:

- :func:`collect_risk_report` counts the rows the queries of :mod:`alerts.store_reports` return
  (parameterised SQL over the ``alerts`` and ``alert_events`` tables) into a :class:`RiskReport`,
  numbers only;
- :func:`render_risk_report_html` turns a report into one self-contained HTML5 page through the
  autoescaping Jinja2 templates in ``alerts/templates``: inline CSS, the chart as inline SVG, no
  script and no external resource, so the file can be mailed, archived and opened offline years
  later exactly as it was generated.

JSON columns are parsed here, in Python, because the two databases spell JSON access
differently.

Which alerts a report covers: those *raised* (row ``created``) in ``[start, end)``, optionally of
one department. Their current state, finding and history are reported as they are when the
report is generated, so a report of last week regenerated next month shows what became of them.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

import jinja2

from alerts import store_reports as queries
from alerts.model import ACTIVITIES, FINDINGS, STATES, TRANSITIONS
from alerts.risk import explain
from alerts.store_reports import Period, ReadableDatabase
from farsight.clock import Clock, from_epoch_ms, to_epoch_ms
from farsight.logs import kv
from farsight.registry import Registry
from farsight.settings import RiskSettings
from farsight.types import CREDIT_GRADES, SEVERITIES

log = logging.getLogger(__name__)

MAX_RANGE = timedelta(days=366)
"""Longest period one report may cover: a year, leap day included (bounds one report's work)."""

DEFAULT_RANGE = timedelta(days=7)
"""Period reported when none is given: the last week."""

HOURLY_UP_TO = timedelta(days=2)
"""Periods up to this long are trended per hour, longer ones per day."""

TOP_SITES = 20
"""Sites listed in the report, most alerts first."""

TOP_RISK = 10
"""Entities listed as the highest-risk operators."""

NOT_VERIFIED = "not_verified"
"""Outcome key of raised alerts with no on-site verification finding (yet)."""

ACK_ACTION = "ack"
CLOSE_ACTION = "close"
# The handling state an alert is in once closed, derived from the workflow rather than spelled
# here, so that renaming states in alerts.model cannot silently break the time-to-close figure.
CLOSED_STATE = next(iter(set(TRANSITIONS[CLOSE_ACTION].values())))

SEVERITY_ORDER = tuple(reversed(SEVERITIES))
"""Severities most urgent first: the order of every table and of the chart's stack."""

UNKNOWN_KIND = ""
"""Rule kind of a rule id the given kind map does not know (a deleted or renamed rule)."""


# -- times ---------------------------------------------------------------------------------------


def parse_report_time(text: str, name: str = "time") -> datetime:
    """An ISO 8601 time with its UTC offset, kept in that offset (the report is drawn in it).

    Raises
    ------
    ValueError
        Not ISO 8601, or without a UTC offset (its zone would be a guess).
    """
    raw = text
    text = text.strip()
    # An unescaped '+' in a URL query string arrives as a space: "08:00:00 08:00" means "+08:00".
    if "T" in text and " " in text:
        text = text.replace(" ", "+")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name} {raw!r} is not an ISO 8601 time (e.g. 2026-11-25T00:00:00+08:00)"
        ) from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{name} {raw!r} has no UTC offset; add one, e.g. +08:00 or Z")
    return ts


def check_range(start: datetime, end: datetime) -> None:
    """Refuse a report period that is naive, empty or reversed, or longer than :data:`MAX_RANGE`.

    Raises
    ------
    ValueError
        With a message naming the problem, fit to show to the person who asked.
    """
    for name, ts in (("from", start), ("to", end)):
        if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError(f"{name} must be a time with a UTC offset, got {ts!r}")
    if start >= end:
        raise ValueError(f"from {start.isoformat()} must be before to {end.isoformat()}")
    if end - start > MAX_RANGE:
        raise ValueError(
            f"the period {start.isoformat()} to {end.isoformat()} is longer than {MAX_RANGE.days} "
            f"days; "
            "split it into several reports"
        )


class ReportSource(Protocol):
    """What a report reads of a store (an :class:`~alerts.store.AlertStore` has it all)."""

    @property
    def db(self) -> ReadableDatabase: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def risk_params(self) -> RiskSettings: ...


def store_now(store: ReportSource) -> datetime:
    """The store's idea of now (its clock, so replays and tests agree with the queue)."""
    return store.clock.now()


def default_range(
    now: datetime, start: datetime | None = None, end: datetime | None = None
) -> tuple[datetime, datetime]:
    """Fill a missing end with ``now`` and a missing start with one :data:`DEFAULT_RANGE` before
    the end.

    A filled-in time takes the other one's UTC offset when that one was given, else ``now``'s
    (callers pass the machine's local now), because the report counts days in the start's offset.
    """
    if end is None:
        end = (
            now.astimezone(start.tzinfo) if start is not None and start.tzinfo is not None else now
        )
    if start is None:
        start = end - DEFAULT_RANGE
    return start, end


def report_filename(start: datetime, end: datetime) -> str:
    """``risk-report-<from>-<to>.html`` with compact times that are safe in every file system (no
    ':')."""
    fmt = "%Y%m%dT%H%M%z"
    return f"risk-report-{start.strftime(fmt)}-{end.strftime(fmt)}.html"


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleCount:
    """Alerts raised by one rule."""

    rule_id: str
    kind: str | None
    count: int


@dataclass(frozen=True, slots=True)
class SiteCount:
    """Alerts raised at one site; ``severe`` counts the critical and major ones."""

    site: str
    name: str | None
    department: str
    count: int
    severe: int


@dataclass(frozen=True, slots=True)
class EntityRisk:
    """Alerts raised against one operator (unified social credit code) and their risk.

    ``total_score`` is the sum and ``max_score`` the highest of the alerts' risk scores;
    ``worst_grade`` the worst credit grade recorded on them (D is the worst).
    """

    entity_id: str
    name: str | None
    count: int
    max_score: float
    total_score: float
    worst_grade: str


@dataclass(frozen=True, slots=True)
class Trend:
    """Alerts raised per time bucket and severity.

    ``starts[i]`` opens bucket ``i`` (in the report's offset); buckets are ``step`` long
    ("hour" or "day"), the first aligned to the hour or the midnight at or before the report's
    start. ``series`` holds one count per bucket for each severity, most urgent first.
    """

    step: str
    starts: tuple[datetime, ...]
    series: tuple[tuple[str, tuple[int, ...]], ...]

    def counts(self, severity: str) -> tuple[int, ...]:
        """The per-bucket counts of one severity."""
        return dict(self.series)[severity]

    @property
    def totals(self) -> tuple[int, ...]:
        """Alerts per bucket, all severities together."""
        return (
            tuple(sum(c) for c in zip(*(v for _, v in self.series), strict=True))
            if self.series
            else ()
        )


@dataclass(frozen=True, slots=True)
class TimeTo:
    """How long alerts waited for one handling step, in seconds; ``n`` alerts had the step."""

    n: int
    mean_s: float | None
    median_s: float | None


@dataclass(frozen=True, slots=True)
class RiskReport:
    """The risk warning report of one period and department: numbers only, no presentation.

    Counted mappings are tuples of ``(key, count)`` pairs in display order (``dict(...)`` them
    to look one up); every known state, severity and finding is present, zero or not.

    Attributes
    ----------
    start, end
        The period ``[start, end)``, in the offset the caller gave (the page is drawn in it).
    department
        The department reported on, ``None`` for all.
    generated_at
        When the report was made; risk scores are computed as of this time, like the queue's.
    total
        Alerts raised in the period.
    by_state, by_severity, by_activity
        Those alerts counted by their current handling state, severity and activity.
    by_rule, by_kind
        Alerts per rule id (most first) and per rule kind (empty when no kind map was given).
    sites, site_count
        The :data:`TOP_SITES` sites with most alerts, and how many sites had any.
    entities, entity_count
        The operators with most alerts (as many as sites listed), and how many operators had any.
    top_risk
        The :data:`TOP_RISK` operators of highest risk, ranked by the **sum** of their alerts'
        risk scores: many middling alerts of one operator call for supervision as much as one
        severe alert does. ``max_score`` is shown beside it.
    trend
        Alerts raised per hour (periods up to two days) or per day, by severity.
    findings
        Verification findings of the raised alerts, per finding, plus :data:`NOT_VERIFIED`.
    time_to_ack, time_to_close
        From an alert's creation to its first ``ack`` action, and to the ``close`` that left it
        closed (the last one, for alerts currently closed); alerts without the step are left out.
    """

    start: datetime
    end: datetime
    department: str | None
    generated_at: datetime
    total: int
    by_state: tuple[tuple[str, int], ...]
    by_severity: tuple[tuple[str, int], ...]
    by_activity: tuple[tuple[str, int], ...]
    by_rule: tuple[RuleCount, ...]
    by_kind: tuple[tuple[str, int], ...]
    sites: tuple[SiteCount, ...]
    site_count: int
    entities: tuple[EntityRisk, ...]
    entity_count: int
    top_risk: tuple[EntityRisk, ...]
    trend: Trend
    findings: tuple[tuple[str, int], ...]
    time_to_ack: TimeTo
    time_to_close: TimeTo

    @property
    def range(self) -> tuple[datetime, datetime]:
        """The period as ``(from, to)``."""
        return self.start, self.end


# -- collecting ----------------------------------------------------------------------------------


def _json(value: Any, default: Any, alert_id: Any, column: str) -> Any:
    """A JSON column's value: text from SQLite, maybe already decoded by a PostgreSQL driver.

    Bad JSON in one row must not sink a whole report: it is logged and read as ``default``.
    """
    if value is None:
        return default
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            log.warning("report: unreadable JSON column", extra=kv(alert=alert_id, column=column))
            return default
    return value


def _ordered(counts: Mapping[str, int], order: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """Every key of ``order`` (zero when absent), then any other key found, by count."""
    known = list(order)
    extra = sorted((k for k in counts if k not in known), key=lambda k: (-counts[k], k))
    return tuple((k, int(counts.get(k, 0))) for k in known + extra)


def _bucket_anchor(start: datetime, step: timedelta) -> datetime:
    """The hour or midnight at or before ``start``, in ``start``'s own offset, so that days are the
    reader's days (a report from 00:00+08:00 counts Beijing days, not UTC days)."""
    anchor = start.replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        anchor = anchor.replace(hour=0)
    return anchor


def _worst_grade(a: str, b: str) -> str:
    rank = {g: i for i, g in enumerate(CREDIT_GRADES)}
    return a if rank.get(a, -1) >= rank.get(b, -1) else b


def _time_to(seconds: list[float]) -> TimeTo:
    if not seconds:
        return TimeTo(0, None, None)
    return TimeTo(len(seconds), statistics.fmean(seconds), statistics.median(seconds))


def collect_risk_report(
    store: ReportSource,
    *,
    start: datetime,
    end: datetime,
    department: str | None,
    registry: Registry | None = None,
    now: datetime | None = None,
    rule_kinds: Mapping[str, str] | None = None,
    top_sites: int = TOP_SITES,
) -> RiskReport:
    """Count the alerts raised in ``[start, end)`` (of one department, or all) into a report.

    Parameters
    ----------
    store
        An alert store: its ``db`` runs the queries (``db.query(sql, params)`` with ``?``
        placeholders, rows indexable by column name); its ``risk_params`` (``RiskSettings``) and
        ``clock`` are used when present.
    start, end
        The period, timezone-aware; trend buckets and the page use ``start``'s offset.
    department
        Only this department's alerts; ``None`` for all.
    registry
        Optional :class:`farsight.registry.Registry`, for site and operator names.
    now
        Time the risk scores are computed at (they grow with an alert's age, as in the queue);
        default: the store's clock.
    rule_kinds
        Optional ``rule_id -> kind`` map (from the loaded rules) for counts per rule kind.
    top_sites
        How many sites, and operators by alert count, to list.

    Returns
    -------
    RiskReport
        Numbers only. Memory grows with the alerts raised in the period: one small tuple per
        alert is read to score it and to read its finding (JSON, parsed here).

    Raises
    ------
    ValueError
        The period is naive, empty, reversed or longer than :data:`MAX_RANGE`, or ``top_sites``
        is not positive.
    """
    check_range(start, end)
    if top_sites < 1:
        raise ValueError(f"top_sites must be at least 1, got {top_sites}")
    now = now if now is not None else store_now(store)
    params_risk = store.risk_params
    db: ReadableDatabase = store.db
    period = Period(to_epoch_ms(start), to_epoch_ms(end), department)

    # Totals: one grouped pass gives state, severity and activity at once.
    by_state: dict[str, int] = defaultdict(int)
    by_severity: dict[str, int] = defaultdict(int)
    by_activity: dict[str, int] = defaultdict(int)
    total = 0
    for r in queries.counts_by_severity_state_activity(db, period):
        n = int(r["n"])
        total += n
        by_state[r["state"]] += n
        by_severity[r["severity"]] += n
        by_activity[r["activity"]] += n

    # Per rule, and per kind when the caller knows the kinds.
    rule_rows = [(r["rule_id"], int(r["n"])) for r in queries.counts_by_rule(db, period)]
    rule_rows.sort(key=lambda x: (-x[1], x[0]))
    by_rule = tuple(
        RuleCount(rid, (rule_kinds.get(rid, UNKNOWN_KIND) if rule_kinds is not None else None), n)
        for rid, n in rule_rows
    )
    by_kind: tuple[tuple[str, int], ...] = ()
    if rule_kinds is not None:
        kinds: dict[str, int] = defaultdict(int)
        for rc in by_rule:
            kinds[rc.kind or UNKNOWN_KIND] += rc.count
        by_kind = tuple(sorted(kinds.items(), key=lambda x: (-x[1], x[0])))

    # Per site: severe = critical + major, the alerts an officer should look at first.
    site_rows = queries.counts_by_site(db, period, SEVERITY_ORDER[:2])
    sites_all = sorted(
        (
            SiteCount(
                site=r["site"],
                name=_site_name(registry, r["site"]),
                department=r["department"],
                count=int(r["n"]),
                severe=int(r["severe"] or 0),
            )
            for r in site_rows
        ),
        key=lambda s: (-s.count, -s.severe, s.site),
    )

    # Trend: bucket index by integer arithmetic from an anchor.
    step = timedelta(hours=1) if end - start <= HOURLY_UP_TO else timedelta(days=1)
    anchor = _bucket_anchor(start, step)
    step_ms = int(step.total_seconds() * 1000)
    n_buckets = max(1, math.ceil((end - anchor) / step))
    grid: dict[str, list[int]] = {s: [0] * n_buckets for s in SEVERITY_ORDER}
    for r in queries.counts_by_bucket(db, period, to_epoch_ms(anchor), step_ms):
        b = int(r["b"])
        if 0 <= b < n_buckets:
            grid.setdefault(r["severity"], [0] * n_buckets)[b] += int(r["n"])
    trend = Trend(
        step="hour" if step < timedelta(days=1) else "day",
        starts=tuple(anchor + i * step for i in range(n_buckets)),
        series=tuple((s, tuple(v)) for s, v in grid.items()),
    )

    # Per alert: risk score, operator and finding. Scores are computed with the queue's own
    # formula (alerts.risk.explain) at ``now``, so the report agrees with the queue's order.
    created_at: dict[Any, int] = {}
    closed_ids: set[Any] = set()
    findings: dict[str, int] = defaultdict(int)
    entities: dict[str, dict[str, Any]] = {}
    for r in queries.scoring_rows(db, period):
        aid = r["id"]
        created_at[aid] = int(r["created"])
        if r["state"] == CLOSED_STATE:
            closed_ids.add(aid)
        handling = _json(r["handling"], {}, aid, "handling")
        verification = handling.get("verification") if isinstance(handling, dict) else None
        finding = verification.get("finding") if isinstance(verification, dict) else None
        findings[str(finding) if finding else NOT_VERIFIED] += 1
        if not r["entity_id"]:
            # an alert with no operator (an ambient station of the state) has no one to rank
            continue
        evidence = _json(r["evidence"], [], aid, "evidence")
        score = explain(
            severity=r["severity"],
            credit_grade=r["credit_grade"],
            repeats=int(r["entity_repeats"] or 0),
            evidence=len(evidence) if isinstance(evidence, list) else 0,
            created=from_epoch_ms(int(r["created"])),
            now=now,
            params=params_risk,
        ).value
        e = entities.setdefault(
            r["entity_id"], {"count": 0, "max": 0.0, "sum": 0.0, "grade": r["credit_grade"]}
        )
        e["count"] += 1
        e["max"] = max(e["max"], score)
        e["sum"] += score
        e["grade"] = _worst_grade(e["grade"], r["credit_grade"])
    names = _entity_names(registry)
    entity_rows = [
        EntityRisk(
            entity_id=k,
            name=names.get(k),
            count=v["count"],
            max_score=round(v["max"], 3),
            total_score=round(v["sum"], 3),
            worst_grade=v["grade"],
        )
        for k, v in entities.items()
    ]
    by_count = sorted(entity_rows, key=lambda e: (-e.count, -e.total_score, e.entity_id))
    by_risk = sorted(entity_rows, key=lambda e: (-e.total_score, -e.max_score, e.entity_id))

    # History: first ack, and the close that left the alert closed, of the period's alerts.
    acks = queries.first_event_at(db, period, ACK_ACTION)
    closes = queries.last_event_at(db, period, CLOSE_ACTION)
    # max(0, ...): events are stamped by the acting process's clock; a skew must not give negative
    # waits.
    ack_s = [
        max(0, int(r["at"]) - created_at[r["alert_id"]]) / 1000
        for r in acks
        if r["alert_id"] in created_at
    ]
    close_s = [
        max(0, int(r["at"]) - created_at[r["alert_id"]]) / 1000
        for r in closes
        if r["alert_id"] in created_at and r["alert_id"] in closed_ids
    ]

    return RiskReport(
        start=start,
        end=end,
        department=department,
        generated_at=now,
        total=total,
        by_state=_ordered(by_state, STATES),
        by_severity=_ordered(by_severity, SEVERITY_ORDER),
        by_activity=_ordered(by_activity, ACTIVITIES),
        by_rule=by_rule,
        by_kind=by_kind,
        sites=tuple(sites_all[:top_sites]),
        site_count=len({s.site for s in sites_all}),
        entities=tuple(by_count[:top_sites]),
        entity_count=len(entity_rows),
        top_risk=tuple(by_risk[:TOP_RISK]),
        trend=trend,
        findings=_ordered(findings, FINDINGS + (NOT_VERIFIED,)),
        time_to_ack=_time_to(ack_s),
        time_to_close=_time_to(close_s),
    )


def _site_name(registry: Registry | None, site_id: str) -> str | None:
    site = registry.get(site_id) if registry is not None else None
    return site.name if site is not None else None


def _entity_names(registry: Registry | None) -> dict[str, str]:
    """Operator names by credit code, from the first site of each operator that names it."""
    names: dict[str, str] = {}
    for s in registry.sites if registry is not None else ():
        if s.entity_name:
            names.setdefault(s.entity_id, s.entity_name)
    return names


# -- rendering -----------------------------------------------------------------------------------
#
# The page is laid out by the Jinja2 templates in alerts/templates (autoescaped: every string
# from data is escaped there, once); the functions below only turn a report into plain values
# for them: labels, formatted numbers, table cells and the chart's geometry.

SEVERITY_LABELS = {
    "critical": "严重 critical",
    "major": "重大 major",
    "warning": "一般 warning",
    "info": "提示 info",
}
SEVERITY_COLOURS = {
    "critical": "#b91c1c",
    "major": "#ea580c",
    "warning": "#ca8a04",
    "info": "#2563eb",
}
OTHER_COLOUR = "#6b7280"
STATE_LABELS = {
    "new": "新建 new",
    "open": "待处理 open",
    "acknowledged": "已确认 acknowledged",
    "dispatched": "核查中 dispatched",
    "verified": "已核查 verified",
    "closed": "已关闭 closed",
}
FINDING_LABELS = {
    "violation_confirmed": "确认违法 violation confirmed",
    "no_violation": "未发现违法 no violation",
    "equipment_fault": "设备故障 equipment fault",
    "data_fault": "数据异常 data fault",
    NOT_VERIFIED: "尚未核查 not yet verified",
}
ACTIVITY_LABELS = {"firing": "持续触发 firing", "resolved": "已恢复 resolved"}
STEP_ZH = {"hour": "小时", "day": "日"}
UNKNOWN_LABEL = "未知 unknown"

META_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The page's own CSP, so that the file opened from disk (not only as served by the hub) loads
nothing."""

METHOD_NOTES = (
    (
        "统计本期新建的预警（按创建时间）；状态、核查结论与处置记录为报告生成时的情况。 "
        "Alerts raised (created) in the period; their state, finding and history as of generation."
    ),
    (
        "风险分 = 严重程度 × 信用等级 × 重复 × 证据 × 等待时长，"
        "计算时刻为报告生成时间，与预警队列一致；"
        "主体按本期各预警风险分之和排序。 Risk score as in the queue, computed at generation time; "
        "operators are ranked by the sum of their alerts' scores (the highest single score is "
        "shown beside it)."
    ),
    (
        "确认用时：自预警创建至首次确认（ack）；关闭用时：自创建至使其关闭的最后一次关闭操作"
        "（仅计当前已关闭的预警）。 Time to acknowledge: creation to the first ack; time to "
        "close: creation to the last close, of alerts now closed."
    ),
)

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("alerts", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, not blanks the page
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell: text, shown as code when ``code``, or a bar ``bar`` pixels wide."""

    text: str = ""
    code: bool = False
    bar: int = 0


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the page; ``head`` holds (label, numeric) pairs, numeric columns align right."""

    id: str
    caption: str
    head: tuple[tuple[str, bool], ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, slots=True)
class Bar:
    """One severity's part of one bucket's stacked bar, with its tooltip."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Column:
    """One bucket of the chart: its bars, bottom up, and its x label (None: not labelled)."""

    bars: tuple[Bar, ...]
    x: float
    label: str | None


@dataclass(frozen=True, slots=True)
class TrendChart:
    """The geometry and texts of the trend chart (an inline SVG ``width`` by ``height``)."""

    width: int
    height: int
    left: int
    right: int
    top: int
    base: int
    step_zh: str
    step_en: str
    buckets: int
    peak: int
    gridlines: tuple[tuple[float, int], ...]
    columns: tuple[Column, ...]
    offset: str

    @property
    def mid_x(self) -> float:
        return self.left + (self.width - self.left - self.right) / 2

    @property
    def mid_y(self) -> float:
        return self.top + (self.base - self.top) / 2


def _fmt_time(dt: datetime, tz: tzinfo | None) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _offset_label(dt: datetime) -> str:
    off = dt.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _label(labels: Mapping[str, str], key: str) -> str:
    """The bilingual label of a key; unknown keys show as themselves."""
    return labels.get(key, key) if key else UNKNOWN_LABEL


def _bar(n: int, top: int) -> Cell:
    return Cell(bar=0 if top <= 0 else round(120 * n / top))


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "—"


def _nice_step(top: int, ticks: int = 4) -> int:
    """A 1, 2 or 5 times a power of ten axis step, so gridlines fall on round numbers."""
    raw = max(1.0, top / ticks)
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return int(m * power)
    return int(10 * power)


def _trend_chart(trend: Trend, tz: tzinfo | None) -> TrendChart:
    """A stacked bar chart of alerts per bucket and severity: gridlines, bars, x labels.

    Drawn by the page's template rather than by a chart library, so the page needs no script
    and no download.
    """
    width, height = 960, 300
    left, right, top_m, bottom = 48, 16, 16, 44
    plot_w, plot_h = width - left - right, height - top_m - bottom
    base = top_m + plot_h
    totals = trend.totals
    n = len(totals)
    peak = max(totals) if totals else 0
    step = _nice_step(peak)
    y_top = max(step, math.ceil(peak / step) * step)
    gridlines = tuple((base - plot_h * v / y_top, v) for v in range(0, y_top + 1, step))
    bw = plot_w / n
    gap = bw * 0.15 if bw > 4 else 0.0
    label_every = max(1, math.ceil(n / 12))  # at most about a dozen x labels, so they never overlap
    fmt = "%m-%d %H:00" if trend.step == "hour" else "%m-%d"
    columns: list[Column] = []
    for i, start in enumerate(trend.starts):
        x = left + i * bw
        y = float(base)
        when = _fmt_time(start, tz)
        bars: list[Bar] = []
        for sev, counts in trend.series:  # most urgent first: at the bottom, where the eye starts
            c = counts[i]
            if not c:
                continue
            h = plot_h * c / y_top
            y -= h
            bars.append(
                Bar(
                    x=x + gap / 2,
                    y=y,
                    width=bw - gap,
                    height=h,
                    colour=SEVERITY_COLOURS.get(sev, OTHER_COLOUR),
                    title=f"{when} · {_label(SEVERITY_LABELS, sev)}: {c}",
                )
            )
        label = start.astimezone(tz).strftime(fmt) if i % label_every == 0 else None
        columns.append(Column(bars=tuple(bars), x=x + bw / 2, label=label))
    return TrendChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top_m,
        base=base,
        step_zh=STEP_ZH[trend.step],
        step_en=trend.step,
        buckets=n,
        peak=peak,
        gridlines=gridlines,
        columns=tuple(columns),
        offset=_offset_label(trend.starts[0]) if trend.starts else "UTC",
    )


def _table(
    table_id: str,
    caption: str,
    head: Sequence[tuple[str, bool]],
    rows: Iterable[Sequence[Cell | str]],
) -> Table:
    """A table; plain strings in ``rows`` become text cells."""
    return Table(
        id=table_id,
        caption=caption,
        head=tuple(head),
        rows=tuple(tuple(c if isinstance(c, Cell) else Cell(text=c) for c in row) for row in rows),
    )


def _counts_table(
    table_id: str,
    caption: str,
    key_head: str,
    pairs: Sequence[tuple[str, int]],
    labels: Mapping[str, str],
    total: int,
) -> Table:
    top = max((n for _, n in pairs), default=0)
    rows = [(_label(labels, k), str(n), _pct(n, total), _bar(n, top)) for k, n in pairs]
    head = [(key_head, False), ("数量 count", True), ("占比 share", True), ("", False)]
    return _table(table_id, caption, head, rows)


def render_risk_report_html(report: RiskReport) -> str:
    """The report as one self-contained HTML5 page (zh-CN with English labels).

    Parameters
    ----------
    report
        From :func:`collect_risk_report`.

    Returns
    -------
    str
        The page, from the template ``alerts/templates/risk_report.html.j2``. Inline CSS and
        inline SVG only: no script, no external link, font or image, and a meta CSP that forbids
        loading anything, so the file is safe to open offline and to archive. Every string that
        came from data (site, operator and rule names, ids) is HTML-escaped by the template's
        autoescaping. A period without alerts gives the summary and "no alerts in this period".
    """
    tz = report.start.tzinfo
    offset = _offset_label(report.start)
    sev = dict(report.by_severity)
    act = dict(report.by_activity)
    cards = [("sum-total", "预警总数 Alerts raised", str(report.total))]
    cards += [(f"sum-{s}", _label(SEVERITY_LABELS, s), str(sev.get(s, 0))) for s in SEVERITY_ORDER]
    cards += [
        ("sum-firing", "仍在触发 Still firing", str(act.get("firing", 0))),
        ("sum-sites", "涉及站点 Sites", str(report.site_count)),
        ("sum-entities", "涉及主体 Operators", str(report.entity_count)),
        (
            "sum-mtta",
            "平均确认用时 Mean time to acknowledge",
            _fmt_duration(report.time_to_ack.mean_s),
        ),
        ("sum-mttc", "平均关闭用时 Mean time to close", _fmt_duration(report.time_to_close.mean_s)),
    ]
    page: dict[str, Any] = {
        "csp": META_CSP,
        "period": f"{_fmt_time(report.start, tz)} – {_fmt_time(report.end, tz)} ({offset})",
        "department": report.department,
        "generated": _fmt_time(report.generated_at, tz),
        "cards": cards,
        "total": report.total,
        "notes": METHOD_NOTES,
        "offset": offset,
    }
    if report.total:
        page["trend"] = _trend_section(report, tz)
        page["handling"] = _handling_tables(report)
        page.update(_who_tables(report))
    return _TEMPLATES.get_template("risk_report.html.j2").render(page)


def _trend_section(report: RiskReport, tz: tzinfo | None) -> dict[str, Any]:
    trend = report.trend
    head = [("起始 Start", False)] + [(_label(SEVERITY_LABELS, s), True) for s, _ in trend.series]
    head.append(("合计 Total", True))
    rows = [
        [_fmt_time(t, tz)] + [str(c[i]) for _, c in trend.series] + [str(trend.totals[i])]
        for i, t in enumerate(trend.starts)
        if trend.totals[i]
    ]
    return {
        "chart": _trend_chart(trend, tz),
        # The legend: the colour and label of each severity in the stack.
        "legend": [
            (SEVERITY_COLOURS.get(s, OTHER_COLOUR), _label(SEVERITY_LABELS, s))
            for s, _ in trend.series
        ],
        "step_zh": STEP_ZH[trend.step],
        "step_en": trend.step,
        "table": _table("t-trend", "每时段新建预警 Alerts raised per bucket", head, rows),
    }


def _handling_tables(report: RiskReport) -> dict[str, Any]:
    n = report.total
    times = [("确认 Acknowledge", report.time_to_ack), ("关闭 Close", report.time_to_close)]
    return {
        "severity": [
            _counts_table(
                "t-severity",
                "按严重程度 By severity",
                "严重程度 Severity",
                report.by_severity,
                SEVERITY_LABELS,
                n,
            ),
            _counts_table(
                "t-states",
                "按处置状态（当前） By handling state, now",
                "状态 State",
                report.by_state,
                STATE_LABELS,
                n,
            ),
            _counts_table(
                "t-activity",
                "按触发状态 By activity",
                "触发 Activity",
                report.by_activity,
                ACTIVITY_LABELS,
                n,
            ),
        ],
        "findings": [
            _counts_table(
                "t-findings",
                "现场核查结论 On-site verification findings",
                "结论 Finding",
                report.findings,
                FINDING_LABELS,
                n,
            ),
            _table(
                "t-times",
                "处置用时 Handling times",
                [
                    ("环节 Step", False),
                    ("预警数 Alerts", True),
                    ("平均 Mean", True),
                    ("中位数 Median", True),
                ],
                [
                    (step, str(t.n), _fmt_duration(t.mean_s), _fmt_duration(t.median_s))
                    for step, t in times
                ],
            ),
        ],
    }


def _who_tables(report: RiskReport) -> dict[str, Any]:
    """Operators of highest risk, sites, operators and rules."""
    top_risk = [
        (
            str(i),
            e.name or "—",
            Cell(text=e.entity_id, code=True),
            str(e.count),
            f"{e.total_score:.2f}",
            f"{e.max_score:.2f}",
            e.worst_grade,
        )
        for i, e in enumerate(report.top_risk, 1)
    ]
    most = report.sites[0].count if report.sites else 0
    sites = [
        (
            s.name or "—",
            Cell(text=s.site, code=True),
            s.department,
            str(s.count),
            str(s.severe),
            _bar(s.count, most),
        )
        for s in report.sites
    ]
    entities = [
        (
            e.name or "—",
            Cell(text=e.entity_id, code=True),
            str(e.count),
            f"{e.max_score:.2f}",
            e.worst_grade,
        )
        for e in report.entities
    ]
    with_kind = bool(report.by_rule) and report.by_rule[0].kind is not None
    rules = [
        [Cell(text=r.rule_id, code=True)]
        + ([r.kind or UNKNOWN_LABEL] if with_kind else [])
        + [str(r.count)]
        for r in report.by_rule
    ]
    rule_head = (
        [("规则 Rule", False)]
        + ([("类型 Kind", False)] if with_kind else [])
        + [("预警 Alerts", True)]
    )
    return {
        "top_risk": _table(
            "t-top-risk",
            f"风险分之和最高的 {TOP_RISK} 个主体 The {TOP_RISK} operators with the highest sum of "
            "risk scores",
            [
                ("排名 Rank", True),
                ("主体 Operator", False),
                ("统一社会信用代码 Credit code", False),
                ("预警 Alerts", True),
                ("风险分合计 Total risk", True),
                ("最高风险分 Highest", True),
                ("最差信用 Worst grade", False),
            ],
            top_risk,
        ),
        "sites": _table(
            "t-sites",
            f"预警最多的站点（共 {report.site_count} 个） Sites with most alerts "
            f"({report.site_count} in all)",
            [
                ("站点 Site", False),
                ("编号 Id", False),
                ("部门 Department", False),
                ("预警 Alerts", True),
                ("严重+重大 Critical+major", True),
                ("", False),
            ],
            sites,
        ),
        "entities": _table(
            "t-entities",
            f"预警最多的主体（共 {report.entity_count} 个） Operators with most alerts "
            f"({report.entity_count} in all)",
            [
                ("主体 Operator", False),
                ("统一社会信用代码 Credit code", False),
                ("预警 Alerts", True),
                ("最高风险分 Highest risk", True),
                ("最差信用 Worst grade", False),
            ],
            entities,
        ),
        "kinds": (
            _counts_table(
                "t-kinds", "按规则类型 By rule kind", "类型 Kind", report.by_kind, {}, report.total
            )
            if report.by_kind
            else None
        ),
        "rules": _table("t-rules", "按规则 By rule", rule_head, rules),
    }
