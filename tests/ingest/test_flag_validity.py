"""HJ 212 data flags decide validity, through the ingest pipeline on a real SQLite file.

A value flagged M (maintenance), C (calibration) or T (over the analyser's range) is not valid
data: however far over the limit, it raises no threshold, near-limit, rate or window alert, while
the same values flagged N do. A device whose readings are flagged M, C or D most of a day is itself
a finding (upkeep_share); a metric flagged T is one of its own (over_range), below an exceedance.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.store import AlertStore
from farsight.db import Database
from farsight.hj212 import build_data_frame
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from rules.engine import Engine
from rules.loader import parse_rules
from tests.factories import T0, registry

TOPIC = "fs/v1/env/yc-stack-1/cems1/hj212"
MN = "42050000000001"  # cems1's registered MN; site limits so2 35, nox 50, particulate 10

EXCEEDANCE_RULES = {
    "rules": [
        {"id": "so2-limit", "select": {"metric": "so2"}, "threshold": "site_limit"},
        {
            "id": "so2-hourly",
            "kind": "window",
            "select": {"metric": "so2"},
            "window": "1h",
            "agg": "avg",
            "op": ">",
            "threshold": "site_limit",
            "min_count": 10,
        },
        {
            "id": "nox-jumps",
            "kind": "rate_of_change",
            "select": {"metric": "nox"},
            "max_rate": 5,
            "per": "minute",
        },
        {
            "id": "dust-near-limit",
            "kind": "near_limit",
            "select": {"metric": "particulate"},
            "window": "1h",
            "limit": "site_limit",
            "band": 0.1,
            "min_share": 0.6,
            "min_count": 10,
        },
    ]
}
UPKEEP_RULE = {
    "rules": [
        {
            "id": "device-in-upkeep",
            "kind": "upkeep_share",
            "max_share": 0.3,
            "window": "24h",
            "min_span": "20h",
            "severity": "major",
        }
    ]
}

OVER_RANGE_RULES = {
    "rules": [
        *EXCEEDANCE_RULES["rules"],
        {"id": "over-range", "kind": "over_range", "for": "5m", "severity": "warning"},
    ]
}

Parts = tuple[IngestPipeline, ReadingStore, AlertStore]


def make_parts(tmp_path: Path, rules: dict) -> Parts:
    db = Database.open(tmp_path / "farsight.db")
    readings, alerts = ReadingStore(db), AlertStore(db)
    reg = registry()
    return IngestPipeline(reg, readings, Engine(parse_rules(rules), reg), alerts), readings, alerts


def _opened(tmp_path: Path, rules: dict) -> Iterator[Parts]:
    """The pipeline of :func:`make_parts`, its stores closed afterwards."""
    parts = make_parts(tmp_path, rules)
    yield parts
    parts[1].close()
    parts[2].close()


@pytest.fixture
def exceedance(tmp_path: Path) -> Iterator[Parts]:
    yield from _opened(tmp_path, EXCEEDANCE_RULES)


@pytest.fixture
def upkeep(tmp_path: Path) -> Iterator[Parts]:
    yield from _opened(tmp_path, UPKEEP_RULE)


@pytest.fixture
def over_range(tmp_path: Path) -> Iterator[Parts]:
    yield from _opened(tmp_path, OVER_RANGE_RULES)


def frame(minute: int, flags: dict[str, str], **values: float) -> Message:
    codes = {"so2": "a21026", "nox": "a21002", "particulate": "a34013"}
    ts = T0 + timedelta(minutes=minute)
    return Message(
        TOPIC,
        build_data_frame(
            mn=MN,
            ts=ts,
            values={codes[m]: {"Rtd": v, "Flag": flags.get(m, "N")} for m, v in values.items()},
        ),
        ts + timedelta(seconds=5),  # received as it was measured: live, not backfill
    )


def an_hour_over_the_limit(flag: str) -> list[Message]:
    """70 one-minute frames: SO2 at 80 (limit 35), NOx jumping 10 <-> 40 each minute, dust at
    9.5 (within 10 % under its limit 10), every value flagged ``flag``."""
    flags = {"so2": flag, "nox": flag, "particulate": flag}
    return [
        frame(m, flags, so2=80.0, nox=10.0 if m % 2 else 40.0, particulate=9.5) for m in range(70)
    ]


def fired(alerts: AlertStore) -> set[str]:
    return {a.rule_id for a in alerts.list(limit=1000)[0]}


@pytest.mark.parametrize("flag", ["M", "C", "T"])
def test_a_maintenance_calibration_or_over_range_flagged_exceedance_raises_nothing(
    exceedance: Parts, flag: str
) -> None:
    pipe, readings, alerts = exceedance
    for msg in an_hour_over_the_limit(flag):
        assert pipe.process([msg]).stored == 3
    # The values are kept, with their flags: validity is judged, not the data discarded.
    stored = readings.series("yc-stack-1", "so2", T0, T0 + timedelta(hours=2))
    assert len(stored) == 70 and {r["flag"] for r in stored} == {flag}
    assert fired(alerts) == set()


def test_the_same_values_flagged_normal_raise_every_exceedance(exceedance: Parts) -> None:
    pipe, _, alerts = exceedance
    for msg in an_hour_over_the_limit("N"):
        pipe.process([msg])
    assert fired(alerts) == {"so2-limit", "so2-hourly", "nox-jumps", "dust-near-limit"}


def test_an_analyser_over_its_range_is_a_warning_of_its_own_not_an_exceedance(
    over_range: Parts,
) -> None:
    pipe, readings, alerts = over_range
    # The SO2 analyser saturates (T) at 500, far over the permit of 35, for 8 minutes; then it
    # measures 20 again. NOx is measured normally and in range throughout.
    for m in range(10):
        so2 = 500.0 if m < 8 else 20.0
        assert pipe.process([frame(m, {"so2": "T" if m < 8 else "N"}, so2=so2, nox=20.0)]).stored
    assert {r["flag"] for r in readings.series("yc-stack-1", "so2", T0, T0 + timedelta(1))} == {
        "T",
        "N",
    }
    (alert,) = alerts.list(limit=100)[0]
    assert (alert.rule_id, alert.metric, alert.severity) == ("over-range", "so2", "warning")
    assert alert.starts_at == T0 + timedelta(minutes=5)  # held for its 5 minutes
    assert alert.activity == "resolved"  # back in range at minute 8


def test_only_the_maintenance_flagged_metric_is_spared(exceedance: Parts) -> None:
    pipe, _, alerts = exceedance
    # SO2 in maintenance, NOx measured normally: one frame holds both.
    for m in range(5):
        pipe.process([frame(m, {"so2": "M"}, so2=80.0, nox=10.0 if m % 2 else 40.0)])
    assert fired(alerts) == {"nox-jumps"}


def test_a_device_in_maintenance_most_of_a_day_is_a_finding(upkeep: Parts) -> None:
    pipe, _, alerts = upkeep
    # A day of frames every 10 minutes: SO2 and dust flagged M or C from 06:00 to 22:00 Beijing
    # time (16 h of 24), NOx normal all day: 2/3 of 16/24 of the readings, 44 %, over 30 %.
    for step in range(145):
        minute = step * 10
        hour = (8 + minute // 60) % 24
        flag = ("M" if hour < 14 else "C") if 6 <= hour < 22 else "N"
        msg = frame(minute, {"so2": flag, "particulate": flag}, so2=20.0, nox=30.0, particulate=2.0)
        pipe.process([msg])
        if minute < 20 * 60:
            assert fired(alerts) == set(), f"judged before 20 h of data, at minute {minute}"
    items, total = alerts.list()
    assert total == 1
    alert = items[0]
    assert (alert.rule_id, alert.site, alert.device, alert.severity) == (
        "device-in-upkeep", "yc-stack-1", "cems1", "major"
    )  # fmt: skip
    assert alert.value is not None and 40 < alert.value < 50


def test_a_device_with_routine_upkeep_is_not_a_finding(upkeep: Parts) -> None:
    pipe, _, alerts = upkeep
    # A day with one hour of calibration of SO2 a day (about 1/3 of 1/24 of the readings).
    for step in range(145):
        minute = step * 10
        flag = "C" if 120 <= minute < 180 else "N"
        pipe.process([frame(minute, {"so2": flag}, so2=20.0, nox=30.0, particulate=2.0)])
    assert fired(alerts) == set()
