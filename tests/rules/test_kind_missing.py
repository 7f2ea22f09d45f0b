"""``missing_data``: silence noticed on the engine's clock, per device or stream, one site alert
when the whole site is silent, prompt resolution when data returns."""

from __future__ import annotations

import copy

import pytest

from farsight.credit import make_credit_code
from farsight.errors import RuleError
from farsight.registry import Registry, parse_registry
from farsight.types import AlertSignal
from rules.engine import Engine
from rules.loader import parse_ruleset
from tests.factories import at, reading, registry_doc


def _registry() -> Registry:
    doc = copy.deepcopy(registry_doc())
    doc["sites"].append(
        {
            "id": "yc-multi",
            "name": "Yichang multi-device site",
            "department": "env",
            "entity_id": make_credit_code("91420500MA4900009"),
            "location": {"lon": 111.30, "lat": 30.71},
            "kind": "construction",
            "devices": [
                {"id": "aq1", "kind": "air_quality", "metrics": ["pm25", "pm10"], "cadence_s": 60},
                {"id": "dn1", "kind": "dust_noise", "metrics": ["noise"], "cadence_s": 300},
                {"id": "cam1", "kind": "camera"},
            ],
        }
    )
    return parse_registry(doc)


def _engine(**fields: object) -> Engine:
    rule = {"id": "offline", "kind": "missing_data", "severity": "major", **fields}
    return Engine(parse_ruleset({"rules": [rule]}), _registry())


def about(sigs: list[AlertSignal], site: str) -> list[AlertSignal]:
    return [s for s in sigs if s.site == site]


def test_a_silent_device_goes_offline_after_k_cadences_on_the_engine_clock() -> None:
    e = _engine(select={"site": "yc-aq-1"})
    assert e.tick(at(0)) == []
    assert e.evaluate([reading("pm25", 30, 1), reading("pm10", 40, 1)]) == []
    assert e.tick(at(3.9)) == []  # silent 2.9 min < 3 x 60 s
    sigs = e.tick(at(4))
    assert [(s.status, s.site, s.device, s.metric, s.severity) for s in sigs] == [
        ("firing", "yc-aq-1", "aq1", "", "major")
    ]
    s = sigs[0]
    assert (s.value, s.threshold, s.ts) == (3.0, 3.0, at(4))
    ann = dict(s.annotations)
    assert (
        "for 3 min" in ann["summary"]
        and "last seen 2026-11-25T08:01:00+08:00" in ann["summary"]
        and "every 60 s" in ann["summary"]
    )
    # Still silent: no duplicate, nothing arrives, nothing new.
    assert e.tick(at(5)) == []


def test_data_returning_resolves_at_once_from_observe() -> None:
    e = _engine(select={"site": "yc-aq-1"})
    e.tick(at(0))
    e.evaluate([reading("pm25", 30, 0)])
    assert [s.status for s in e.tick(at(5))] == ["firing"]
    back = e.evaluate([reading("pm25", 31, 7)])
    assert [(s.status, s.device, s.ts) for s in back] == [("resolved", "aq1", at(7))]
    assert "for 7 min" in back[0].summary  # the gap that just ended
    assert e.tick(at(7.5)) == []


def test_a_device_never_seen_counts_from_the_first_tick() -> None:
    e = _engine(select={"site": "yc-aq-1"})
    assert e.tick(at(100)) == []  # the engine cannot know what came before its first tick
    assert e.tick(at(102)) == []
    sigs = e.tick(at(103))
    assert [(s.status, s.device) for s in sigs] == [("firing", "aq1")]
    assert "last seen never" in sigs[0].summary


def test_flagged_readings_prove_the_device_is_online() -> None:
    e = _engine(select={"site": "yc-aq-1"})
    e.tick(at(0))
    for m in range(10):
        e.evaluate([reading("pm25", 500, m, flag="C")])  # calibration data, every minute
        assert e.tick(at(m + 0.5)) == []


