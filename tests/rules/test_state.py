"""Rule state saved to SQLite and restored into a new engine continues as if never stopped."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

import rules.kinds  # noqa: F401 - registers the built-in kinds
from farsight.types import AlertSignal, Reading
from rules.engine import Engine
from rules.loader import parse_ruleset
from rules.registry import RULE_KINDS
from rules.state import RuleStateStore
from tests.factories import T0, registry

THRESHOLD = {
    "rules": [
        {
            "id": "pm25",
            "select": {"metric": "pm25", "device_kind": "air_quality"},
            "threshold": 75,
            "for": "10m",
            "lateness": "2m",
            "severity": "warning",
        }
    ]
}
WINDOW = {
    "rules": [
        {
            "id": "so2-hourly",
            "kind": "window",
            "select": {"metric": "so2", "device_kind": "cems"},
            "window": "1h",
            "agg": "avg",
            "threshold": "site_limit",
            "lateness": "2m",
            "severity": "major",
        }
    ]
}


def _shuffle_pairs(readings: list[Reading]) -> list[Reading]:
    # Neighbours swapped: every other reading arrives a minute late, inside the allowed lateness.
    out = list(readings)
    for i in range(0, len(out) - 1, 2):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def threshold_batches() -> tuple[list[list[Reading]], int]:
    """40 minutes of PM2.5, over 75 from minute 5 to 30; split at minute 12 (pending, for 10m)."""
    rs = [
        Reading(
            "yc-aq-1",
            "aq1",
            "pm25",
            80.0 if 5 <= m < 30 else 40.0,
            "ug/m3",
            T0 + timedelta(minutes=m),
        )
        for m in range(40)
    ]
    rs = _shuffle_pairs(rs)
    return [rs[i : i + 4] for i in range(0, len(rs), 4)], 3


def window_batches() -> tuple[list[list[Reading]], int]:
    """Three hours of SO2 at a stack with a 35 permit: hour means 50, 40 (60 then 20), 20; split
    mid-hour 2."""

    def value(m: int) -> float:
        return 50.0 if m < 60 else 60.0 if m < 90 else 20.0

    rs = [
        Reading("yc-stack-1", "cems1", "so2", value(m), "mg/m3", T0 + timedelta(minutes=m))
        for m in range(185)
    ]
    rs = _shuffle_pairs(rs)
    return [rs[i : i + 5] for i in range(0, len(rs), 5)], 15


CASES = {"threshold": (THRESHOLD, threshold_batches), "window": (WINDOW, window_batches)}


def run(engine: Engine, batches: list[list[Reading]]) -> list[AlertSignal]:
    out: list[AlertSignal] = []
    for b in batches:
        out += engine.evaluate(b)
        out += engine.tick(b[-1].ts)
    return out


@pytest.mark.parametrize("kind", sorted(CASES))
def test_restored_engine_continues_like_an_uninterrupted_one(kind: str, tmp_path: Path) -> None:
    assert kind in RULE_KINDS, f"rule kind {kind!r} is not registered"
    doc, make = CASES[kind]
    ruleset = parse_ruleset(doc)
    batches, split = make()

    whole = Engine(ruleset, registry())
    expected_before = run(whole, batches[:split])
    expected_after = run(whole, batches[split:])
    assert expected_after, "the test needs signals after the restart"

    first = Engine(ruleset, registry())
    assert run(first, batches[:split]) == expected_before
    entries = first.snapshot(only_dirty=True)
    assert any(e["heap"] for e in entries), "readings still held for lateness must be saved too"
    store = RuleStateStore(tmp_path / "farsight.db")
    assert store.save(entries) == len(entries)
    store.close()

    store = RuleStateStore(tmp_path / "farsight.db")  # a new process
    second = Engine(ruleset, registry())
    assert second.restore(store.load()) == len(entries)
    store.close()
    assert run(second, batches[split:]) == expected_after

    # And the control: an engine that starts empty does not get there.
    assert run(Engine(ruleset, registry()), batches[split:]) != expected_after


def test_save_upserts_and_load_round_trips(tmp_path: Path) -> None:
    store = RuleStateStore(tmp_path / "farsight.db")
    ruleset = parse_ruleset(THRESHOLD)
    e = Engine(ruleset, registry())
    batches, _ = threshold_batches()
    e.evaluate(batches[0])
    first = e.snapshot(only_dirty=True)
    store.save(first)
    assert e.snapshot(only_dirty=True) == []  # nothing changed since
    e.evaluate(batches[1])
    second = e.snapshot(only_dirty=True)
    assert store.save(second) == 1 and store.save([]) == 0
    assert store.count() == 1
    assert json.loads(json.dumps(store.load())) == json.loads(json.dumps(second))
    store.close()


def test_prune_drops_state_of_changed_or_removed_rules(tmp_path: Path) -> None:
    store = RuleStateStore(tmp_path / "farsight.db")
    e = Engine(parse_ruleset(THRESHOLD), registry())
    e.evaluate(threshold_batches()[0][0])
    store.save(e.snapshot())
    assert store.prune(parse_ruleset(THRESHOLD)) == 0
    changed = {"rules": [dict(THRESHOLD["rules"][0], threshold=80)]}
    assert store.prune(parse_ruleset(changed)) == 1 and store.count() == 0
    store.close()


def test_a_damaged_row_is_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RuleStateStore(tmp_path / "farsight.db")
    with store.db.transaction() as c:
        c.execute("INSERT INTO rule_state VALUES ('pm25', '[\"yc-aq-1\"]', 'x', '{not json', 0)")
    with caplog.at_level(logging.WARNING, logger="farsight.rules.state"):
        assert store.load() == []
    assert "unreadable rule state skipped" in caplog.text
    store.close()
