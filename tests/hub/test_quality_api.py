"""``/api/quality``, ``/api/quality/summary`` and ``/api/reports/quality`` over a real hub: the
figures of a known hour, and each department sees only its own sites."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import httpx
import pytest

from farsight.clock import BEIJING
from farsight.types import Reading
from ingest.store import DeadLetter
from tests.hub.conftest import LiveHub, bearer

HOUR = datetime(2025, 3, 10, 10, tzinfo=BEIJING)
"""A past hour no other test writes: aq-1 misses minutes 0-9, PM2.5 is flagged M in 10-14."""


@pytest.fixture(scope="module")
def known_hour(hub: LiveHub) -> None:
    readings = [
        Reading(
            "aq-1",
            "aq1",
            metric,
            20.0,
            "ug/m3",
            HOUR + timedelta(minutes=m),
            flag="M" if metric == "pm25" and m < 15 else "N",
        )
        for m in range(10, 60)
        for metric in ("pm25", "pm10")
    ]
    hub.readings.write_batch(
        readings,
        dead=[DeadLetter("fs/v1/env/aq-1/aq1/reading", b"{", "json", "bad", HOUR)],
        received=HOUR + timedelta(hours=1),
    )


def _get(hub: LiveHub, token: str, path: str, **params: str) -> httpx.Response:
    with httpx.Client(base_url=hub.base_url, timeout=30) as c:
        return c.get(path, params=params, headers=bearer(token))


RANGE = {"from": HOUR.isoformat(), "to": (HOUR + timedelta(hours=1)).isoformat()}


def test_figures_of_a_known_hour(hub: LiveHub, tokens: dict[str, str], known_hour: None) -> None:
    r = _get(hub, tokens["env"], "/api/quality", site="aq-1", interval="hour", **RANGE)
    assert r.status_code == 200, r.text
    body = r.json()
    (site, dev) = body["figures"]
    assert (site["device"], dev["device"]) == ("", "aq1")
    assert (dev["expected"], dev["received"], dev["valid"]) == (120, 100, 95)
    # PM2.5 has exactly 45 valid minutes (an HJ 75 valid hour), PM10 50.
    assert (dev["hourly_values"], dev["hourly_valid"]) == (2, 2)
    assert dev["effective_rate"] == round(95 / 120, 4) and dev["completeness"] == round(
        100 / 120, 4
    )
    # Received at 11:00: minutes 10-54 are more than 300 s late.
    assert dev["latency_max_s"] == 3000.0 and dev["late"] == 90
    assert body["refusals"] == [
        {"site": "aq-1", "device": "aq1", "dead_letters": {"json": 1}, "irregularities": {}}
    ]


def test_a_department_reads_only_its_own_sites(
    hub: LiveHub, tokens: dict[str, str], known_hour: None
) -> None:
    foreign = _get(hub, tokens["transport"], "/api/quality", site="aq-1", **RANGE)
    missing = _get(hub, tokens["transport"], "/api/quality", site="no-such-site", **RANGE)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == {"detail": "no site 'aq-1'"}
    listed = _get(hub, tokens["transport"], "/api/quality", **RANGE)
    assert listed.status_code == 200
    assert {f["site"] for f in listed.json()["figures"]} <= {"wim-1"}
    assert listed.json()["refusals"] == []
    other = _get(hub, tokens["env"], "/api/quality", department="transport", **RANGE)
    assert other.status_code == 403
    summary = _get(hub, tokens["env"], "/api/quality/summary", **RANGE)
    assert summary.status_code == 200, summary.text
    sites = {s["site"]: s for s in summary.json()["sites"]}
    assert set(sites) == {"aq-1", "stack-1"}
    assert sites["aq-1"]["valid"] == 95 and sites["stack-1"]["effective_rate"] == 0.0
    (dept,) = summary.json()["departments"]
    assert dept == {
        "department": "env",
        "sites": 2,
        "sites_below": 2,
        "expected": 240,
        "received": 100,
        "valid": 95,
        "completeness": round(100 / 240, 4),
        "validity": 0.95,
        "effective_rate": round(95 / 240, 4),
    }
    admin = _get(hub, tokens["admin"], "/api/quality/summary", **RANGE)
    assert {s["site"] for s in admin.json()["sites"]} == {"aq-1", "stack-1"}


def test_monthly_report_csv_and_html(
    hub: LiveHub, tokens: dict[str, str], known_hour: None
) -> None:
    r = _get(hub, tokens["env"], "/api/reports/quality", month="2025-03", format="csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = {(x["site"], x["device"]): x for x in csv.DictReader(io.StringIO(r.text))}
    assert set(rows) == {("aq-1", ""), ("aq-1", "aq1"), ("stack-1", ""), ("stack-1", "cems1")}
    month_owed = 31 * 24 * 60 * 2
    assert rows[("aq-1", "aq1")]["expected"] == str(month_owed)
    assert rows[("aq-1", "aq1")]["valid"] == "95"
    assert rows[("aq-1", "aq1")]["dead_letters"] == "1"
    assert rows[("aq-1", "aq1")]["daily_valid"] == "0"
    assert rows[("stack-1", "cems1")]["received"] == "0"
    page = _get(hub, tokens["env"], "/api/reports/quality", month="2025-03")
    assert page.status_code == 200 and "数据质量月报" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert 'data-site="aq-1"' in page.text and "<script" not in page.text
    foreign = _get(hub, tokens["transport"], "/api/reports/quality", month="2025-03", format="csv")
    assert foreign.status_code == 200 and "aq-1" not in foreign.text
    assert _get(hub, tokens["env"], "/api/reports/quality", month="2025-3").status_code == 422
    future = _get(hub, tokens["env"], "/api/reports/quality", month="2099-01")
    assert future.status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"interval": "minute"},
        {"from": "2025-03-10T10:00:00+08:00", "to": "2025-03-10T09:00:00+08:00"},
        {"from": "2025-03-01T00:00:00+08:00", "to": "2025-03-20T00:00:00+08:00"},
        {"from": "2025-03-10T10:00:00"},
        {"department": "nope"},
    ],
)
def test_bad_parameters_are_422(hub: LiveHub, tokens: dict[str, str], params: dict) -> None:
    r = _get(hub, tokens["admin"], "/api/quality", **params)
    assert r.status_code == 422, r.text