def test_each_device_has_its_own_cadence_and_one_site_alert_replaces_device_alerts() -> None:
    e = _engine(select={"site": "yc-multi"})
    e.tick(at(0))
    aq = lambda m: reading("pm25", 30, m, site="yc-multi", device="aq1")  # noqa: E731
    dn = lambda m: reading("noise", 55, m, site="yc-multi", device="dn1", unit="dB(A)")  # noqa: E731
    e.evaluate([aq(0), dn(0)])
    # aq1 goes silent; dn1 (every 5 min) keeps sending. The camera sends no readings: not expected.
    e.evaluate([dn(5)])
    sigs = e.tick(at(5))
    assert [(s.status, s.device) for s in sigs] == [("firing", "aq1")]
    e.evaluate([dn(10)])
    assert e.tick(at(10)) == []
    # dn1 falls silent too, 15 minutes (3 x 300 s) after its last reading: the whole site is.
    # (aq1's firing alert is re-sent every 10 minutes of event time: a refresh, not a new alert.)
    assert [(s.status, s.device) for s in e.tick(at(24.9))] == [("firing", "aq1")]
    sigs = e.tick(at(25))
    assert sorted((s.status, s.device, s.metric) for s in sigs) == [
        ("firing", "", ""),
        ("resolved", "aq1", ""),
    ]
    site_alert = next(s for s in sigs if s.status == "firing")
    assert (
        site_alert.site == "yc-multi" and site_alert.value == 15.0
    )  # silent since dn1's last reading
    assert e.tick(at(26)) == []  # device alerts held inactive under the site alert
    # dn1 returns: the site alert resolves at once; aq1, still silent, gets its own alert back.
    back = e.evaluate([dn(27)])
    assert [(s.status, s.device) for s in back] == [("resolved", "")]
    assert [(s.status, s.device) for s in e.tick(at(27))] == [("firing", "aq1")]


def test_per_stream_reports_the_channel_that_dropped_out() -> None:
    e = _engine(select={"site": "yc-aq-1"}, per="stream")
    e.tick(at(0))
    for m in range(6):
        e.evaluate([reading("pm25", 30, m)])  # pm10 never arrives
    sigs = e.tick(at(5))
    assert [(s.status, s.device, s.metric) for s in sigs] == [("firing", "aq1", "pm10")]
    # A device alert (per: device) would stay quiet: the device is alive.
    e2 = _engine(select={"site": "yc-aq-1"})
    e2.tick(at(0))
    for m in range(6):
        e2.evaluate([reading("pm25", 30, m)])
    assert e2.tick(at(5)) == []


def test_one_device_site_with_every_stream_silent_gets_one_alert_naming_the_device() -> None:
    e = _engine(select={"site": "yc-aq-1"}, per="stream")
    e.tick(at(0))
    sigs = e.tick(at(3))
    assert [(s.status, s.device, s.metric) for s in sigs] == [("firing", "aq1", "")]


def test_metrics_narrow_what_is_expected_and_device_kind_selects_devices() -> None:
    e = _engine(select={"site": "yc-multi", "device_kind": "dust_noise"})
    e.tick(at(0))
    assert e.tick(at(14)) == []
    assert [(s.status, s.device) for s in e.tick(at(15))] == [("firing", "dn1")]  # aq1 not watched
    e2 = _engine(select={"site": "yc-aq-1"}, metrics=["pm10"])
    e2.tick(at(0))
    for m in range(5):
        e2.evaluate([reading("pm25", 30, m)])  # pm25 is not what this rule expects
    assert [(s.status, s.device) for s in e2.tick(at(4))] == [("firing", "aq1")]


def test_event_devices_use_max_silence_by_kind() -> None:
    e = _engine(select={"site": "xg-wim-1"}, max_silence={"wim": "2h"})
    e.tick(at(0))
    assert e.tick(at(119)) == []
    sigs = e.tick(at(120))
    assert [(s.status, s.site, s.device, s.threshold) for s in sigs] == [
        ("firing", "xg-wim-1", "wim1", 120.0)
    ]


def test_eager_binding_covers_every_matching_site_without_any_reading() -> None:
    e = _engine(select={"department": "env"})
    e.tick(at(0))
    sigs = e.tick(at(15))
    assert sorted((s.site, s.device) for s in sigs) == [
        ("yc-aq-1", "aq1"),
        ("yc-multi", ""),
        ("yc-stack-1", "cems1"),
    ]


def test_state_survives_a_restart() -> None:
    e = _engine(select={"site": "yc-aq-1"})
    e.tick(at(0))
    e.evaluate([reading("pm25", 30, 10)])
    saved = e.snapshot()
    e2 = _engine(select={"site": "yc-aq-1"})
    assert e2.restore(saved) >= 1
    # The downtime (10 to 20) is not held against the device: its backlog may be on its way.
    # Silence counts again from the first tick after the restart, from the restored last-seen.
    assert e2.tick(at(20)) == []
    assert e2.tick(at(22.9)) == []
    sigs = e2.tick(at(23))
    assert [s.status for s in sigs] == ["firing"]
    assert "last seen 2026-11-25T08:10:00+08:00" in sigs[0].summary
    saved = e2.snapshot()
    e3 = _engine(select={"site": "yc-aq-1"})
    e3.restore(saved)
    assert [s.status for s in e3.evaluate([reading("pm25", 30, 24)])] == ["resolved"]


