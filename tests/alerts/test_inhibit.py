"""Inhibition: the pure decision, the default rule against real site-offline signals, and the
stage on SQLite and PostgreSQL (a site offline mutes that site's sensor alerts)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from alerts.inhibit import compile_rules, inhibited, inhibitor
from alerts.matchers import MatcherError, alert_labels
from alerts.mute import MuteStage
from alerts.silences import SilenceStore
from alerts.store import AlertFilter, AlertStore
from farsight.clock import ManualClock
from farsight.registry import parse_registry
from farsight.settings import AlertsSettings
from farsight.types import AlertSignal, Reading
from rules.engine import Engine, fingerprint
from rules.loader import parse_ruleset
from tests.factories import ENTITY, T0, registry_doc

DEFAULT = compile_rules(AlertsSettings().inhibit)
PACK = Path(__file__).resolve().parents[2] / "rules" / "packs" / "env-site.yaml"


def fake(
    id: int,
    rule_id: str,
    site: str,
    device: str,
    metric: str = "",
    activity: str = "firing",
    state: str = "new",
    **labels: str,
) -> Any:
    return SimpleNamespace(
        id=id,
        rule_id=rule_id,
        site=site,
        device=device,
        metric=metric,
        department="env",
        entity_id="",
        severity="major",
        item_code="",
        labels=labels,
        activity=activity,
        state=state,
    )


# -- the pure decision ---------------------------------------------------------------------


def test_site_offline_inhibits_that_sites_sensor_alerts_only() -> None:
    offline = fake(1, "site-offline", "s1", "")
    pm25 = fake(2, "aq-pm25-high", "s1", "aq1", "pm25")
    dev_off = fake(3, "site-offline", "s1", "aq1")  # a per-device offline alert of the same site
    other = fake(4, "aq-pm25-high", "s2", "aq1", "pm25")
    alerts = [offline, pm25, dev_off, other]
    assert inhibited(DEFAULT, alerts, alerts) == {2: 1, 3: 1}
    assert inhibitor(DEFAULT, offline, alerts) is None, "the source never inhibits itself"


def test_only_active_sources_inhibit() -> None:
    pm25 = fake(2, "aq-pm25-high", "s1", "aq1", "pm25")
    assert (
        inhibitor(DEFAULT, pm25, [fake(1, "site-offline", "s1", "", activity="resolved")]) is None
    )
    assert inhibitor(DEFAULT, pm25, [fake(1, "site-offline", "s1", "", state="closed")]) is None
    assert inhibitor(DEFAULT, pm25, [fake(1, "site-offline", "s1", "", state="acknowledged")]) == 1


def test_the_oldest_source_is_chosen() -> None:
    pm25 = fake(9, "aq-pm25-high", "s1", "aq1", "pm25")
    assert (
        inhibitor(
            DEFAULT, pm25, [fake(5, "site-offline", "s1", ""), fake(3, "site-offline", "s1", "")]
        )
        == 3
    )


def test_equal_labels_include_rule_labels() -> None:
    rules = compile_rules(
        [
            {
                "source": {"rule_id": "river-flood"},
                "target": {"rule_id": "~aq-.*"},
                "equal": ["basin"],
            }
        ]
    )
    flood = fake(1, "river-flood", "s9", "gauge", basin="yangtze")
    same = fake(2, "aq-pm25-high", "s1", "aq1", basin="yangtze")
    other = fake(3, "aq-pm25-high", "s2", "aq1", basin="han")
    assert inhibited(rules, [flood, same, other], [same, other]) == {2: 1}


def test_alerts_matching_both_sides_do_not_mute_each_other() -> None:
    rules = compile_rules(
        [
            {
                "source": {"severity": "critical"},
                "target": {"severity": "~critical|major"},
                "equal": ["site"],
            }
        ]
    )
    a = SimpleNamespace(**{**vars(fake(1, "r1", "s1", "d1")), "severity": "critical"})
    b = SimpleNamespace(**{**vars(fake(2, "r2", "s1", "d2")), "severity": "critical"})
    c = fake(3, "r3", "s1", "d3")  # major
    assert inhibited(rules, [a, b, c], [a, b, c]) == {3: 1}


def test_bad_rules_name_rule_and_side() -> None:
    with pytest.raises(MatcherError, match=r"inhibit rule 0 target: .*'site'"):
        compile_rules([{"source": {"rule_id": "x"}, "target": {"site": "~("}}])
    with pytest.raises(MatcherError, match="inhibit rule 1 source: at least one matcher"):
        compile_rules(
            [
                {"source": {"rule_id": "x"}, "target": {"site": "a"}},
                {"source": {}, "target": {"site": "a"}},
            ]
        )
    with pytest.raises(MatcherError, match="equal"):
        compile_rules(
            [{"source": {"rule_id": "x"}, "target": {"site": "a"}, "equal": ["not a label"]}]
        )


# -- the default rule against what the rule engine really raises ------------------------------


def _engine_two_device_site() -> tuple[Engine, str]:
    doc = registry_doc()
    site = doc["sites"][0]
    site["devices"] = [
        {"id": "aq1", "kind": "air_quality", "metrics": ["pm25"]},
        {"id": "aq2", "kind": "air_quality", "metrics": ["pm10"]},
    ]
    rule = next(
        r
        for r in yaml.safe_load(PACK.read_text(encoding="utf-8"))["rules"]
        if r["id"] == "site-offline"
    )
    return Engine(parse_ruleset({"rules": [rule]}), parse_registry(doc)), site["id"]


def _as_alert(i: int, s: AlertSignal) -> Any:
    return SimpleNamespace(
        id=i,
        rule_id=s.rule_id,
        site=s.site,
        device=s.device,
        metric=s.metric,
        department=s.department,
        entity_id=s.entity_id,
        severity=s.severity,
        item_code=s.item_code,
        labels=dict(s.labels),
        activity="firing",
        state="new",
    )


def test_default_rule_matches_the_real_site_offline_signals() -> None:
    engine, site = _engine_two_device_site()
    engine.tick(T0)
    signals = engine.tick(
        T0 + timedelta(minutes=10)
    )  # both devices silent for k=3 cadences of 60 s
    firing = [s for s in signals if s.status == "firing" and s.site == site]
    assert len(firing) == 1, f"one site alert expected, got {firing}"
    site_alert = _as_alert(1, firing[0])
    assert alert_labels(site_alert)["device"] == ""
    assert DEFAULT[0].is_source(alert_labels(site_alert))
    assert not DEFAULT[0].is_target(alert_labels(site_alert)), (
        "the default target must not match the source alert itself"
    )
    # A device alert of the same rule (one device silent, the other alive) and a sensor alert.
    engine2, _ = _engine_two_device_site()
    engine2.tick(T0)
    engine2.evaluate(
        [
            Reading(
                site=site,
                device="aq2",
                metric="pm10",
                value=40.0,
                unit="ug/m3",
                ts=T0 + timedelta(minutes=9),
            )
        ]
    )
    dev_signals = [
        s
        for s in engine2.tick(T0 + timedelta(minutes=10))
        if s.status == "firing" and s.site == site
    ]
    assert [s.device for s in dev_signals] == ["aq1"]
    device_alert = _as_alert(2, dev_signals[0])
    sensor = fake(3, "aq-pm25-high", site, "aq1", "pm25")
    elsewhere = fake(4, "aq-pm25-high", "yc-stack-1", "cems1", "so2")
    everything = [site_alert, device_alert, sensor, elsewhere]
    assert inhibited(DEFAULT, everything, everything) == {2: 1, 3: 1}


# -- the stage, on both backends ---------------------------------------------------------


def sig(
    rule_id: str,
    site: str,
    device: str,
    metric: str = "",
    status: str = "firing",
    minutes: float = 0,
) -> AlertSignal:
    return AlertSignal(
        rule_id=rule_id,
        fingerprint=fingerprint(rule_id, site, device, metric + ("#site" if not device else "")),
        status=status,
        site=site,
        device=device,
        metric=metric,
        severity="major",
        summary=f"{rule_id} at {site}",
        ts=T0 + timedelta(minutes=minutes),
        department="env",
        entity_id=ENTITY,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def stage(backend: str, clock: ManualClock) -> Iterator[MuteStage]:
    store = AlertStore(backend, clock=clock)
    yield MuteStage(
        store, SilenceStore(store.db, clock=clock, audit=store.audit), AlertsSettings().inhibit
    )
    store.close()


def _actions(store: AlertStore, alert_id: int) -> list[str]:
    return [e.action for e in store.events(alert_id)]


def test_stage_site_offline_mutes_that_site_and_unmutes_on_resolve(
    stage: MuteStage, clock: ManualClock
) -> None:
    store = stage.store
    pm25, other = stage.apply(
        [
            sig("aq-pm25-high", "yc-aq-1", "aq1", "pm25"),
            sig("aq-pm25-high", "yc-stack-1", "cems1", "so2"),
        ]
    )
    assert pm25.suppressed == {} and other.suppressed == {}
    clock.advance(timedelta(minutes=5))
    out = stage.apply([sig("site-offline", "yc-aq-1", "", minutes=5)])
    offline = next(a for a in out if a.rule_id == "site-offline")
    assert offline.suppressed == {}, "the source never inhibits itself"
    assert {a.id for a in out} == {offline.id, pm25.id}, "the stage reports the alerts it muted"
    assert store.get(pm25.id).suppressed == {"inhibited_by": offline.id}
    assert store.get(other.id).suppressed == {}, "another site's alert is not muted"
    ev = store.events(pm25.id)[-1]
    assert (ev.action, ev.actor, ev.data["inhibited_by"]) == ("inhibited", "mute", offline.id)

    # A sensor alert raised while the site is offline is muted on arrival; it is still recorded.
    late = stage.apply([sig("aq-pm10-high", "yc-aq-1", "aq1", "pm10", minutes=6)])[0]
    assert late.suppressed == {"inhibited_by": offline.id}
    assert _actions(store, late.id) == ["opened", "inhibited"]
    shown = {a.id for a in store.list(AlertFilter(suppressed=False))[0]}
    assert shown == {offline.id, other.id}, "muted alerts are hidden from the default queue view"
    assert {a.id for a in store.list(AlertFilter(suppressed=True))[0]} == {pm25.id, late.id}

    clock.advance(timedelta(minutes=5))
    out = stage.apply([sig("site-offline", "yc-aq-1", "", status="resolved", minutes=10)])
    assert {a.id for a in out} == {offline.id, pm25.id, late.id}
    for aid in (pm25.id, late.id):
        assert store.get(aid).suppressed == {}
        ev = store.events(aid)[-1]
        assert (ev.action, ev.data["inhibited_by"], ev.data["why"]) == (
            "uninhibited",
            offline.id,
            "resolved",
        )
    assert store.audit.verify().ok


def test_stage_unmutes_when_the_source_is_closed_by_a_person(
    stage: MuteStage, clock: ManualClock
) -> None:
    store = stage.store
    offline = stage.apply([sig("site-offline", "yc-aq-1", "")])[0]
    pm25 = stage.apply([sig("aq-pm25-high", "yc-aq-1", "aq1", "pm25")])[0]
    assert pm25.suppressed == {"inhibited_by": offline.id}
    assert stage.tick() == [], "nothing changed: tick changes nothing"
    store.transition(offline.id, "close", "alice", "link repaired, confirmed by phone")
    assert [a.id for a in stage.tick()] == [pm25.id]
    assert store.get(pm25.id).suppressed == {}
    assert store.events(pm25.id)[-1].data["why"] == "closed"


def test_stage_tick_catches_a_source_opened_without_the_stage(stage: MuteStage) -> None:
    store = stage.store
    pm25 = stage.apply([sig("aq-pm25-high", "yc-aq-1", "aq1", "pm25")])[0]
    offline = store.apply([sig("site-offline", "yc-aq-1", "")])[
        0
    ]  # e.g. before the stage was wired in
    assert store.get(pm25.id).suppressed == {}
    assert [a.id for a in stage.tick()] == [pm25.id]
    assert store.get(pm25.id).suppressed == {"inhibited_by": offline.id}
