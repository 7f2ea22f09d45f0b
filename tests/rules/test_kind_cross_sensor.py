"""Cross-sensor CEMS checks: 标停未停 (``running_mismatch``) and O2/flow/temperature physics
(``physical_consistency``)."""

from __future__ import annotations

import copy

import pytest

from farsight.credit import make_credit_code
from farsight.errors import RuleError
from farsight.registry import Registry, parse_registry
from farsight.types import Reading
from rules.engine import Engine
from rules.loader import parse_ruleset
from tests.factories import reading, registry_doc

SITE = "yc-stack-2"
CEMS = ["so2", "nox", "particulate", "o2", "flue_flow", "flue_temp", "running"]
UNITS = {
    "so2": "mg/m3",
    "nox": "mg/m3",
    "particulate": "mg/m3",
    "o2": "%",
    "flue_flow": "m3/h",
    "flue_temp": "degC",
    "running": "1",
}


def _registry() -> Registry:
    doc = copy.deepcopy(registry_doc())
    doc["sites"].append(
        {
            "id": SITE,
            "name": "Yichang foundry stack",
            "department": "env",
            "entity_id": make_credit_code("91420500MA4900011"),
            "location": {"lon": 111.30, "lat": 30.74},
            "kind": "stack",
            "limits": {"so2": 100, "nox": 100, "particulate": 20},
            "devices": [
                {
                    "id": "cems1",
                    "kind": "cems",
                    "protocol": "hj212",
                    "mn": "42050631000499",
                    "metrics": CEMS,
                },
                {"id": "dcs", "kind": "cems", "metrics": ["running"]},
            ],
        }
    )
    return parse_registry(doc)


def _engine(rule: dict) -> Engine:
    return Engine(parse_ruleset({"rules": [rule]}), _registry())


def frame(minutes: float, flag: str = "N", device: str = "cems1", **values: float) -> list[Reading]:
    """One HJ 212 frame's readings (every analyser carries ``flag``)."""
    return [
        reading(
            m,
            v,
            minutes,
            site=SITE,
            device=device,
            flag=flag if m != "running" else "N",
            unit=UNITS[m],
        )
        for m, v in values.items()
    ]


RUNNING = {
    "id": "stopped-but-running",
    "kind": "running_mismatch",
    "min_flow": 50000,
    "severity": "major",
}
DILUTION = {
    "id": "dilution",
    "kind": "physical_consistency",
    "select": {"device_kind": "cems"},
    "min_flow": 50000,
    "min_temp": 40,
    "severity": "major",
}


# -- running_mismatch ---------------------------------------------------------------------


def test_reported_stopped_while_flue_gas_flows_fires_and_clears_when_flow_stops() -> None:
    e = _engine(RUNNING)
    assert e.evaluate(frame(0, so2=30, o2=8, flue_flow=150000, flue_temp=110, running=1)) == []
    sigs = e.evaluate(frame(1, so2=30, o2=8, flue_flow=150000, flue_temp=110, running=0))
    assert [
        (s.status, s.site, s.device, s.metric, s.value, s.threshold, s.severity) for s in sigs
    ] == [("firing", SITE, "cems1", "flue_flow", 150000, 50000, "major")]
    assert (
        sigs[0].summary
        == "Yichang foundry stack reports stopped (running=0) while its flue is still in use: flow"
        " 150000, temperature 110"
    )
    # The plant really stops: natural draft only.
    assert [
        s.status
        for s in e.evaluate(frame(2, so2=0.5, o2=20.6, flue_flow=4000, flue_temp=15, running=0))
    ] == ["resolved"]


def test_a_running_plant_and_a_really_stopped_plant_are_fine() -> None:
    e = _engine(RUNNING)
    for m in range(10):
        assert e.evaluate(frame(m, so2=30, o2=8, flue_flow=150000, flue_temp=110, running=1)) == []
    # Stopped, flagged F (as the simulator's foundry at night): trickle flow, ambient O2.
    for m in range(10, 20):
        assert (
            e.evaluate(
                frame(m, flag="F", so2=0.3, o2=20.6, flue_flow=5000, flue_temp=12, running=0)
            )
            == []
        )


def test_the_stopped_flag_f_on_the_analysers_is_a_stopped_report() -> None:
    e = _engine(RUNNING)
    # No running metric at all; the logger flags everything F (HJ 212-2017 "stopped") yet the
    # flow it reports is a running plant's. Flagged data is the evidence here.
    sigs = e.evaluate(frame(0, flag="F", so2=12, nox=20, o2=8, flue_flow=180000, flue_temp=115))
    assert [(s.status, s.metric) for s in sigs] == [("firing", "flue_flow")]
    assert "flag F on nox,o2,so2" in sigs[0].summary


def test_frame_and_status_message_with_the_same_timestamp_are_combined() -> None:
    e = _engine(RUNNING)
    # The HJ 212 frame (no status) and then the JSON status of the same minute, separately.
    assert e.evaluate(frame(0, so2=30, o2=8, flue_flow=150000, flue_temp=110)) == []
    assert e.evaluate(frame(0, running=1)) == []
    assert (
        e.evaluate(frame(1, so2=30, o2=8, flue_flow=150000, flue_temp=110)) == []
    )  # status of minute 0: running
    assert [s.status for s in e.evaluate(frame(1, running=0))] == ["firing"]


