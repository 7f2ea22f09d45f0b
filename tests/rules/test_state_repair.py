"""Rule state a reading dated 2099 poisoned is repaired: by the pure repair, at ingest's
start-up, and by ``farsight rules repair-state`` (real SQLite files, the real engine)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from app.cli import main
from app.roles.ingest import IngestService
from farsight.clock import ManualClock
from farsight.settings import Settings
from farsight.types import Reading
from rules.engine import Engine
from rules.loader import parse_rules
from rules.state import RuleStateStore
from rules.state_repair import repair_entries, repair_rule_state
from tests.factories import T0, registry

RULES_DOC = {
    "rules": [
        {"id": "pm25", "select": {"metric": "pm25"}, "threshold": 75, "for": "2m"},
        {"id": "pm25-late", "select": {"metric": "pm25"}, "threshold": 75, "lateness": "1m"},
    ]
}
RULES = parse_rules(RULES_DOC)
Y2099 = datetime(2099, 12, 31, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def pm25(ts: datetime, value: float) -> Reading:
    return Reading("yc-aq-1", "aq1", "pm25", value, "ug/m3", ts)


def poisoned_state(path: Path) -> None:
    """What ingest saved before it refused future readings: a firing alert, then 2099."""
    engine = Engine(RULES, registry())
    fired = engine.evaluate([pm25(T0 + timedelta(minutes=m), 120) for m in range(3)])
    assert sorted(s.rule_id for s in fired) == ["pm25", "pm25-late"]
    engine.evaluate([pm25(Y2099, 500)])  # no bound: as before the fix
    engine.evaluate([pm25(T0 + timedelta(minutes=4), 20)])
    assert engine.stats.late >= 1  # the poison: a real reading is "late"
    store = RuleStateStore(path)
    store.save(engine.snapshot())
    store.close()


def test_the_repair_clears_future_times_keeps_the_firing_alert_and_judges_real_data_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    poisoned_state(db)
    store = RuleStateStore(db)
    result = repair_rule_state(store, NOW + timedelta(minutes=5))
    lines = sorted(f.line() for f in result.findings)
    assert len(lines) == 2, lines
    pm, late = lines
    assert pm.startswith("pm25 yc-aq-1/aq1/pm25: last_ts 2099-12-31")
    assert "lifecycle: firing kept, true, sent cleared" in pm
    assert "condition restarted" in pm
    # A rule with allowed lateness still held the 2099 reading in its reorder buffer.
    assert late == (
        "pm25-late yc-aq-1/aq1/pm25: max_ts 2099-12-31T00:00:00+00:00 cleared;"
        " 1 buffered reading(s) after the bound dropped; condition restarted"
    )
    # Saved: a second repair finds nothing, and nothing left holds a time after the bound.
    assert repair_rule_state(store, NOW + timedelta(minutes=5)).findings == ()
    engine = Engine(RULES, registry())
    assert engine.restore(store.load()) == 2
    assert engine.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "firing"
    sigs = engine.evaluate([pm25(T0 + timedelta(minutes=m), 20) for m in (5, 6)])
    assert engine.stats.late == 0
    # The alert the poison left open resolves on the next real reading.
    assert ("pm25", "resolved") in {(s.rule_id, s.status) for s in sigs}
    store.close()


def test_a_dry_run_and_clean_state_change_nothing() -> None:
    entry = {
        "rule": "pm25",
        "digest": "d",
        "scope": ["yc-aq-1", "aq1", "pm25"],
        "last_ts": 1,
        "max_ts": 2,
        "heap": [],
        "cond": {},
        "lcs": {"pm25": {"s": "pending", "since": 1, "true": 1, "sent": None, "n": False}},
    }
    out = repair_entries([entry], T0)
    assert out.findings == () and out.entries == (entry,) and out.repaired == ()
    late_pending = {**entry, "lcs": {"pm25": {**entry["lcs"]["pm25"], "since": 4_102_444_800_000}}}
    (found,) = repair_entries([late_pending], T0).findings
    assert found.changes[0].startswith("lifecycle pm25: pending from 2100-01-01")


def test_ingest_repairs_the_saved_state_when_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES_DOC), encoding="utf-8")
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / "var"),
            "broker": {"embedded": "none"},
            "rules": {"files": [str(rules)], "default_pack": False},
        }
    )
    settings.data_dir.mkdir()
    poisoned_state(settings.db_path)
    with caplog.at_level(logging.WARNING, logger="farsight.rules.state"):
        svc = IngestService(settings, registry(), clock=ManualClock(NOW))
    try:
        repaired = [r for r in caplog.records if r.getMessage() == "rule state repaired"]
        assert len(repaired) == 2
        assert svc.engine.watermark is None
        sigs = svc.engine.evaluate([pm25(T0 + timedelta(minutes=m), 20) for m in (5, 6)])
        assert svc.engine.stats.late == 0 and any(s.status == "resolved" for s in sigs)
        assert repair_rule_state(svc.rule_state, NOW, dry_run=True).findings == ()
    finally:
        svc.db.close()


def test_the_repair_command_prints_what_it_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "farsight.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "var")}), encoding="utf-8")
    (tmp_path / "var").mkdir()
    assert main(["--config", str(config), "rules", "repair-state"]) == 2  # no database yet
    assert "no farsight.db" in capsys.readouterr().err
    poisoned_state(tmp_path / "var" / "farsight.db")
    assert main(["--config", str(config), "rules", "repair-state", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would repair 2 of 2 rule state entries" in out and "2099-12-31" in out
    assert main(["--config", str(config), "rules", "repair-state"]) == 0
    out = capsys.readouterr().out
    assert "repaired 2 of 2" in out and "pm25 yc-aq-1/aq1/pm25: last_ts 2099" in out
    assert main(["--config", str(config), "rules", "repair-state"]) == 0
    assert "repaired 0 of 2" in capsys.readouterr().out
