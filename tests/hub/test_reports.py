"""``GET /api/reports/risk`` through a real hub server over HTTP: auth, department scoping, checks
on the period, and the page's numbers and safety."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from farsight.clock import BEIJING, ManualClock
from farsight.registry import parse_registry
from farsight.types import AlertSignal
from hub.app import create_app
from hub.auth import TokenStore
from tests.alerts.test_report import Store, assert_self_contained, parse_page
from tests.hub.conftest import REGISTRY_DOC, bearer, make_settings, start_server, stop_server

START = datetime(2026, 11, 2, 0, 0, tzinfo=BEIJING)
FROM, TO = "2026-11-02T00:00:00+08:00", "2026-11-09T00:00:00+08:00"
EVIL_NAME = "Riverside <script>alert(1)</script> air station"
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


@dataclass
class ReportHub:
    base_url: str
    tokens: dict[str, str]
    store: Any


def _registry_doc() -> dict:
    doc = copy.deepcopy(REGISTRY_DOC)
    doc["sites"][0]["name"] = EVIL_NAME  # aq-1, department env
    return doc


@pytest.fixture(scope="module")
def report_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReportHub]:
    """A hub with the reports router, over a queue holding five alerts: three env, two transport."""
    data_dir: Path = tmp_path_factory.mktemp("report-hub")
    settings = make_settings(data_dir)
    registry = parse_registry(
        _registry_doc(), ("env", "transport"), source="tests/hub/test_reports registry"
    )
    database = getattr(settings, "database", None) or settings.db_path
    clock = ManualClock(START)
    store = Store(database, clock=clock)
    tokens = TokenStore(database, registry.departments)
    plan = [  # (hours after START, rule, site, metric, severity)
        (1, "rep.high", "aq-1", "pm25", "critical"),
        (26, "rep.flat", "stack-1", "so2", "major"),
        (27, "rep.flat", "stack-1", "nox", "major"),
        (50, "rep.over", "wim-1", "gross_weight", "warning"),
        (75, "rep.axles", "wim-1", "axles", "info"),
    ]
    for hours, rule, site_id, metric, severity in plan:
        clock.advance(START + timedelta(hours=hours) - clock.now())
        site = registry.get(site_id)
        assert site is not None
        store.apply(
            [
                AlertSignal(
                    rule_id=rule,
                    fingerprint=f"{rule}/{site_id}/{metric}",
                    status="firing",
                    site=site_id,
                    device=site.devices[0].id,
                    metric=metric,
                    severity=severity,
                    summary=f"{metric} high",
                    ts=clock.now(),
                    department=site.department,
                    entity_id=site.entity_id,
                )
            ]
        )
    clock.advance(
        START + timedelta(days=6) - clock.now()
    )  # "now" for the default period: all five within 7 days
    app = create_app(settings, registry, alerts=store, tokens=tokens)
    issued = {
        "admin": tokens.issue("admin", role="admin"),
        "env": tokens.issue("alice", "env", role="supervisor"),
        "transport": tokens.issue("bob", "transport", role="supervisor"),
    }
    server, thread, base_url = start_server(app)
    try:
        yield ReportHub(base_url, issued, store)
    finally:
        stop_server(server, thread)
        store.close()
        tokens.close()


@pytest.fixture
def http(report_hub: ReportHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=report_hub.base_url, timeout=30.0) as c:
        yield c


def get_report(http: httpx.Client, token: str | None, **params: str) -> httpx.Response:
    return http.get("/api/reports/risk", params=params, headers=bearer(token) if token else {})


def test_needs_a_token(http: httpx.Client) -> None:
    r = get_report(http, None, **{"from": FROM, "to": TO})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "<html" not in r.text
    r = get_report(http, "fs_not-a-real-token", **{"from": FROM, "to": TO})
    assert r.status_code == 401


def test_province_wide_report(report_hub: ReportHub, http: httpx.Client) -> None:
    r = get_report(http, report_hub.tokens["admin"], **{"from": FROM, "to": TO})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == REPORT_CSP
    assert (
        r.headers["cache-control"] == "no-store"
        and r.headers["x-content-type-options"] == "nosniff"
    )
    assert (
        "risk-report-20261102T0000+0800-20261109T0000+0800.html" in r.headers["content-disposition"]
    )
    page = r.text
    assert_self_contained(page)
    assert "<svg" in page and "风险预警报告 Risk warning report" in page
    assert "Riverside &lt;script&gt;alert(1)&lt;/script&gt; air station" in page
    p = parse_page(page)
    assert p.dd["sum-total"] == "5" and p.dd["meta-department"] == "全部 all departments"
    assert {k: p.dd[f"sum-{k}"] for k in ("critical", "major", "warning", "info")} == {
        "critical": "1",
        "major": "2",
        "warning": "1",
        "info": "1",
    }
    sites = {row[1]: (row[0], row[2], row[3]) for row in p.rows("t-sites")}
    assert sites == {
        "stack-1": ("Power plant stack 1", "env", "2"),
        "wim-1": ("Toll gate weigh station", "transport", "2"),
        "aq-1": (EVIL_NAME, "env", "1"),
    }
    # Daily trend of Beijing days: day 0 one, day 1 two, day 2 one, day 3 one.
    assert {row[0]: row[-1] for row in p.rows("t-trend")} == {
        "2026-11-02 00:00": "1",
        "2026-11-03 00:00": "2",
        "2026-11-04 00:00": "1",
        "2026-11-05 00:00": "1",
    }
    assert {row[0]: row[1] for row in p.rows("t-findings")}["尚未核查 not yet verified"] == "5"
    last = report_hub.store.audit.entries(after_seq=report_hub.store.audit.head()[0] - 1)[0]
    assert (last.action, last.subject) == ("export", "report:risk") and last.data[
        "department"
    ] is None


def test_department_token_sees_only_its_department(
    report_hub: ReportHub, http: httpx.Client
) -> None:
    env = report_hub.tokens["env"]
    for params in ({"from": FROM, "to": TO}, {"from": FROM, "to": TO, "department": "env"}):
        r = get_report(http, env, **params)
        assert r.status_code == 200, r.text
        p = parse_page(r.text)
        assert p.dd["sum-total"] == "3" and p.dd["meta-department"] == "env"
        assert {row[1] for row in p.rows("t-sites")} == {"aq-1", "stack-1"}
        assert "wim-1" not in r.text and "Toll gate" not in r.text
    r = get_report(http, env, **{"from": FROM, "to": TO, "department": "transport"})
    assert r.status_code == 403 and "transport" in r.json()["detail"]
    r = get_report(http, report_hub.tokens["transport"], **{"from": FROM, "to": TO})
    p = parse_page(r.text)
    assert (
        r.status_code == 200
        and p.dd["sum-total"] == "2"
        and [row[1] for row in p.rows("t-sites")] == ["wim-1"]
    )


def test_province_wide_token_may_pick_a_department(
    report_hub: ReportHub, http: httpx.Client
) -> None:
    r = get_report(
        http, report_hub.tokens["admin"], **{"from": FROM, "to": TO, "department": "transport"}
    )
    assert r.status_code == 200
    assert parse_page(r.text).dd["sum-total"] == "2"
    r = get_report(
        http, report_hub.tokens["admin"], **{"from": FROM, "to": TO, "department": "health"}
    )
    assert r.status_code == 422 and "unknown department 'health'" in r.json()["detail"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-11-02T00:00:00", "to": TO}, "UTC offset"),
        ({"from": "yesterday", "to": TO}, "ISO 8601"),
        ({"from": FROM, "to": "2026-11-09"}, "UTC offset"),
        ({"from": TO, "to": FROM}, "must be before"),
        ({"from": FROM, "to": FROM}, "must be before"),
        (
            {"from": "2025-11-01T00:00:00+08:00", "to": "2026-11-03T00:00:00+08:00"},
            "longer than 366 days",
        ),
    ],
)
def test_bad_times_are_422(
    report_hub: ReportHub, http: httpx.Client, params: dict[str, str], message: str
) -> None:
    r = get_report(http, report_hub.tokens["admin"], **params)
    assert r.status_code == 422
    assert message in r.json()["detail"]


def test_unescaped_plus_in_the_query_string(report_hub: ReportHub, http: httpx.Client) -> None:
    # A hand-typed URL: '+' arrives as a space and still means the offset.
    r = http.get(
        f"/api/reports/risk?from={FROM}&to={TO}", headers=bearer(report_hub.tokens["admin"])
    )
    assert r.status_code == 200, r.text
    assert parse_page(r.text).dd["sum-total"] == "5"


def test_empty_period_and_default_period(report_hub: ReportHub, http: httpx.Client) -> None:
    quiet = {"from": "2026-10-01T00:00:00+08:00", "to": "2026-10-08T00:00:00+08:00"}
    r = get_report(http, report_hub.tokens["admin"], **quiet)
    assert r.status_code == 200
    assert "No alerts in this period" in r.text and "<svg" not in r.text
    assert parse_page(r.text).dd["sum-total"] == "0"
    # No times: the seven days before the queue's now (START + 6 days) hold all five alerts.
    r = get_report(http, report_hub.tokens["admin"])
    assert r.status_code == 200
    assert parse_page(r.text).dd["sum-total"] == "5"
    # Only "to": seven days before it; the first alert (START + 1 h) falls out of this one.
    r = get_report(http, report_hub.tokens["admin"], to="2026-11-09T02:00:00+08:00")
    assert parse_page(r.text).dd["sum-total"] == "4"
