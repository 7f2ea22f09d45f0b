"""The risk warning report: numbers from real databases (SQLite, and PostgreSQL where the store
speaks it), the HTML page drawn from them, and ``farsight report risk`` writing the file."""

from __future__ import annotations

import argparse
import copy
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from alerts.model import FINDINGS, STATES, TRANSITIONS
from alerts.report import (
    MAX_RANGE,
    NOT_VERIFIED,
    RiskReport,
    collect_risk_report,
    default_range,
    parse_report_time,
    render_risk_report_html,
    report_filename,
)
from alerts.store import AlertStore as Store
from app.commands.risk_report import add_parser
from farsight.clock import BEIJING, ManualClock
from farsight.credit import make_credit_code
from farsight.registry import Registry, parse_registry
from farsight.types import AlertSignal

START = datetime(
    2026, 11, 2, 0, 0, tzinfo=BEIJING
)  # a Beijing midnight: daily buckets are Beijing days
END = START + timedelta(days=7)
ENTITY_A = make_credit_code("91420500MA4900101")
ENTITY_B = make_credit_code("91420500MA4900102")
ENTITY_T = make_credit_code("91420900MA4900103")
EVIL_NAME = 'Riverside <script>alert("x")</script> & <b>air</b> station'
EVIDENCE = ("a" * 64, "b" * 64)

