"""Threshold rules with ``for`` on event time: pending, firing, resolved."""

from __future__ import annotations

import pytest

from farsight.errors import RuleError
from rules.engine import Engine, fingerprint
from rules.loader import load_rules, parse_rules
from tests.factories import reading, registry

PM25_RULE = {
    "rules": [
        {
            "id": "pm25",
            "select": {"metric": "pm25", "device_kind": "air_quality"},
            "op": ">",
            "threshold": 75,
            "for": "10m",
            "severity": "warning",
        }
    ]
}


def engine(doc: dict = PM25_RULE) -> Engine:
    return Engine(parse_rules(doc), registry())


def test_fires_only_after_the_condition_held_for_the_duration() -> None:
    e = engine()
    assert e.evaluate([reading("pm25", 80, 0)]) == []
    assert e.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "pending"
    assert e.evaluate([reading("pm25", 90, 5)]) == []
    sigs = e.evaluate([reading("pm25", 95, 10)])
    assert [s.status for s in sigs] == ["firing"]
    s = sigs[0]
    assert (s.site, s.device, s.metric, s.value, s.threshold, s.department) == (
        "yc-aq-1",
        "aq1",
        "pm25",
        95,
        75,
        "env",
    )
    assert s.fingerprint == fingerprint("pm25", "yc-aq-1", "aq1", "pm25")
    # Still violating: no duplicate signal.
    assert e.evaluate([reading("pm25", 99, 11)]) == []
    assert [s.status for s in e.evaluate([reading("pm25", 40, 12)])] == ["resolved"]
    assert e.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "inactive"


def test_a_dip_before_the_duration_resets_pending() -> None:
    e = engine()
    e.evaluate([reading("pm25", 80, 0), reading("pm25", 50, 5)])
    assert e.evaluate([reading("pm25", 80, 10)]) == []
    assert e.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "pending"
    assert [s.status for s in e.evaluate([reading("pm25", 80, 20)])] == ["firing"]


def test_flagged_and_late_readings_do_not_move_state() -> None:
    e = engine()
    # Calibration data above the limit is not a violation (HJ 212 flag C).
    assert e.evaluate([reading("pm25", 500, 0, flag="C"), reading("pm25", 500, 30, flag="M")]) == []
    assert e.stats.flagged == 2
    e.evaluate([reading("pm25", 80, 40)])
    assert e.evaluate([reading("pm25", 10, 35)]) == []  # older than what we have seen
    assert e.stats.late == 1
    assert e.series_state("pm25", "yc-aq-1", "aq1", "pm25") == "pending"


def test_site_limit_comes_from_the_registry() -> None:
    doc = {
        "rules": [
            {
                "id": "so2",
                "select": {"metric": "so2", "device_kind": "cems"},
                "threshold": "site_limit",
                "for": 0,
                "severity": "major",
            }
        ]
    }
    e = engine(doc)
    assert (
        e.evaluate([reading("so2", 30, 0, site="yc-stack-1", device="cems1", unit="mg/m3")]) == []
    )
    sigs = e.evaluate([reading("so2", 36, 1, site="yc-stack-1", device="cems1", unit="mg/m3")])
    assert len(sigs) == 1 and sigs[0].threshold == 35 and sigs[0].severity == "major"
    # The air station has no so2 limit and no cems device: never selected.
    assert e.evaluate([reading("so2", 999, 2)]) == []


def test_selector_filters_department() -> None:
    doc = {
        "rules": [
            {"id": "t", "select": {"metric": "pm25", "department": "transport"}, "threshold": 1}
        ]
    }
    assert engine(doc).evaluate([reading("pm25", 999, 0)]) == []


def test_invalid_rules_name_key_paths() -> None:
    doc = {
        "rules": [
            {"id": "ok", "select": {"metric": "pm25"}, "threshold": 1},
            {"id": "ok", "select": {"metric": "pm25"}, "threshold": 1},
            {"id": "bad-for", "select": {"metric": "pm25"}, "threshold": 1, "for": "ten minutes"},
            {"id": "bad-kind", "kind": "psychic", "select": {"metric": "pm25"}},
            {"id": "bad-op", "select": {"metric": "pm25"}, "threshold": 1, "op": "=~"},
        ]
    }
    with pytest.raises(RuleError) as info:
        parse_rules(doc, "test.yaml")
    paths = [p.path for p in info.value.problems]
    # Each problem names the rule by position and id, then the key.
    assert "rules.1[ok].id" in paths
    assert "rules.2[bad-for].for" in paths
    assert "rules.3[bad-kind].kind" in paths and "threshold" in str(info.value)
    assert "rules.4[bad-op].op" in paths
    assert str(info.value).startswith("test.yaml:")


def test_default_pack_loads() -> None:
    rules = load_rules()
    assert {"aq-pm25-high", "cems-so2-over-permit"} <= {r.id for r in rules}


def test_durations_accept_prometheus_forms() -> None:
    from datetime import timedelta

    from rules.model import parse_duration

    assert parse_duration("1h59m") == timedelta(hours=1, minutes=59)
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    assert parse_duration(90) == timedelta(seconds=90)
    with pytest.raises(ValueError, match="1h30m"):
        parse_duration("ten minutes")
