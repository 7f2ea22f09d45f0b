"""Admission: the catalogue's physical ranges, registered metrics and the caps, as pure functions
and through the pipeline on a real SQLite file."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
from pydantic import ValidationError

from farsight.db import Database
from farsight.errors import ConfigError, DecodeError
from farsight.hj212 import build_data_frame
from farsight.metrics import CATALOGUE
from farsight.settings import IngestSettings, load_settings
from farsight.types import Device, Reading
from ingest.admission import (
    AGGREGATE_SUFFIXES,
    INVALID_FLAG,
    AdmissionPolicy,
    admit,
    check_size,
    registered_metrics,
)
from ingest.pipeline import IngestPipeline, Message
from ingest.store import ReadingStore
from tests.factories import T0, registry


def r(metric: str, value: float, unit: str = "", flag: str = "N") -> Reading:
    return Reading("s1", "d1", metric, value, unit, T0, flag)


POLICY = AdmissionPolicy()


def test_every_catalogue_metric_has_a_finite_physical_range() -> None:
    for m in CATALOGUE:
        lo, hi = m.bounds
        assert math.isfinite(lo) and math.isfinite(hi) and lo < hi, m.name
    by_name = {m.name: m.bounds for m in CATALOGUE}
    # Concentrations are never negative; the bounds the issue names.
    for name in ("so2", "nox", "pm25", "pm10", "cod", "nh3n", "particulate"):
        assert by_name[name][0] == 0.0
    assert by_name["ph"] == (0.0, 14.0)
    assert by_name["flue_temp"] == (-60.0, 1500.0)
    assert by_name["gross_weight"] == (0.0, 200.0)


def test_values_inside_the_range_and_on_its_edges_are_admitted() -> None:
    readings = [r("pm25", 0.0), r("pm25", 20_000.0), r("ph", 7.1), r("flue_temp", -60.0)]
    got = admit(readings, None, POLICY)
    assert got.readings == tuple(readings) and got.refusals == () and got.flagged == ()


def test_absurd_values_are_refused_and_the_rest_of_the_message_kept() -> None:
    readings = [r("so2", -1e308), r("nox", 1e308), r("pm25", -3.0), r("pm10", 41.0)]
    got = admit(readings, None, POLICY)
    assert [x.metric for x in got.readings] == ["pm10"]
    (refusal,) = got.refusals
    assert refusal.reason == "out_of_range"
    assert refusal.metrics == ("so2", "nox", "pm25")
    assert "so2=-1e+308 outside 0..30000 mg/m3" in refusal.detail
    assert "pm25=-3 outside 0..20000 ug/m3" in refusal.detail


def test_flag_policy_stores_the_value_flagged_as_a_fault_per_metric() -> None:
    policy = AdmissionPolicy(out_of_range_by_metric=MappingProxyType({"ph": "flag"}))
    readings = [r("ph", 15.2), r("ph.avg_1h", -1.0, flag="M"), r("cod", -5.0)]
    got = admit(readings, None, policy)
    assert [(x.metric, x.value, x.flag) for x in got.readings] == [
        ("ph", 15.2, INVALID_FLAG),
        # Already flagged by the logger (maintenance): its own flag is kept.
        ("ph.avg_1h", -1.0, "M"),
    ]
    assert got.flagged == (
        "out of range ph: stored flagged D",
        "out of range ph.avg_1h: stored flagged D",
    )
    assert [f.reason for f in got.refusals] == ["out_of_range"]
    assert got.refusals[0].metrics == ("cod",)
    # The default policy can be flag, with one metric refused.
    flag_all = AdmissionPolicy(
        out_of_range="flag", out_of_range_by_metric=MappingProxyType({"cod": "refuse"})
    )
    got = admit(readings, None, flag_all)
    assert [x.metric for x in got.readings] == ["ph", "ph.avg_1h"]
    assert got.refusals[0].metrics == ("cod",)


def test_a_value_sent_in_another_unit_is_judged_in_the_catalogue_unit() -> None:
    # 50,000 µg/m3 of SO2 is 50 mg/m3: inside; 40,000 mg/m3 stated as such is not.
    got = admit([r("so2", 50_000.0, "ug/m3"), r("so2.zs", 40_000.0, "mg/m3")], None, POLICY)
    assert [x.metric for x in got.readings] == ["so2"]
    assert got.refusals[0].metrics == ("so2.zs",)
    got = admit([r("so2", 4e7, "µg/m3")], None, POLICY)
    assert "so2=40000 (sent as 4e+07 µg/m3) outside 0..30000 mg/m3" in got.refusals[0].detail


def test_period_sums_have_their_own_range() -> None:
    # A day's flue gas volume far exceeds the flow's m3/h bound, and is never negative.
    got = admit([r("flue_flow.cou_1d", 5e8, "m3"), r("so2.cou_1h", -1.0, "kg")], None, POLICY)
    assert [x.metric for x in got.readings] == ["flue_flow.cou_1d"]
    assert got.refusals[0].metrics == ("so2.cou_1h",)


def test_metrics_the_device_is_not_registered_for_are_refused_by_name() -> None:
    device = Device("aq1", "air_quality", metrics=("pm25", "pm10"))
    readings = [r("pm25", 30.0), r("so2", 5.0), r("bogus", 1.0), r("pm10.avg_1h", 40.0)]
    got = admit(readings, registered_metrics(device), POLICY)
    assert [x.metric for x in got.readings] == ["pm25", "pm10.avg_1h"]
    (refusal,) = got.refusals
    assert refusal.reason == "unknown_metric" and refusal.metrics == ("so2", "bogus")
    assert refusal.detail == "not in the device's registered metrics: so2, bogus"


def test_where_the_registry_is_silent_the_catalogue_decides() -> None:
    assert registered_metrics(Device("d1", "air_quality")) is None
    assert registered_metrics(None) is None
    names = [f"x{i}" for i in range(25)]
    got = admit([r("pm25", 30.0)] + [r(n, 1.0) for n in names], None, POLICY)
    assert [x.metric for x in got.readings] == ["pm25"]
    (refusal,) = got.refusals
    assert refusal.metrics == tuple(names)
    assert refusal.detail.startswith("not in the catalogue: x0, x1,")
    assert refusal.detail.endswith("x9 and 15 more")


def test_an_unknown_suffix_is_an_unknown_metric() -> None:
    # Otherwise "pm25.anything" would make unbounded metric names out of one catalogue metric.
    assert "avg_1h" in AGGREGATE_SUFFIXES and "zs" in AGGREGATE_SUFFIXES
    got = admit([r("pm25.x1", 1.0), r("pm25.avg_1h", 1.0)], None, POLICY)
    assert [x.metric for x in got.readings] == ["pm25.avg_1h"]
    assert got.refusals[0].metrics == ("pm25.x1",)


def test_an_hj212_code_outside_the_catalogue_is_admitted_once_registered() -> None:
    # The HJ 212 codec names a code with no catalogue metric by its lower-cased code.
    readings = [r("so2", 20.0), r("a99001", 3.0), r("a99001.avg_1h", 3.0)]
    got = admit(readings, None, POLICY)
    assert got.refusals[0].metrics == ("a99001", "a99001.avg_1h")
    got = admit(readings, frozenset({"so2", "a99001"}), POLICY)
    # Registered but not in the catalogue: no range to judge it by.
    assert got.readings == tuple(readings) and got.refusals == ()


def test_caps_refuse_the_whole_message() -> None:
    policy = AdmissionPolicy(max_metrics=3, max_payload_bytes=2048)
    admit([r("pm25", 1.0)] * 3, None, policy)
    with pytest.raises(DecodeError) as exc:
        admit([r("pm25", 1.0)] * 4, None, policy)
    assert exc.value.reason == "too_many_metrics" and "exceeds ingest.max_metrics 3" in str(
        exc.value
    )
    check_size(2048, policy)
    with pytest.raises(DecodeError) as exc:
        check_size(2049, policy)
    assert exc.value.reason == "too_large"


def test_settings_build_the_policy_and_refuse_overrides_of_unknown_metrics() -> None:
    s = IngestSettings(out_of_range="flag", out_of_range_metrics={"ph": "refuse"}, max_metrics=9)
    policy = AdmissionPolicy.from_settings(s)
    assert (policy.action("ph"), policy.action("so2"), policy.max_metrics) == ("refuse", "flag", 9)
    assert AdmissionPolicy.from_settings(IngestSettings()) == AdmissionPolicy()
    with pytest.raises(ValidationError, match="bogus not in the metric catalogue"):
        IngestSettings(out_of_range_metrics={"bogus": "flag"})
    with pytest.raises(ConfigError) as exc:
        load_settings(None, environ={"FARSIGHT__INGEST__MAX_METRICS": "0"})
    assert "ingest.max_metrics" in str(exc.value)


# -- through the pipeline -------------------------------------------------------------------


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[tuple[IngestPipeline, ReadingStore]]:
    store = ReadingStore(Database.open(tmp_path / "farsight.db"))
    yield (
        IngestPipeline(registry(), store, admission=AdmissionPolicy(max_payload_bytes=4096)),
        store,
    )
    store.close()


def aq(metrics: dict[str, float], minute: int = 0) -> Message:
    body = {"ts": (T0 + timedelta(minutes=minute)).isoformat(), "metrics": metrics}
    return Message("fs/v1/env/yc-aq-1/aq1/reading", json.dumps(body).encode())


def test_pipeline_stores_the_rest_and_dead_letters_each_refusal_with_the_payload(
    pipe: tuple[IngestPipeline, ReadingStore],
) -> None:
    p, store = pipe
    msg = aq({"pm25": 31.0, "pm10": -4.0, "so2": 3.0, "bogus": 1.0})
    result = p.process([msg])
    assert result.stored == 1 and result.rejected == 2
    assert [x["metric"] for x in store.latest()] == ["pm25"]
    letters = {d.reason: d for d in store.dead_letters()}
    assert set(letters) == {"unknown_metric", "out_of_range"}
    assert letters["unknown_metric"].detail == (
        "not in the device's registered metrics: so2, bogus"
    )
    assert letters["out_of_range"].detail == "pm10=-4 outside 0..20000 ug/m3"
    assert all(d.payload == msg.payload and d.codec == "json" for d in letters.values())
    assert p.stats.rejected_by_reason == {"unknown_metric": 1, "out_of_range": 1}


def test_pipeline_refuses_oversized_and_overfull_messages_before_storing(
    pipe: tuple[IngestPipeline, ReadingStore],
) -> None:
    p, store = pipe
    big = aq({f"m{i}": 1.0 for i in range(400)})  # ~4.5 KB, over the 4 KiB cap
    many = aq({f"m{i}": 1.0 for i in range(301)}, minute=1)
    many = Message(many.topic, json.dumps(json.loads(many.payload)).replace(" ", "").encode())
    assert len(big.payload) > 4096 and len(many.payload) <= 4096
    result = p.process([big, many, aq({"pm25": 12.0}, minute=2)])
    assert result.stored == 1 and result.rejected == 2
    assert sorted(d.reason for d in store.dead_letters()) == ["too_large", "too_many_metrics"]
    assert store.count() == 1


def test_pipeline_flags_an_hj212_value_outside_its_range_when_told_to(tmp_path: Path) -> None:
    store = ReadingStore(Database.open(tmp_path / "farsight.db"))
    policy = AdmissionPolicy(out_of_range_by_metric=MappingProxyType({"so2": "flag"}))
    p = IngestPipeline(registry(), store, admission=policy)
    frame = build_data_frame(
        mn="42050000000001",
        ts=T0,
        values={"a21026": {"Rtd": "-20.0", "Flag": "N"}, "a21002": {"Rtd": "30.0", "Flag": "N"}},
    )
    result = p.process([Message("fs/v1/env/yc-stack-1/cems1/hj212", frame)])
    assert result.stored == 2 and result.rejected == 0
    flags = {x["metric"]: x["flag"] for x in store.latest()}
    assert flags == {"so2": "D", "nox": "N"}
    assert [i["what"] for i in store.irregularities()] == ["out of range so2: stored flagged D"]
    store.close()


def test_the_benchmark_seam_turns_every_door_check_off_and_is_on_by_default(
    tmp_path: Path,
) -> None:
    # What benchmarks/ingest.py measures against: the same messages with checks on (the
    # default) and off. Off must skip each check, or the measured difference would be too small.
    future = T0 + timedelta(days=30)
    frame = build_data_frame(mn="99999999999999", ts=T0, values={"a21026": {"Rtd": "1.0"}})
    batch = [
        aq({"pm25": 31.0, "pm10": -4.0, "bogus": 1.0}),  # unknown metric, out of range
        aq({f"m{i}": 1.0 for i in range(400)}, minute=1),  # payload and metric caps
        Message(
            "fs/v1/env/yc-aq-1/aq1/reading",
            json.dumps({"ts": future.isoformat(), "metrics": {"pm25": 9.0}}).encode(),
            received=T0,
        ),  # measured a month after its receipt
        Message("fs/v1/env/yc-stack-1/cems1/hj212", frame),  # MN not the registered one
    ]
    policy = AdmissionPolicy(max_payload_bytes=4096)
    on_store = ReadingStore(Database.open(tmp_path / "on.db"))
    on = IngestPipeline(registry(), on_store, admission=policy)
    assert on.checks is True
    assert on.process(batch).stored == 1  # only pm25 of the first message
    off_store = ReadingStore(Database.open(tmp_path / "off.db"))
    off = IngestPipeline(registry(), off_store, admission=policy, checks=False)
    result = off.process(batch)
    assert (result.stored, result.rejected) == (3 + 400 + 1 + 1, 0)
    assert off_store.dead_letter_count() == 0
    on_store.close()
    off_store.close()