REGISTRY_DOC: dict[str, Any] = {
    "sites": [
        {
            "id": "aq-1",
            "name": EVIL_NAME,
            "department": "env",
            "entity_id": ENTITY_A,
            "entity_name": "Riverside Monitoring <Co.>",
            "location": {"lon": 111.29, "lat": 30.70},
            "credit_grade": "A",
            "devices": [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25", "pm10"]}],
        },
        {
            "id": "stack-1",
            "name": "Power plant stack 1",
            "department": "env",
            "entity_id": ENTITY_B,
            "entity_name": "Xiling Power Co.",
            "location": {"lon": 111.35, "lat": 30.65},
            "credit_grade": "C",
            "devices": [{"id": "cems1", "kind": "cems", "metrics": ["so2", "nox"]}],
        },
        {
            "id": "wim-1",
            "name": "G4 weigh station",
            "department": "transport",
            "entity_id": ENTITY_T,
            "location": {"lon": 113.92, "lat": 30.93},
            "credit_grade": "D",
            "devices": [{"id": "wim1", "kind": "wim", "metrics": ["gross_weight"]}],
        },
    ]
}

FIRST_STATE = STATES[0]
CLOSED = next(iter(set(TRANSITIONS["close"].values())))


def make_registry() -> Registry:
    return parse_registry(
        copy.deepcopy(REGISTRY_DOC),
        ("env", "transport"),
        source="tests/alerts/test_report registry",
    )


def sig(
    rule_id: str,
    site: str,
    metric: str,
    severity: str,
    ts: datetime,
    *,
    status: str = "firing",
    credit_grade: str = "B",
    evidence: tuple[str, ...] = (),
) -> AlertSignal:
    s = make_registry().get(site)
    assert s is not None
    return AlertSignal(
        rule_id=rule_id,
        fingerprint=f"{rule_id}/{site}/{metric}",
        status=status,
        site=site,
        device=s.devices[0].id,
        metric=metric,
        severity=severity,
        summary=f"{metric} at {site}",
        ts=ts,
        value=1.0,
        threshold=0.5,
        department=s.department,
        entity_id=s.entity_id,
        credit_grade=credit_grade,
        evidence=evidence,
    )


# -- the scenario ----------------------------------------------------------------------------------


@dataclass
class Scenario:
    """A store filled with a known history, and the alerts the period should count."""

    store: Any
    clock: ManualClock
    ids: dict[str, int] = field(default_factory=dict)

    def at(self, offset: timedelta) -> None:
        """Move the clock to START + offset (forward only, as time goes)."""
        target = START + offset
        assert target >= self.clock.now(), "scenario steps must go forward in time"
        self.clock.advance(target - self.clock.now())

    def raise_(self, name: str, offset: timedelta, signal: AlertSignal) -> None:
        self.at(offset)
        (a,) = self.store.apply([signal])
        self.ids[name] = a.id

    def act(
        self, name: str, offset: timedelta, action: str, data: dict[str, Any] | None = None
    ) -> None:
        self.at(offset)
        self.store.transition(self.ids[name], action, "li.wei", f"{action} in test", data)


H = timedelta(hours=1)
M = timedelta(minutes=1)
DISPATCH = {"team": "Xiling team", "inspector": "wang.fang", "due": "2026-11-10"}


def fill(store: Any, clock: ManualClock) -> Scenario:
    """Seven alerts: one before the period, five in it (four env, one transport), one after it.

    a1 aq-1 critical 00:30 day 0, 2 evidence files; acked at +30 min, verified violation, closed
    at +6 h
    a2 aq-1 warning 23:30 day 0 (Beijing), i.e. 15:30 UTC: same UTC day as a3, another Beijing day
    a3 stack-1 major 00:30 day 1 (Beijing); acked at +10 min, verified equipment fault, not closed
    a4 stack-1 major 01:00 day 1, 2 evidence files; closed at +1 h, reopened, closed again at +2 h
    30 (the last
       close counts)
    a5 wim-1 info day 3 (transport), resolved an hour later
    """
    s = Scenario(store, clock)
    s.raise_("before", -H, sig("r.high", "aq-1", "pm25", "critical", START - H))
    s.act("before", -H + 5 * M, "ack")  # outside the period: must not count in the mean times
    s.act("before", -H + 6 * M, "close")
    s.raise_(
        "a1",
        30 * M,
        sig(
            "r.high",
            "aq-1",
            "pm25",
            "critical",
            START + 30 * M,
            credit_grade="A",
            evidence=EVIDENCE,
        ),
    )
    s.act("a1", H, "ack")
    s.act("a1", 2 * H, "dispatch", DISPATCH)
    s.act("a1", 5 * H, "verify", {"finding": "violation_confirmed"})
    s.act("a1", 6 * H + 30 * M, "close", {"case_number": "2026-001"})
    s.raise_(
        "a2", 23 * H + 30 * M, sig("r.high", "aq-1", "pm10", "warning", START + 23 * H + 30 * M)
    )
    s.raise_(
        "a3",
        24 * H + 30 * M,
        sig("r.flat", "stack-1", "so2", "major", START + 24 * H + 30 * M, credit_grade="C"),
    )
    s.act("a3", 24 * H + 40 * M, "ack")
    s.raise_(
        "a4",
        25 * H,
        sig(
            "r.flat", "stack-1", "nox", "major", START + 25 * H, credit_grade="C", evidence=EVIDENCE
        ),
    )
    s.act("a4", 26 * H, "close")
    s.act("a4", 26 * H + 30 * M, "reopen")
    s.act("a3", 27 * H, "dispatch", DISPATCH)
    s.act("a4", 27 * H + 30 * M, "close")
    s.act("a3", 28 * H, "verify", {"finding": "equipment_fault"})
    s.raise_(
        "a5",
        72 * H,
        sig("t.over", "wim-1", "gross_weight", "info", START + 72 * H, credit_grade="D"),
    )
    s.at(73 * H)
    s.store.apply(
        [sig("t.over", "wim-1", "gross_weight", "info", START + 73 * H, status="resolved")]
    )
    s.raise_("after", 7 * 24 * H + H, sig("r.high", "aq-1", "pm25", "critical", END + H))
    return s


IN_PERIOD = ("a1", "a2", "a3", "a4", "a5")


@pytest.fixture(params=["sqlite", "postgres"])
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scenario]:
    """The scenario in a real database file, and again in a real PostgreSQL database."""
    clock = ManualClock(START - 2 * H)
    if request.param == "sqlite":
        store = Store(tmp_path / "var" / "farsight.db", clock=clock)
    else:
        store = Store(request.getfixturevalue("postgres_url"), clock=clock)
    try:
        yield fill(store, clock)
    finally:
        store.close()


