"""``farsight rules backtest`` on a real SQLite file written by the ingest store."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from app.cli import main
from farsight.registry import load_registry
from farsight.types import Reading
from ingest.store import ReadingStore
from rules.loader import parse_ruleset
from rules.testing import backtest

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
RULES = {
    "rules": [
        {
            "id": "pm25",
            "select": {"metric": "pm25", "device_kind": "air_quality"},
            "threshold": 75,
            "for": "10m",
            "severity": "warning",
        },
        {
            "id": "so2",
            "select": {"metric": "so2", "device_kind": "cems"},
            "threshold": "site_limit",
            "for": "5m",
            "severity": "major",
        },
    ]
}


def r(site: str, device: str, metric: str, value: float, minute: float, flag: str = "N") -> Reading:
    return Reading(site, device, metric, value, "ug/m3", T0 + timedelta(minutes=minute), flag)


def history() -> list[Reading]:
    """Two hours of the demo registry's sites: pm25 over 75 at minutes 10-40 at one station
    (one alert, resolved), so2 over the 35 permit from minute 100 at one stack (open at the end),
    calibration data that must not fire, and a station that stays clean."""
    out = []
    for m in range(120):
        out.append(r("yc-aq-xiling", "aq1", "pm25", 90 if 10 <= m < 40 else 30, m))
        out.append(r("yc-aq-xiling", "aq1", "pm10", 50, m))
        out.append(r("yc-aq-wujiagang", "aq1", "pm25", 20, m))
        out.append(r("yc-cems-xiaoting-power", "cems1", "so2", 50 if m >= 100 else 20, m))
        out.append(r("yc-cems-sanxia-cement", "cems1", "so2", 500, m, flag="C"))
    return out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "farsight.db"
    store = ReadingStore(path)
    rows = history()
    # Written out of time order, in several batches, as ingest would after a backlog.
    store.write(rows[300:])
    store.write(rows[:300])
    store.close()
    return path


def test_iter_range_streams_in_time_then_id_order(db: Path) -> None:
    store = ReadingStore(db)
    try:
        got = list(
            store.iter_range(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20), batch=7)
        )
        assert len(got) == 11 * 5  # both ends inclusive
        assert [x.ts for x in got] == sorted(x.ts for x in got)
        assert got[0] == r("yc-aq-xiling", "aq1", "pm25", 90, 10)
        one = list(store.iter_range(T0, T0 + timedelta(hours=2), site="yc-cems-sanxia-cement"))
        assert len(one) == 120 and {x.flag for x in one} == {"C"}
        assert list(store.iter_range(T0 - timedelta(days=1), T0 - timedelta(hours=1))) == []
        with pytest.raises(ValueError):
            store.iter_range(T0, T0, batch=0)  # raises at the call, not at first use
    finally:
        store.close()


def test_backtest_reports_alerts_and_a_summary_per_rule(db: Path) -> None:
    store = ReadingStore(db)
    events: list[tuple[str, str]] = []
    end = T0 + timedelta(hours=2)
    try:
        result = backtest(
            store.iter_range(T0, end),
            parse_ruleset(RULES),
            load_registry(None),
            T0,
            end,
            on_event=lambda status, s: events.append((status, s.rule_id)),
        )
    finally:
        store.close()
    assert events == [("firing", "pm25"), ("resolved", "pm25"), ("firing", "so2")]
    pm25, so2 = result.rules["pm25"], result.rules["so2"]
    assert (pm25.fired, pm25.resolved, pm25.open) == (1, 1, 0)
    assert pm25.firing_s == 20 * 60  # fired at 20 (10 + for), resolved at 40
    assert (so2.fired, so2.resolved, so2.open) == (1, 0, 1)
    assert so2.firing_s == 15 * 60  # fired at 105, open to the end at 120
    assert result.readings == 600 and result.flagged == 120 and result.late == 0
    assert result.alerts[0].fired_at == T0 + timedelta(minutes=20)
    assert result.alerts[0].resolved_at == T0 + timedelta(minutes=40)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_command_prints_json_lines_and_writes_nothing(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES), encoding="utf-8")
    before = _digest(db)
    code = main(
        [
            "rules",
            "backtest",
            str(rules),
            "--from",
            "2026-11-25T08:00:00+08:00",
            "--to",
            "2026-11-25T10:00:00+08:00",
            "--db",
            str(db),
            "--json",
        ]
    )
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    alerts = [x for x in lines if x["record"] == "alert"]
    assert [(a["status"], a["rule"], a["site"], a["ts"]) for a in alerts] == [
        ("firing", "pm25", "yc-aq-xiling", "2026-11-25T08:20:00+08:00"),
        ("resolved", "pm25", "yc-aq-xiling", "2026-11-25T08:40:00+08:00"),
        ("firing", "so2", "yc-cems-xiaoting-power", "2026-11-25T09:45:00+08:00"),
    ]
    assert {
        x["rule"]: (x["fired"], x["resolved"], x["open"]) for x in lines if x["record"] == "rule"
    } == {"pm25": (1, 1, 0), "so2": (1, 0, 1)}
    totals = lines[-1]
    assert totals["record"] == "totals" and totals["readings"] == 600 and totals["alerts"] == 2
    assert _digest(db) == before
    assert (
        not (db.parent / "farsight.db-wal").exists()
        or (db.parent / "farsight.db-wal").stat().st_size == 0
    )


def test_command_table_site_filter_and_rule_filter(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES), encoding="utf-8")
    code = main(
        [
            "rules",
            "backtest",
            str(rules),
            "--rule",
            "so2",
            "--site",
            "yc-cems-xiaoting-power",
            "--tick",
            "300",
            "--from",
            "2026-11-25T00:00:00+00:00",
            "--to",
            "2026-11-25T02:00:00+00:00",
            "--db",
            str(db),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "FIRING" in out and "yc-cems-xiaoting-power" in out and "yc-aq-xiling" not in out
    assert "120 readings from 2026-11-25T00:00:00+00:00" in out and "1 alert(s)" in out


def test_command_refuses_bad_arguments(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["rules", "backtest", "--db", str(db)]
    assert main(base + ["--from", "2026-11-25T08:00:00", "--to", "2026-11-25T10:00:00+08:00"]) == 2
    assert "needs a UTC offset" in capsys.readouterr().err
    assert (
        main(base + ["--from", "2026-11-25T10:00:00+08:00", "--to", "2026-11-25T08:00:00+08:00"])
        == 2
    )
    assert "must be after --from" in capsys.readouterr().err
    assert (
        main(
            base
            + [
                "--site",
                "nowhere",
                "--from",
                "2026-11-25T08:00:00+08:00",
                "--to",
                "2026-11-25T10:00:00+08:00",
            ]
        )
        == 2
    )
    assert "no such site in the registry" in capsys.readouterr().err
    missing = tmp_path / "none.db"
    assert (
        main(
            [
                "rules",
                "backtest",
                "--db",
                str(missing),
                "--from",
                "2026-11-25T08:00:00+08:00",
                "--to",
                "2026-11-25T10:00:00+08:00",
            ]
        )
        == 2
    )
    assert "no such database file" in capsys.readouterr().err
    assert not missing.exists()  # a typo must not create an empty database
