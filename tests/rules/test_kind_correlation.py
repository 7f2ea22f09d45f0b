"""``correlation`` rules and the :class:`rules.correlate.Correlator` stage: one combined alert when
independent member rules fire at one place within a window."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from farsight.credit import make_credit_code
from farsight.errors import RuleError
from farsight.registry import Registry, parse_registry
from farsight.types import AlertSignal
from rules.correlate import Correlator, haversine_m, independent_count
from rules.engine import Engine, fingerprint
from rules.loader import parse_ruleset
from tests.factories import ENTITY, T0, reading, registry_doc

CORR = {
    "id": "multi",
    "kind": "correlation",
    "members": ["cems-*", "aq-*"],
    "window": "30m",
    "severity": "critical",
    "summary": "{count} rules at {site_name}: {members}",
}


def _registry() -> Registry:
    doc = copy.deepcopy(registry_doc())
    # 1.1 km east of yc-stack-1 (111.35, 30.65), and a site 40 km away.
    doc["sites"].append(
        {
            "id": "yc-aq-near",
            "name": "Air station near the plant",
            "department": "env",
            "entity_id": make_credit_code("12420500MB0000019"),
            "location": {"lon": 111.3615, "lat": 30.65},
            "kind": "air_quality",
            "devices": [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25"]}],
        }
    )
    return parse_registry(doc)


def correlator(**fields: object) -> Correlator:
    return Correlator(parse_ruleset({"rules": [{**CORR, **fields}]}).rules, _registry())


def sig(
    rule: str,
    minutes: float,
    status: str = "firing",
    site: str = "yc-stack-1",
    device: str = "cems1",
    evidence: tuple[str, ...] = (),
    metric: str | None = None,
) -> AlertSignal:
    metric = metric if metric is not None else rule  # by default each rule judges its own series
    return AlertSignal(
        rule_id=rule,
        fingerprint=fingerprint(rule, site, device, metric),
        status=status,
        site=site,
        device=device,
        metric=metric,
        severity="major",
        summary=rule,
        ts=T0 + timedelta(minutes=minutes),
        department="env",
        entity_id=ENTITY,
        evidence=evidence,
    )


def test_two_member_rules_at_one_site_within_the_window_raise_one_combined_alert() -> None:
    c = correlator()
    assert c.process([sig("cems-so2-over-permit", 0, evidence=("a" * 64,))]) == []
    out = c.process([sig("cems-o2-dilution", 20, evidence=("b" * 64,))])
    assert len(out) == 1
    s = out[0]
    assert (s.status, s.rule_id, s.site, s.device, s.metric, s.severity) == (
        "firing",
        "multi",
        "yc-stack-1",
        "",
        "",
        "critical",
    )
    assert (
        s.summary
        == "2 rules at Yichang power plant stack 1: cems-so2-over-permit, cems-o2-dilution"
    )
    assert dict(s.labels)["members"] == "cems-so2-over-permit,cems-o2-dilution"
    assert s.evidence == ("a" * 64, "b" * 64)
    assert (s.value, s.threshold, s.department, s.ts) == (
        2.0,
        2.0,
        "env",
        T0 + timedelta(minutes=20),
    )
    assert s.fingerprint == fingerprint("multi", "yc-stack-1", "", "")
    # More signals of the same members: nothing new.
    assert c.process([sig("cems-so2-over-permit", 25)]) == []


def test_it_resolves_when_every_member_has_resolved() -> None:
    c = correlator()
    c.process([sig("cems-so2-over-permit", 0), sig("cems-o2-dilution", 1)])
    assert c.process([sig("cems-so2-over-permit", 40, "resolved")]) == []
    out = c.process([sig("cems-o2-dilution", 41, "resolved")])
    assert [(s.status, s.rule_id) for s in out] == [("resolved", "multi")]
    assert c.firing() == []


def test_a_third_rule_joining_updates_the_combined_alert() -> None:
    c = correlator()
    c.process([sig("cems-so2-over-permit", 0), sig("cems-o2-dilution", 1)])
    out = c.process([sig("cems-running-mismatch", 2)])
    assert [(s.status, s.value) for s in out] == [("firing", 3.0)]
    assert "cems-running-mismatch" in out[0].summary


def test_the_same_rule_twice_or_outside_the_window_or_a_non_member_is_not_enough() -> None:
    c = correlator()
    assert (
        c.process([sig("cems-so2-over-permit", 0), sig("cems-so2-over-permit", 1, device="cems2")])
        == []
    )
    c = correlator()
    assert c.process([sig("cems-so2-over-permit", 0), sig("cems-o2-dilution", 31)]) == []
    c = correlator()
    assert c.process([sig("cems-so2-over-permit", 0), sig("water-cod-over-permit", 1)]) == []
    assert (
        c.process(
            [
                sig("cems-so2-over-permit", 0, site="yc-stack-1"),
                sig("aq-pm25-high", 1, site="yc-aq-near", device="aq1"),
            ]
        )
        == []
    )


def test_two_rules_judging_the_same_series_are_one_piece_of_evidence() -> None:
    # An SO2 excess trips both the instant limit and the hourly mean of the same analyser.
    c = correlator()
    assert (
        c.process(
            [
                sig("cems-so2-over-permit", 0, metric="so2"),
                sig("cems-so2-hourly-mean", 5, metric="so2"),
            ]
        )
        == []
    )
    # A second, independent anomaly at the stack makes it multi-evidence.
    out = c.process([sig("cems-o2-dilution", 6, metric="o2")])
    assert [(s.status, s.value) for s in out] == [("firing", 2.0)]
    assert (
        dict(out[0].labels)["members"]
        == "cems-so2-over-permit,cems-so2-hourly-mean,cems-o2-dilution"
    )
    # Counting rules alone, as asked.
    c = correlator(independent_series=False)
    assert [
        s.status
        for s in c.process(
            [
                sig("cems-so2-over-permit", 0, metric="so2"),
                sig("cems-so2-hourly-mean", 5, metric="so2"),
            ]
        )
    ] == ["firing"]


def test_independent_count_is_a_matching_of_rules_to_series() -> None:
    assert independent_count([]) == 0
    assert independent_count([("a", "s1"), ("b", "s1")]) == 1
    assert independent_count([("a", "s1"), ("a", "s2")]) == 1
    assert independent_count([("a", "s1"), ("a", "s2"), ("b", "s1")]) == 2
    # Three rules on one series, plus one of them on two more: only two independent pairs.
    assert independent_count([("a", "s1"), ("b", "s1"), ("c", "s1"), ("a", "s2"), ("a", "s3")]) == 2


def test_within_m_joins_nearby_sites_by_haversine_distance() -> None:
    reg = _registry()
    d = haversine_m(reg.get("yc-stack-1"), reg.get("yc-aq-near"))
    assert 1000 < d < 1200
    c = correlator(within_m=2000)
    out = c.process(
        [sig("cems-so2-over-permit", 0), sig("aq-pm25-high", 5, site="yc-aq-near", device="aq1")]
    )
    assert [(s.status, s.site) for s in out] == [
        ("firing", "yc-stack-1")
    ]  # the first member's site
    c = correlator(within_m=2000)
    assert (
        c.process(
            [sig("cems-so2-over-permit", 0), sig("aq-pm25-high", 5, site="yc-aq-1", device="aq1")]
        )
        == []
    )  # 8 km


def test_a_member_still_counts_inside_the_window_after_it_resolved() -> None:
    c = correlator(members=["wim-*", "cems-*"])
    c.process([sig("wim-overload", 0), sig("wim-overload", 0.5, "resolved")])
    out = c.process([sig("cems-so2-over-permit", 10)])
    assert [s.status for s in out] == ["firing"]
    assert [s.status for s in c.process([sig("cems-so2-over-permit", 20, "resolved")])] == [
        "resolved"
    ]


def test_state_is_json_and_survives_a_restart() -> None:
    c = correlator()
    c.process([sig("cems-so2-over-permit", 0), sig("cems-o2-dilution", 1)])
    saved = json.loads(json.dumps(c.state()))
    c2 = correlator()
    assert c2.restore(saved) == 1
    assert c2.firing() == [("multi", "yc-stack-1")]
    c2.process([sig("cems-so2-over-permit", 40, "resolved")])
    assert [s.status for s in c2.process([sig("cems-o2-dilution", 41, "resolved")])] == ["resolved"]
    # A changed rule does not take the old state.
    assert correlator(window="1h").restore(saved) == 0


def test_the_kind_parses_and_is_never_fed_readings() -> None:
    doc = {
        "rules": [
            CORR,
            {
                "id": "cems-so2-high",
                "select": {"metric": "so2"},
                "threshold": 35,
                "severity": "major",
            },
            {
                "id": "cems-nox-high",
                "select": {"metric": "nox"},
                "threshold": 50,
                "severity": "major",
            },
        ]
    }
    rs = parse_ruleset(doc)
    e = Engine(rs, _registry())
    c = Correlator.from_engine(e)
    out = e.evaluate([reading("so2", 80, 0, site="yc-stack-1", device="cems1", unit="mg/m3")])
    assert [s.rule_id for s in out] == ["cems-so2-high"] and c.process(out) == []
    out = e.evaluate([reading("nox", 90, 1, site="yc-stack-1", device="cems1", unit="mg/m3")])
    combined = c.process(out)
    assert [(s.rule_id, s.status, s.site) for s in combined] == [("multi", "firing", "yc-stack-1")]
    assert not any(inst_rule == "multi" for inst_rule, _, _ in e.firing())
    assert all(key[0] != "multi" for key in e._instances)  # the kind's condition is never bound


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"members": []}, "members"),
        ({"min_distinct": 1}, "min_distinct"),
        ({"window": "0s"}, "window"),
        ({"within_m": -1}, "within_m"),
    ],
)
def test_invalid_correlation_rules_are_refused(fields: dict, path: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_ruleset({"rules": [{**CORR, **fields}]})
    assert any(path in p.path for p in info.value.problems)