def collect(
    s: Scenario,
    start: datetime = START,
    end: datetime = END,
    department: str | None = None,
    **kw: Any,
) -> RiskReport:
    return collect_risk_report(
        s.store,
        start=start,
        end=end,
        department=department,
        registry=make_registry(),
        now=s.clock.now(),
        **kw,
    )


# -- numbers ---------------------------------------------------------------------------------------


def test_totals_states_severities_and_activity(scenario: Scenario) -> None:
    r = collect(scenario)
    assert r.total == 5
    assert (
        r.range == (START, END) and r.department is None and r.generated_at == scenario.clock.now()
    )
    assert dict(r.by_severity) == {"critical": 1, "major": 2, "warning": 1, "info": 1}
    assert [k for k, _ in r.by_severity] == ["critical", "major", "warning", "info"]
    # Expected states are read back from the store one alert at a time, not from the report's SQL.
    expected_states = Counter(scenario.store.get(scenario.ids[n]).state for n in IN_PERIOD)
    assert {k: v for k, v in r.by_state if v} == dict(expected_states)
    assert [k for k, _ in r.by_state][: len(STATES)] == list(STATES)
    assert dict(r.by_state)[FIRST_STATE] == 2 and dict(r.by_state)[CLOSED] == 2
    assert dict(r.by_activity) == {"firing": 4, "resolved": 1}


def test_sites_entities_and_rules(scenario: Scenario) -> None:
    r = collect(scenario, rule_kinds={"r.high": "threshold", "r.flat": "flatline"})
    assert [(s.site, s.name, s.department, s.count, s.severe) for s in r.sites] == [
        ("stack-1", "Power plant stack 1", "env", 2, 2),
        ("aq-1", EVIL_NAME, "env", 2, 1),
        ("wim-1", "G4 weigh station", "transport", 1, 0),
    ]
    assert r.site_count == 3 and r.entity_count == 3
    ents = {e.entity_id: e for e in r.entities}
    assert {k: (e.name, e.count, e.worst_grade) for k, e in ents.items()} == {
        ENTITY_A: ("Riverside Monitoring <Co.>", 2, "B"),  # a1 graded A, a2 B: the worse one shows
        ENTITY_B: ("Xiling Power Co.", 2, "C"),
        ENTITY_T: (None, 1, "D"),  # no entity_name in the registry
    }
    assert [(x.rule_id, x.kind, x.count) for x in r.by_rule] == [
        ("r.flat", "flatline", 2),
        ("r.high", "threshold", 2),
        ("t.over", "", 1),
    ]
    assert dict(r.by_kind) == {"threshold": 2, "flatline": 2, "": 1}
    # Without a kind map there are no kinds, and no rule claims one.
    plain = collect(scenario)
    assert plain.by_kind == () and {x.kind for x in plain.by_rule} == {None}


def test_risk_scores_agree_with_the_queue(scenario: Scenario) -> None:
    r = collect(scenario)
    # The queue's own score of each alert (store.get computes it at the store clock's now).
    score = {n: scenario.store.get(scenario.ids[n]).risk["score"] for n in IN_PERIOD}
    expected = {
        ENTITY_A: (score["a1"] + score["a2"], max(score["a1"], score["a2"])),
        ENTITY_B: (score["a3"] + score["a4"], max(score["a3"], score["a4"])),
        ENTITY_T: (score["a5"], score["a5"]),
    }
    got = {e.entity_id: (e.total_score, e.max_score) for e in r.top_risk}
    assert got.keys() == expected.keys()
    for k, (total, peak) in expected.items():
        assert got[k] == (pytest.approx(total, abs=0.01), pytest.approx(peak, abs=0.01))
    # Ranked by the sum of scores, highest first.
    assert [e.entity_id for e in r.top_risk] == sorted(expected, key=lambda k: -expected[k][0])
    # The sum ranks: stack-1's operator has two middling alerts and comes first, although
    # aq-1's operator has the single highest score (a1: critical, with evidence).
    assert [e.entity_id for e in r.top_risk] == [ENTITY_B, ENTITY_A, ENTITY_T]
    assert r.top_risk[0].max_score < r.top_risk[1].max_score


