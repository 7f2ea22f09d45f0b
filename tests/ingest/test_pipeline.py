"""The ingest pipeline on a real SQLite file: store, dedup, dead letters, rules and alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import pytest

from alerts.store import AlertStore
from farsight.db import Database
from farsight.errors import StoreError
from farsight.hj212 import build_data_frame
from farsight.types import AlertSignal
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from rules.engine import Engine
from rules.loader import parse_rules, parse_ruleset
from rules.state import RuleStateStore
from tests.factories import T0, registry

RULES = {
    "rules": [
        {
            "id": "pm25",
            "select": {"metric": "pm25"},
            "threshold": 75,
            "for": "2m",
            "severity": "warning",
        },
        {
            "id": "so2",
            "select": {"metric": "so2", "device_kind": "cems"},
            "threshold": "site_limit",
            "severity": "major",
        },
    ]
}

Parts = tuple[IngestPipeline, ReadingStore, AlertStore]

RECEIVED = T0 + timedelta(hours=1)
"""When ingest received the tests' messages: their readings are within the backfill horizon."""


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    db = Database.open(tmp_path / "farsight.db")
    readings, alerts, state = ReadingStore(db), AlertStore(db), RuleStateStore(db)
    reg = registry()
    pipe = IngestPipeline(reg, readings, Engine(parse_rules(RULES), reg), alerts, rule_state=state)
    yield pipe, readings, alerts
    readings.close()
    alerts.close()


def aq(minute: int, pm25: float, seq: int = 0) -> Message:
    body = {
        "ts": (T0 + timedelta(minutes=minute)).isoformat(),
        "metrics": {"pm25": pm25, "pm10": 40},
        "seq": seq,
    }
    return Message("fs/v1/env/yc-aq-1/aq1/reading", json.dumps(body).encode(), RECEIVED)


def test_readings_are_stored_once_and_redelivery_changes_nothing(parts: Parts) -> None:
    pipe, readings, _ = parts
    r1 = pipe.process([aq(0, 30), aq(1, 31)])
    assert (r1.stored, r1.duplicates, r1.rejected) == (4, 0, 0)
    r2 = pipe.process([aq(0, 30), aq(1, 31)])
    assert (r2.stored, r2.duplicates) == (0, 4)
    assert readings.count() == 4
    assert readings.count(site="yc-aq-1", metric="pm25") == 2


def test_exceedance_becomes_exactly_one_alert_and_duplicates_do_not_refire(parts: Parts) -> None:
    pipe, _, alerts = parts
    for m in range(6):
        pipe.process([aq(m, 120)])
    pipe.process([aq(m, 120) for m in range(6)])  # redelivered: no new evaluation
    items, total = alerts.list()
    assert total == 1 and items[0].rule_id == "pm25" and items[0].activity == "firing"
    pipe.process([aq(7, 20)])
    assert alerts.get(items[0].id).activity == "resolved"


def test_hj212_frames_decode_store_and_fire(parts: Parts) -> None:
    pipe, readings, alerts = parts
    frame = build_data_frame(
        mn="42050000000001",
        ts=T0,
        values={"a21026": {"Rtd": 80.5, "Flag": "N"}, "a21002": {"Rtd": 30, "Flag": "N"}},
    )
    res = pipe.process([Message("fs/v1/env/yc-stack-1/cems1/hj212", frame, RECEIVED)])
    assert res.stored == 2 and res.rejected == 0
    assert readings.series("yc-stack-1", "so2", T0, T0)[0]["value"] == 80.5
    assert [a.rule_id for a in alerts.list()[0]] == ["so2"]


def test_every_bad_message_is_dead_lettered_with_its_reason_and_nothing_stops(parts: Parts) -> None:
    pipe, readings, _ = parts
    good_frame = build_data_frame(
        mn="42050000000001", ts=T0, values={"a21026": {"Rtd": 1.0, "Flag": "N"}}
    )
    bad = {
        "not_json": Message("fs/v1/env/yc-aq-1/aq1/reading", b"{not json"),
        "bad_topic": Message("some/other/topic", b"{}"),
        "unknown_site": Message("fs/v1/env/nowhere/aq1/reading", aq(0, 1).payload),
        "department_mismatch": Message("fs/v1/transport/yc-aq-1/aq1/reading", aq(0, 1).payload),
        "bad_crc": Message("fs/v1/env/yc-stack-1/cems1/hj212", good_frame[:-6] + b"0000\r\n"),
        "mn_mismatch": Message(
            "fs/v1/env/yc-stack-1/cems1/hj212",
            build_data_frame(mn="99999999999999", ts=T0, values={"a21026": {"Rtd": 1.0}}),
        ),
    }
    res = pipe.process(list(bad.values()) + [aq(3, 10)])
    assert res.rejected == len(bad) and res.stored == 2
    letters = readings.dead_letters(limit=50)
    assert sorted(d.reason for d in letters) == sorted(bad)
    by_reason = {d.reason: d for d in letters}
    assert by_reason["not_json"].payload == b"{not json"  # raw bytes kept for repair and replay
    assert by_reason["bad_crc"].topic == "fs/v1/env/yc-stack-1/cems1/hj212"
    assert pipe.stats.rejected_by_reason["unknown_site"] == 1


def test_irregularities_are_recorded_not_rejected(parts: Parts) -> None:
    pipe, readings, _ = parts
    body = {"ts": T0.isoformat(), "metrics": {"pm25": 10}, "extra": 1}
    res = pipe.process(
        [Message("fs/v1/env/yc-aq-1/aq9/reading", json.dumps(body).encode(), RECEIVED)]
    )
    assert res.stored == 1
    whats = {r["what"] for r in readings.irregularities()}
    assert whats == {"device not in registry", "unknown key"}