def test_a_backlog_replayed_faster_than_real_time_is_not_silence() -> None:
    # Ninety minutes of history (an edge gateway's store-and-forward, the demo's catch-up)
    # arrive within one minute of engine time: judged on the site's event time, no gap.
    e = _engine(select={"site": "yc-aq-1"})
    assert e.tick(at(100)) == []
    for m in range(90):
        e.evaluate([reading("pm25", 30, m)])
        assert e.tick(at(100 + m / 90)) == []
    # Live again at minute 101; the device then stops: offline 3 minutes later.
    e.evaluate([reading("pm25", 30, 101)])
    assert e.tick(at(101)) == []
    assert [s.status for s in e.tick(at(104))] == ["firing"]


def test_the_engine_watermark_reveals_a_gap_inside_a_replayed_backlog() -> None:
    e = _engine(select={"department": "env"})
    newest = {"ts": at(0)}
    for inst in e._instances.values():  # the hook the engine sets (see rules/kinds/missing.py)
        inst.cond.watermark = lambda: newest["ts"]
    e.tick(at(100))
    fired = []
    for m in range(30):
        # The whole engine replays minutes 0..29 within a minute; the stack sends only until 9.
        e.evaluate(
            [reading("pm25", 30, m)]
            + (
                [reading("so2", 20, m, site="yc-stack-1", device="cems1", unit="mg/m3")]
                if m < 10
                else []
            )
        )
        newest["ts"] = at(m)
        fired += e.tick(at(100 + m / 30))
    assert {(s.status, s.site) for s in fired} == {("firing", "yc-stack-1")}
    assert fired[0].ts == at(12)  # on event time: 3 missed minutes after the last reading at 9


def test_invalid_fields_are_refused() -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset(
            {
                "rules": [
                    {"id": "a", "kind": "missing_data", "k": 0},
                    {"id": "b", "kind": "missing_data", "per": "site"},
                    {"id": "c", "kind": "missing_data", "max_silence": {"wim": "soon"}},
                ]
            }
        )
    paths = [p.path for p in info.value.problems]
    assert any(p.startswith("rules.0[a].k") for p in paths)
    assert any(p.startswith("rules.1[b].per") for p in paths)
    assert any(p.startswith("rules.2[c].max_silence") for p in paths)


def test_a_gap_inside_a_replayed_backlog_is_recorded_after_the_fact() -> None:
    """No tick fell inside the gap (the backlog arrived faster than the clock ticks): the
    outage is still raised, from when it became overdue, and resolved by the data that ends it."""
    from tests.factories import at, reading, rule_engine

    e = rule_engine(
        {
            "id": "offline",
            "kind": "missing_data",
            "select": {"site": "yc-aq-1"},
            "k": 3,
            "severity": "major",
        }
    )
    e.tick(at(0))
    sigs = []
    for m in list(range(5)) + list(range(20, 25)):  # silent from minute 5 to 19
        sigs += e.evaluate([reading("pm25", 20, m)])
    assert [(s.status, s.ts) for s in sigs] == [("firing", at(7)), ("resolved", at(20))]
    assert sigs[0].device == "aq1"


def test_camera_detections_do_not_make_the_sites_sensor_readings_late() -> None:
    # A camera's findings carry millisecond times; the site's sensors report on whole seconds and
    # may arrive after a finding stamped a fraction of a second later. Cameras are ignored by the
    # rule, so their findings must not move its event-time order either.
    e = _engine(select={"site": "yc-multi"})
    e.tick(at(0))
    e.evaluate([reading("video_smoke", 0.9, 1.01, site="yc-multi", device="cam1", unit="1")])
    e.evaluate(
        [
            reading("pm25", 30, 1, site="yc-multi"),
            reading("noise", 55, 1, site="yc-multi", device="dn1", unit="dB"),
        ]
    )
    assert e.stats.late == 0
    # The sensors' readings counted: 3 cadences of aq1 after minute 1 it is offline, not before.
    assert about(e.tick(at(3.9)), "yc-multi") == []
    assert [s.device for s in about(e.tick(at(4.1)), "yc-multi")] == ["aq1"]
