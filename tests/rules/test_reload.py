"""Hot reload: an edited rule file is picked up, unchanged rules keep their state, bad edits are
refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from rules.engine import Engine
from rules.reload import RuleFileWatcher
from tests.factories import reading, registry

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
            "id": "pm10",
            "select": {"metric": "pm10", "device_kind": "air_quality"},
            "threshold": 150,
            "for": "10m",
            "severity": "warning",
        },
    ]
}


def write(path: Path, doc: dict) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


@pytest.fixture
def rule_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    write(path, RULES)
    return path


def pending_engine(watcher: RuleFileWatcher) -> Engine:
    e = Engine(watcher.load(), registry())
    assert e.evaluate([reading("pm25", 90, 0), reading("pm10", 200, 0)]) == []
    assert e.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "pending"
    assert e.series_state("pm10", "yc-aq-1", "aq1", "pm10") == "pending"
    return e


def test_nothing_changed_nothing_returned(rule_file: Path) -> None:
    watcher = RuleFileWatcher([rule_file], default_pack=False)
    assert watcher.poll() is None
    rule_file.write_text(
        rule_file.read_text(encoding="utf-8"), encoding="utf-8"
    )  # touched, same content
    assert watcher.poll() is None


def test_an_edited_threshold_reloads_and_unchanged_rules_keep_their_pending_state(
    rule_file: Path,
) -> None:
    watcher = RuleFileWatcher([rule_file], default_pack=False)
    e = pending_engine(watcher)
    edited = {"rules": [dict(RULES["rules"][0], threshold=85), RULES["rules"][1]]}
    write(rule_file, edited)
    new = watcher.poll()
    assert new is not None and {r.id: r.spec.threshold for r in new.rules} == {
        "pm25": 85,
        "pm10": 150,
    }
    assert e.reload(new) == {"rules": 2, "kept": 1, "dropped": 1}
    assert watcher.poll() is None  # the change is taken once
    # pm10 was pending since minute 0: it fires at 10 as if nothing happened; pm25 starts over.
    assert e.series_state("pm10", "yc-aq-1", "aq1", "pm10") == "pending"
    assert e.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "inactive"
    sigs = e.evaluate([reading("pm25", 90, 10), reading("pm10", 200, 10)])
    assert [(s.rule_id, s.status) for s in sigs] == [("pm10", "firing")]
    assert [(s.rule_id, s.threshold) for s in e.evaluate([reading("pm25", 90, 20)])] == [
        ("pm25", 85)
    ]


def test_an_invalid_edit_keeps_the_old_rules_running_and_is_reported_once(
    rule_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = RuleFileWatcher([rule_file], default_pack=False)
    e = pending_engine(watcher)
    broken = {
        "rules": [
            dict(RULES["rules"][0], threshold=85, **{"for": "ten minutes"}),
            RULES["rules"][1],
        ]
    }
    write(rule_file, broken)
    with caplog.at_level(logging.ERROR, logger="farsight.rules.reload"):
        assert watcher.poll() is None
        assert watcher.poll() is None  # still broken: not logged again
    errors = [r for r in caplog.records if r.name == "farsight.rules.reload"]
    assert len(errors) == 1
    fields = errors[0].kv
    assert (
        fields["file"] == str(rule_file)
        and fields["rule"] == "pm25"
        and fields["key"] == "rules.0[pm25].for"
    )
    assert fields["value"] == "ten minutes" and "duration" in fields["message"]
    assert "previous rules keep running" in errors[0].getMessage()
    # The engine never saw the broken file: pm25 at 75 keeps going and fires at minute 10.
    sigs = e.evaluate([reading("pm25", 90, 10), reading("pm10", 200, 10)])
    assert sorted(s.rule_id for s in sigs) == ["pm10", "pm25"]
    # Fixed: the next poll hands over the rules.
    write(rule_file, {"rules": [dict(RULES["rules"][0], threshold=85), RULES["rules"][1]]})
    assert watcher.poll() is not None


def test_yaml_errors_and_missing_files_are_reported(
    rule_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = RuleFileWatcher([rule_file], default_pack=False)
    with caplog.at_level(logging.ERROR, logger="farsight.rules.reload"):
        rule_file.write_text("rules: [ {id: pm25\n", encoding="utf-8")
        assert watcher.poll() is None
        rule_file.unlink()
        assert watcher.poll() is None
    messages = [r.kv["message"] for r in caplog.records if r.name == "farsight.rules.reload"]
    assert any("YAML syntax error" in m for m in messages) and any(
        "cannot read" in m for m in messages
    )


def test_the_default_pack_is_part_of_what_is_loaded(rule_file: Path) -> None:
    watcher = RuleFileWatcher([rule_file], default_pack=True)
    ids = {r.id for r in watcher.load().rules}
    assert {"pm25", "pm10", "aq-pm25-high"} <= ids