def test_daily_trend_counts_the_reports_own_days(scenario: Scenario) -> None:
    r = collect(scenario)
    t = r.trend
    assert t.step == "day" and len(t.starts) == 7
    assert t.starts[0] == START and t.starts[1] == START + timedelta(days=1)
    # a2 (23:30 Beijing, day 0) and a3 (00:30 Beijing, day 1) share a UTC day but not a Beijing one.
    assert t.counts("critical") == (1, 0, 0, 0, 0, 0, 0)
    assert t.counts("warning") == (1, 0, 0, 0, 0, 0, 0)
    assert t.counts("major") == (0, 2, 0, 0, 0, 0, 0)
    assert t.counts("info") == (0, 0, 0, 1, 0, 0, 0)
    assert t.totals == (2, 2, 0, 1, 0, 0, 0)
    # The same period seen from UTC: buckets open at UTC midnight, a2 and a3 now share one.
    utc = collect(scenario, start=START.astimezone(UTC), end=END.astimezone(UTC))
    assert utc.trend.starts[0] == datetime(2026, 11, 1, tzinfo=UTC)
    assert utc.trend.totals == (1, 3, 0, 1, 0, 0, 0, 0)


def test_hourly_trend_for_two_days_or_less(scenario: Scenario) -> None:
    r = collect(scenario, end=START + timedelta(days=2))
    assert r.trend.step == "hour" and len(r.trend.starts) == 48
    hours = {i: n for i, n in enumerate(r.trend.totals) if n}
    assert hours == {
        0: 1,
        23: 1,
        24: 1,
        25: 1,
    }  # a1 00:30, a2 23:30, then a3 00:30 and a4 01:00 the next day
    assert r.trend.counts("major")[24] == 1 and r.trend.counts("major")[25] == 1
    longer = collect(scenario, end=START + timedelta(days=2, minutes=1))
    assert longer.trend.step == "day"


def test_trend_starts_at_the_hour_or_midnight_before_a_ragged_start(scenario: Scenario) -> None:
    r = collect(scenario, start=START + 12 * H, end=START + timedelta(days=5))
    assert r.trend.starts[0] == START and len(r.trend.starts) == 5
    assert r.trend.totals == (1, 2, 0, 1, 0)  # a1 (00:30) is before the period; a2 is in it
    assert r.total == 4


def test_findings_and_handling_times(scenario: Scenario) -> None:
    r = collect(scenario)
    findings = dict(r.findings)
    assert list(findings) == [*FINDINGS, NOT_VERIFIED]
    assert findings == {
        "violation_confirmed": 1,
        "no_violation": 0,
        "equipment_fault": 1,
        "data_fault": 0,
        NOT_VERIFIED: 3,
    }
    # First ack: a1 after 30 min, a3 after 10 min. The alert before the period does not count.
    assert r.time_to_ack.n == 2
    assert r.time_to_ack.mean_s == pytest.approx(20 * 60)
    assert r.time_to_ack.median_s == pytest.approx(20 * 60)
    # Closed: a1 after 6 h; a4 after 2 h 30 (its last close, after a reopen). a3 is not closed.
    assert r.time_to_close.n == 2
    assert r.time_to_close.mean_s == pytest.approx((6 * 3600 + 2.5 * 3600) / 2)