def test_status_from_another_device_of_the_site_counts_and_stale_status_does_not() -> None:
    e = _engine({**RUNNING, "max_age": "5m"})
    assert e.evaluate(frame(0, device="dcs", running=0)) == []  # no flow known yet
    assert [s.device for s in e.evaluate(frame(1, so2=30, flue_flow=150000))] == ["cems1"]
    e2 = _engine({**RUNNING, "max_age": "5m"})
    e2.evaluate(frame(0, device="dcs", running=0))
    assert e2.evaluate(frame(6, so2=30, flue_flow=150000)) == []  # the status is 6 min old


def test_temperature_alone_can_be_the_evidence_and_for_holds() -> None:
    e = _engine({"id": "hot", "kind": "running_mismatch", "min_temp": 80, "for": "10m"})
    assert e.evaluate(frame(0, flue_temp=120, running=0)) == []
    assert e.evaluate(frame(9, flue_temp=118, running=0)) == []
    sigs = e.evaluate(frame(10, flue_temp=117, running=0))
    assert [(s.status, s.metric, s.threshold) for s in sigs] == [("firing", "flue_temp", 80)]


def test_running_mismatch_needs_some_evidence_of_operation() -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [{"id": "x", "kind": "running_mismatch"}]})
    assert "min_flow" in str(info.value)


# -- physical_consistency -------------------------------------------------------------------


def test_ambient_o2_in_a_hot_flowing_flue_is_a_diluted_sample() -> None:
    e = _engine(DILUTION)
    assert e.evaluate(frame(0, so2=30, o2=7.5, flue_flow=160000, flue_temp=112, running=1)) == []
    sigs = e.evaluate(frame(1, so2=12, o2=20.3, flue_flow=160000, flue_temp=112, running=1))
    assert [(s.status, s.device, s.metric, s.value, s.threshold) for s in sigs] == [
        ("firing", "cems1", "o2", 20.3, 19)
    ]
    assert "diluted sample" in sigs[0].summary
    assert [
        s.status
        for s in e.evaluate(frame(2, so2=30, o2=7.9, flue_flow=160000, flue_temp=112, running=1))
    ] == ["resolved"]


@pytest.mark.parametrize(
    "values",
    [
        {"o2": 20.6, "flue_flow": 5000, "flue_temp": 112},  # no flow: a stopped stack breathes air
        {
            "o2": 20.6,
            "flue_flow": 160000,
            "flue_temp": 18,
        },  # cold: fans moving ambient air, not flue gas
        {"o2": 18.5, "flue_flow": 160000, "flue_temp": 112},  # lean but below the ambient threshold
    ],
)
def test_no_dilution_without_all_three_signs(values: dict) -> None:
    e = _engine(DILUTION)
    assert e.evaluate(frame(0, **values)) == []


def test_flagged_data_is_not_judged_for_physics() -> None:
    e = _engine(DILUTION)
    # A stopped plant (flag F) or a calibration (flag C) puts air or span gas on the analyser.
    assert e.evaluate(frame(0, flag="F", o2=20.6, flue_flow=160000, flue_temp=112)) == []
    assert e.evaluate(frame(1, flag="C", o2=20.9, flue_flow=160000, flue_temp=112)) == []
    # A lone flagged O2 reading with normal flow and temperature is not judged either.
    mixed = [
        reading("o2", 20.6, 2, site=SITE, device="cems1", flag="C", unit="%"),
        reading("flue_flow", 160000, 2, site=SITE, device="cems1", unit="m3/h"),
        reading("flue_temp", 112, 2, site=SITE, device="cems1", unit="degC"),
    ]
    assert e.evaluate(mixed) == []


def test_zero_flow_with_combustion_o2_is_a_blocked_flow_meter() -> None:
    e = _engine({**DILUTION, "id": "flow-blocked", "checks": ["zero_flow"], "zero_flow": 100})
    assert e.evaluate(frame(0, o2=8, flue_flow=160000, flue_temp=110)) == []
    sigs = e.evaluate(frame(1, o2=8, flue_flow=0, flue_temp=110))
    assert [(s.status, s.metric, s.value, s.threshold) for s in sigs] == [
        ("firing", "flue_flow", 0, 100)
    ]
    assert "no flow while O2 shows combustion gas" in sigs[0].summary
    # Stopped and breathing air: zero flow with ambient O2 is consistent.
    e2 = _engine({**DILUTION, "id": "flow-blocked", "checks": ["zero_flow"]})
    assert e2.evaluate(frame(0, o2=20.7, flue_flow=0, flue_temp=15)) == []


def test_both_checks_are_separate_alerts() -> None:
    e = _engine({**DILUTION, "checks": ["dilution", "zero_flow"]})
    a = e.evaluate(frame(0, o2=20.5, flue_flow=160000, flue_temp=112))
    b = e.evaluate(frame(1, o2=8, flue_flow=0, flue_temp=112))
    assert [s.metric for s in a] == ["o2"]
    assert sorted((s.status, s.metric) for s in b) == [("firing", "flue_flow"), ("resolved", "o2")]
    assert a[0].fingerprint != next(s for s in b if s.status == "firing").fingerprint