def test_irregularities_count_per_device_by_name_not_by_their_details(parts: Parts) -> None:
    pipe, readings, _ = parts
    msgs = [
        Message(
            "fs/v1/env/yc-aq-1/aq1/reading",
            json.dumps({"ts": (T0 + timedelta(minutes=m)).isoformat(), "metrics": {"pm25": 10}}
                       | {f"extra{m}": 1, f"more{m}": 2}).encode(),
            RECEIVED,
        )
        for m in range(3)
    ]  # fmt: skip
    assert pipe.process(msgs).stored == 3
    # Six different unknown keys in three messages: one counter, once per message.
    counts = readings.irregularity_counts(device="aq1")
    assert counts == {("yc-aq-1", "aq1", "unknown key"): 3}


def test_a_duplicate_inside_one_batch_counts_once(parts: Parts) -> None:
    pipe, readings, _ = parts
    res = pipe.process([aq(0, 30), aq(0, 30), aq(1, 31)])
    assert (res.stored, res.duplicates) == (4, 2)
    assert readings.count() == 4


def test_backfilled_history_evaluates_on_its_own_time_and_a_replay_notifies_nothing(
    parts: Parts,
) -> None:
    pipe, _, alerts = parts
    pipe.process([aq(m, 20) for m in range(5)])
    # A gateway comes back after an outage with minutes 5..20: an episode of 120 from 8 to 12.
    backlog = [aq(m, 120 if 8 <= m <= 12 else 20) for m in range(5, 21)]
    res = pipe.process(backlog)
    assert [s.status for s in res.signals] == ["firing", "resolved"]
    assert [s.ts for s in res.signals] == [
        T0 + timedelta(minutes=10),
        T0 + timedelta(minutes=13),
    ]  # for: 2m, event time
    (alert,) = alerts.list()[0]
    events = len(alerts.events(alert.id))
    # The gateway replays the same backlog (it never saw the PUBACK): nothing is notified again.
    again = pipe.process(backlog)
    assert again.signals == () and again.stored == 0
    assert len(alerts.events(alert.id)) == events and alerts.get(alert.id).activity == "resolved"


def test_an_overloaded_truck_alert_names_its_plate(tmp_path: Path) -> None:
    db = tmp_path / "farsight.db"
    readings, alerts = ReadingStore(db), AlertStore(db)
    reg = registry()
    doc = {
        "rules": [
            {
                "id": "wim",
                "kind": "wim_overload",
                "select": {"device_kind": "wim"},
                "accuracy_class": 5,
                "severity": "major",
            }
        ]
    }
    pipe = IngestPipeline(reg, readings, Engine(parse_ruleset(doc), reg), alerts)
    body = {
        "ts": T0.isoformat(),
        "metrics": {"gross_weight": 61.8, "axles": 6},
        "attrs": {"plate": "鄂E·7C215"},
    }
    res = pipe.process(
        [
            Message(
                "fs/v1/transport/xg-wim-1/wim1/reading",
                json.dumps(body, ensure_ascii=False).encode(),
                RECEIVED,
            )
        ]
    )
    (sig,) = res.signals
    assert dict(sig.labels)["plate"] == "鄂E·7C215"
    (alert,) = alerts.list()[0]
    assert alert.labels["plate"] == "鄂E·7C215"
    readings.close()
    alerts.close()


def test_late_and_flagged_readings_are_counted_for_the_hub(parts: Parts) -> None:
    pipe, readings, _ = parts
    pipe.process([aq(m, 20) for m in range(5)])
    late = Message(
        "fs/v1/env/yc-aq-1/aq1/reading",
        json.dumps(
            {"ts": (T0 + timedelta(minutes=2, seconds=30)).isoformat(), "metrics": {"pm25": 500}}
        ).encode(),
        RECEIVED,
    )
    flagged = Message(
        "fs/v1/env/yc-aq-1/aq1/reading",
        json.dumps(
            {
                "ts": (T0 + timedelta(minutes=6)).isoformat(),
                "metrics": {"pm25": 500},
                "flags": {"pm25": "C"},
            }
        ).encode(),
        RECEIVED,
    )
    pipe.process([late, flagged])
    pipe.tick(T0 + timedelta(minutes=7))
    counters = readings.counters()
    assert counters[("rule_late_readings", "pm25")] == 1
    assert counters[("rule_flagged_readings", "C")] == 1
    pipe.tick(T0 + timedelta(minutes=8))  # nothing new: the counters do not grow again
    assert readings.counters() == counters


def test_a_failed_batch_leaves_nothing_and_its_redelivery_is_judged_afresh(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe, readings, alerts = parts
    pipe.process([aq(m, 120) for m in range(2)])
    batch = [aq(m, 120) for m in range(2, 4)]  # the pm25 rule (for 2m) fires on minute 2
    real_apply = alerts.apply

    def broken(signals: Sequence[AlertSignal]) -> NoReturn:
        raise StoreError("disk full (injected)")

    monkeypatch.setattr(alerts, "apply", broken)
    with pytest.raises(StoreError):
        pipe.process(batch)
    # Nothing of the batch was committed: no readings, no alert, no audit entry.
    assert (
        readings.count(metric="pm25") == 2 and alerts.list()[1] == 0 and alerts.audit.head()[0] == 0
    )
    monkeypatch.setattr(alerts, "apply", real_apply)
    res = pipe.process(batch)  # the broker redelivers the unacknowledged messages
    assert [s.status for s in res.signals] == ["firing"] and res.stored == 4
    (alert,) = alerts.list()[0]
    assert alert.starts_at == T0 + timedelta(minutes=2) and alerts.audit.verify().ok