def test_department_scoping(scenario: Scenario) -> None:
    env = collect(scenario, department="env")
    assert env.total == 4 and env.department == "env"
    assert {s.site for s in env.sites} == {"aq-1", "stack-1"}
    assert {e.entity_id for e in env.top_risk} == {ENTITY_A, ENTITY_B}
    assert dict(env.by_severity)["info"] == 0
    transport = collect(scenario, department="transport")
    assert transport.total == 1 and [s.site for s in transport.sites] == ["wim-1"]
    assert transport.trend.totals == (0, 0, 0, 1, 0, 0, 0)
    assert transport.time_to_ack.n == 0 and transport.time_to_ack.mean_s is None


def test_empty_period(scenario: Scenario) -> None:
    r = collect(scenario, start=START - timedelta(days=30), end=START - timedelta(days=20))
    assert (
        r.total == 0 and r.sites == () and r.entities == () and r.top_risk == () and r.by_rule == ()
    )
    assert all(n == 0 for _, n in r.by_state + r.by_severity + r.findings)
    assert set(r.trend.totals) == {0} and len(r.trend.starts) == 10
    assert r.time_to_ack == r.time_to_close and r.time_to_close.mean_s is None
    page = render_risk_report_html(r)
    assert "No alerts in this period" in page and "本期无预警" in page
    assert "<svg" not in page
    assert parse_page(page).dd["sum-total"] == "0"


def test_top_sites_limit(scenario: Scenario) -> None:
    r = collect(scenario, top_sites=1)
    assert [s.site for s in r.sites] == ["stack-1"] and r.site_count == 3
    assert len(r.entities) == 1 and r.entity_count == 3
    with pytest.raises(ValueError, match="top_sites"):
        collect(scenario, top_sites=0)


# -- portability -----------------------------------------------------------------------------------


class RecordingDb:
    """Passes queries to the real database and keeps each statement and its parameters."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.dialect = getattr(db, "dialect", "sqlite")
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def query(self, sql: str, params: Any = ()) -> Any:
        self.calls.append((sql, tuple(params)))
        return self.db.query(sql, params)


FORBIDDEN = re.compile(
    r"json_|strftime|julianday|datetime\(|date\(|ifnull|printf|group_concat|\bilike\b|::|%s|\$\d"
    r"|pragma|greatest|least|\b(?:min|max)\([^)]*,",
    re.IGNORECASE,
)


def test_sql_is_portable_and_fully_bound(tmp_path: Path) -> None:
    clock = ManualClock(START - 2 * H)
    store = Store(tmp_path / "farsight.db", clock=clock)
    try:
        s = fill(store, clock)
        rec = RecordingDb(store.db)
        proxy = SimpleNamespace(db=rec, clock=clock, risk_params=store.risk_params)
        via_proxy = collect_risk_report(
            proxy, start=START, end=END, department="env", registry=make_registry()
        )
        assert via_proxy == collect(s, department="env")
    finally:
        store.close()
    assert len(rec.calls) >= 5
    for sql, params in rec.calls:
        assert not FORBIDDEN.search(sql), sql
        assert "'" not in sql, f"a value was written into the SQL instead of bound: {sql}"
        assert sql.count("?") == len(params), sql
        assert "env" in params  # every statement is scoped to the department


# -- checks on arguments -------------------------------------------------------------------------


def test_bad_periods_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "farsight.db")
    try:
        with pytest.raises(ValueError, match="UTC offset"):
            collect_risk_report(store, start=datetime(2026, 11, 1), end=END, department=None)
        with pytest.raises(ValueError, match="before"):
            collect_risk_report(store, start=END, end=START, department=None)
        with pytest.raises(ValueError, match="before"):
            collect_risk_report(store, start=START, end=START, department=None)
        with pytest.raises(ValueError, match="366 days"):
            collect_risk_report(
                store, start=START, end=START + MAX_RANGE + timedelta(seconds=1), department=None
            )
        # A full leap year is allowed.
        r = collect_risk_report(store, start=START, end=START + MAX_RANGE, department=None)
        assert r.total == 0 and r.trend.step == "day" and len(r.trend.starts) == 366
    finally:
        store.close()


def test_parse_report_time() -> None:
    assert parse_report_time("2026-11-02T00:00:00+08:00") == START
    assert parse_report_time("2026-11-02T00:00:00+08:00").utcoffset() == timedelta(hours=8)
    assert parse_report_time("2026-11-01T16:00:00Z") == START
    assert (
        parse_report_time("2026-11-02T00:00:00 08:00") == START
    )  # '+' unescaped in a query string
    with pytest.raises(ValueError, match="UTC offset"):
        parse_report_time("2026-11-02T00:00:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_report_time("next tuesday", "from")


def test_report_filename() -> None:
    assert report_filename(START, END) == "risk-report-20261102T0000+0800-20261109T0000+0800.html"


# -- the page --------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Cells of every table with an id, texts of <dd id=...>, and every tag and attribute seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.dd: dict[str, str] = {}
        self.tags: Counter[str] = Counter()
        self.attrs: list[tuple[str, str, str]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._dd: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        a = {k: v or "" for k, v in attrs}
        self.attrs += [(tag, k, v) for k, v in a.items()]
        if tag == "table" and "id" in a:
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "dd" and "id" in a:
            self._dd, self._text = a["id"], []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "dd" and self._dd is not None:
            self.dd[self._dd] = "".join(self._text).strip()
            self._dd = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._dd is not None:
            self._text.append(data)

    def rows(self, table_id: str) -> list[list[str]]:
        """The table's body rows (the header row dropped)."""
        return self.tables[table_id][1:]


def parse_page(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def assert_self_contained(page: str) -> None:
    """No script, no external resource of any kind, and nothing that could fetch one."""
    low = page.lower()
    assert "<script" not in low
    assert "http://" not in low and "https://" not in low
    assert "url(" not in low and "@import" not in low
    p = parse_page(page)
    for tag in ("script", "link", "img", "iframe", "object", "embed", "a", "form", "base"):
        assert p.tags[tag] == 0, tag
    for tag, name, value in p.attrs:
        assert not name.startswith("on"), (tag, name)  # no event handlers
        assert name not in ("src", "href", "xlink:href", "action", "srcset"), (tag, name, value)


def test_html_page_numbers_and_safety(scenario: Scenario) -> None:
    r = collect(scenario, rule_kinds={"r.high": "threshold", "r.flat": "flatline"})
    page = render_risk_report_html(r)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in page
    assert "风险预警报告 Risk warning report" in page
    assert_self_contained(page)
    # The malicious site name is shown, escaped (Jinja2 writes '"' as &#34;); the operator too.
    assert (
        "Riverside &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; "
        "&lt;b&gt;air&lt;/b&gt; station" in page
    )
    assert "Riverside Monitoring &lt;Co.&gt;" in page
    # The trend chart: an inline SVG with an accessible title, one rect per non-zero severity
    # bucket.
    svg = re.search(r"<svg\b.*?</svg>", page, re.DOTALL)
    assert svg is not None and "<title" in svg.group(0) and 'role="img"' in svg.group(0)
    assert (
        svg.group(0).count("<rect")
        == sum(1 for _, counts in r.trend.series for c in counts if c)
        == 4
    )
    p = parse_page(page)
    assert p.dd["sum-total"] == "5" and p.dd["sum-critical"] == "1" and p.dd["sum-major"] == "2"
    assert p.dd["sum-mtta"] == "20 min" and p.dd["sum-mttc"] == "4.2 h"
    assert p.dd["meta-department"] == "全部 all departments"
    assert [(row[1], row[3], row[4]) for row in p.rows("t-sites")] == [
        ("stack-1", "2", "2"),
        ("aq-1", "2", "1"),
        ("wim-1", "1", "0"),
    ]
    assert p.rows("t-sites")[1][0] == EVIL_NAME
    findings = {row[0]: row[1] for row in p.rows("t-findings")}
    assert findings == {
        "确认违法 violation confirmed": "1",
        "未发现违法 no violation": "0",
        "设备故障 equipment fault": "1",
        "数据异常 data fault": "0",
        "尚未核查 not yet verified": "3",
    }
    assert [row[2] for row in p.rows("t-top-risk")] == [e.entity_id for e in r.top_risk]
    assert [row[3] for row in p.rows("t-top-risk")] == [str(e.count) for e in r.top_risk]
    trend_rows = {row[0]: row[1:] for row in p.rows("t-trend")}
    assert trend_rows == {
        "2026-11-02 00:00": ["1", "0", "1", "0", "2"],
        "2026-11-03 00:00": ["0", "2", "0", "0", "2"],
        "2026-11-05 00:00": ["0", "0", "0", "1", "1"],
    }
    assert {row[0]: row[1] for row in p.rows("t-kinds")} == {
        "threshold": "2",
        "flatline": "2",
        "未知 unknown": "1",
    }
    assert [row[1] for row in p.rows("t-rules")] == ["flatline", "threshold", "未知 unknown"]


def test_html_of_one_department(scenario: Scenario) -> None:
    page = render_risk_report_html(collect(scenario, department="transport"))
    assert_self_contained(page)
    p = parse_page(page)
    assert p.dd["sum-total"] == "1" and p.dd["meta-department"] == "transport"
    assert [row[1] for row in p.rows("t-sites")] == ["wim-1"]
    assert "aq-1" not in page and "stack-1" not in page


# -- the command -----------------------------------------------------------------------------------


WEEK = ("2026-11-02T00:00:00+08:00", "2026-11-09T00:00:00+08:00")


def build_cli() -> argparse.ArgumentParser:
    """The main CLI's shape: a global --config, then subcommands (add_parser adds `report`)."""
    parser = argparse.ArgumentParser(prog="farsight")
    parser.add_argument("--config", "-c", type=Path, default=None)
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    return parser


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file, a registry file and a database holding the scenario; returns the settings
    file."""
    for name in [k for k in os.environ if k.startswith("FARSIGHT")]:
        monkeypatch.delenv(name)
    (tmp_path / "sites.yaml").write_text(
        yaml.safe_dump(REGISTRY_DOC, allow_unicode=True), encoding="utf-8"
    )
    cfg = tmp_path / "farsight.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "var"),
                "registry": {"sites_file": str(tmp_path / "sites.yaml")},
            }
        ),
        encoding="utf-8",
    )
    clock = ManualClock(START - 2 * H)
    store = Store(tmp_path / "var" / "farsight.db", clock=clock)
    try:
        fill(store, clock)
        # One alert of a default-pack rule, so the page names its kind from the loaded rules.
        clock.advance(START + 4 * 24 * H - clock.now())
        store.apply([sig("cems-so2-hourly-mean", "stack-1", "so2", "major", START + 4 * 24 * H)])
    finally:
        store.close()
    return cfg


def test_cli_writes_the_report(
    installation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "week.html"
    args = build_cli().parse_args(
        [
            "report",
            "risk",
            "--from",
            WEEK[0],
            "--to",
            WEEK[1],
            "--config",
            str(installation),
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    assert capsys.readouterr().out == f"{out}\n"
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    p = parse_page(page)
    assert p.dd["sum-total"] == "6" and p.dd["sum-major"] == "3"
    assert {row[0]: row[1] for row in p.rows("t-kinds")}["window"] == "1"
    assert "&lt;script&gt;" in page
    assert not list(out.parent.glob(".*.tmp")), "the temporary file was left behind"
    # Writing a report is an export: the audit chain names who ran it.
    from alerts.audit_store import SqlAuditLog

    with SqlAuditLog(installation.parent / "var" / "farsight.db", create=False) as audit:
        last = audit.entries(after_seq=audit.head()[0] - 1)[0]
        assert (last.action, last.subject, last.data["alerts"]) == ("export", "report:risk", 6)
        assert last.actor.startswith("os:") and audit.verify().ok


def test_cli_department_default_file_name_and_global_config(
    installation: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    # --config before the subcommand (the main CLI's global option) must reach the handler.
    args = build_cli().parse_args(
        [
            "--config",
            str(installation),
            "report",
            "risk",
            "--from",
            WEEK[0],
            "--to",
            WEEK[1],
            "--department",
            "transport",
        ]
    )
    assert args.func(args) == 0
    expected = work / "risk-report-20261102T0000+0800-20261109T0000+0800.html"
    assert capsys.readouterr().out.strip() == str(expected)
    p = parse_page(expected.read_text(encoding="utf-8"))
    assert p.dd["sum-total"] == "1" and [row[1] for row in p.rows("t-sites")] == ["wim-1"]


def test_cli_default_period_is_the_last_seven_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in os.environ if k.startswith("FARSIGHT")]:
        monkeypatch.delenv(name)
    cfg = tmp_path / "farsight.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "var")}), encoding="utf-8")
    store = Store(tmp_path / "var" / "farsight.db")  # the real clock, as the command's store has
    now = datetime.now(UTC)
    store.apply(
        [
            AlertSignal(
                rule_id="r.now",
                fingerprint="now",
                status="firing",
                site="yc-aq-xiling",
                device="aq1",
                metric="pm25",
                severity="major",
                summary="now",
                ts=now,
                department="env",
            )
        ]
    )
    store.close()
    out = tmp_path / "r.html"
    args = build_cli().parse_args(["report", "risk", "--config", str(cfg), "--out", str(out)])
    assert args.func(args) == 0
    p = parse_page(out.read_text(encoding="utf-8"))
    assert p.dd["sum-total"] == "1"
    assert capsys.readouterr().out.strip() == str(out)


def test_cli_refuses_bad_arguments(
    installation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = build_cli()
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(
            ["report", "risk", "--from", "2026-11-02T00:00:00", "--config", str(installation)]
        )
    assert exc.value.code == 2 and "UTC offset" in capsys.readouterr().err
    base = ["report", "risk", "--config", str(installation), "--out", str(tmp_path / "x.html")]
    args = cli.parse_args(
        base + ["--from", "2026-11-09T00:00:00+08:00", "--to", "2026-11-02T00:00:00+08:00"]
    )
    assert args.func(args) == 2 and "before" in capsys.readouterr().err
    args = cli.parse_args(base + ["--from", "2025-01-01T00:00:00Z", "--to", "2026-11-02T00:00:00Z"])
    assert args.func(args) == 2 and "366 days" in capsys.readouterr().err
    args = cli.parse_args(base + ["--department", "health"])
    assert args.func(args) == 2 and "unknown department 'health'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_cli_needs_an_existing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in os.environ if k.startswith("FARSIGHT")]:
        monkeypatch.delenv(name)
    cfg = tmp_path / "farsight.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "nothing")}), encoding="utf-8")
    args = build_cli().parse_args(
        ["report", "risk", "--config", str(cfg), "--out", str(tmp_path / "r.html")]
    )
    assert args.func(args) == 1
    assert "no database" in capsys.readouterr().err
    assert (
        not (tmp_path / "nothing" / "farsight.db").exists() and not (tmp_path / "r.html").exists()
    )


def test_default_range_takes_the_given_offset() -> None:
    now = datetime(2026, 11, 9, 4, 0, tzinfo=UTC)
    assert default_range(now) == (now - timedelta(days=7), now)
    start, end = default_range(now, start=START)
    assert start == START and end == now and end.utcoffset() == timedelta(hours=8)
    start, end = default_range(now, end=END)
    assert (start, end) == (END - timedelta(days=7), END) and start.utcoffset() == timedelta(
        hours=8
    )
