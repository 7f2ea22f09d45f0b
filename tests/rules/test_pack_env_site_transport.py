"""The env-site and transport default packs against the simulator and its ground truth.

Each scenario is played at 1-minute steps for about two simulated hours through the real ingest
codecs into an engine holding only these two packs, ticking the engine's clock every step (as
the ingest worker does) and passing the engine's signals through the correlation stage. The
natural simulated data is within every limit, so any signal that is not the scenario's ground
truth is a false alarm.

The packs' own test files (``rules/packs/tests/*.test.yaml``) are played by the rules test runner.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pytest

from farsight.registry import Registry, load_registry
from farsight.types import AlertSignal, Reading
from ingest.codecs import get_codec
from ingest.topics import CODEC_FOR_KIND, parse_topic
from rules.correlate import Correlator
from rules.engine import Engine
from rules.loader import load_ruleset
from rules.model import RuleSet
from simulators.publisher import Simulator
from simulators.scenarios import SCENARIOS, ground_truth

PACKS = Path(__file__).resolve().parents[2] / "rules" / "packs"
PACK_FILES = [PACKS / "env-site.yaml", PACKS / "transport.yaml"]
T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # 08:00 Beijing time
MINUTES = 120


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return load_registry(None)


def _ruleset(files: list[Path] = PACK_FILES) -> RuleSet:
    return load_ruleset(files, default_pack=False)


def play(scenario: str, start: datetime = T0, minutes: int = MINUTES) -> list[AlertSignal]:
    """Every signal (engine and correlation stage) of one simulated run."""
    reg = _registry()
    engine = Engine(_ruleset(), reg)
    corr = Correlator.from_engine(engine)
    sim = Simulator(reg, scenario, seed=2026, start=start)
    out: list[AlertSignal] = []
    for k in range(minutes + 1):
        t = start + timedelta(minutes=k)
        readings: list[Reading] = []
        for topic, payload in sim.messages(t):
            tp = parse_topic(topic)
            readings.extend(
                get_codec(CODEC_FOR_KIND[tp.kind])
                .decode(payload, site=tp.site, device=tp.device)
                .readings
            )
        sigs = engine.evaluate(readings)
        sigs += engine.tick(t)
        sigs += corr.process(sigs)
        out.extend(sigs)
    return out


def by_alert(sigs: list[AlertSignal]) -> dict[str, list[AlertSignal]]:
    alerts: dict[str, list[AlertSignal]] = defaultdict(list)
    for s in sigs:
        alerts[s.fingerprint].append(s)
    return alerts


@pytest.mark.parametrize(
    "start", [T0, T0 + timedelta(hours=13)], ids=["morning", "evening-shutdown"]
)
def test_quiet_raises_nothing(start: datetime) -> None:
    # The evening run covers the foundry's 22:00 shutdown: running 0, flag F, natural-draft flow,
    # ambient O2 - a real stop, neither 标停未停 nor a diluted sample.
    assert play("quiet", start) == []


def test_silence_raises_exactly_the_silent_devices_offline_alert_and_resolves_it() -> None:
    truth = [
        g for g in ground_truth(SCENARIOS["silence"], _registry(), T0) if g["kind"] == "silence"
    ]
    assert len(truth) == 1
    gt = truth[0]
    sigs = play("silence")
    alerts = by_alert(sigs)
    assert len(alerts) == 1
    (series,) = alerts.values()
    assert {(s.rule_id, s.site, s.device, s.severity, s.item_code) for s in series} == {
        ("site-offline", gt["site"], gt["device"], "major", "ENV-ONLINE")
    }
    firing = [s for s in series if s.status == "firing"]
    resolved = [s for s in series if s.status == "resolved"]
    silent_from = T0 + timedelta(seconds=float(gt["start_s"]))
    back_at = T0 + timedelta(seconds=float(gt["end_s"]))
    # Last reading one minute before the silence; offline after 3 missed minutes.
    assert firing[0].ts == silent_from + timedelta(minutes=2)
    assert len(resolved) == 1 and resolved[0].ts == back_at and series[-1] is resolved[0]


def test_overload_raises_exactly_one_alert_for_the_overloaded_truck() -> None:
    truth = [
        g for g in ground_truth(SCENARIOS["overload"], _registry(), T0) if g["kind"] == "overload"
    ]
    assert len(truth) == 1
    gt = truth[0]
    sigs = play("overload")
    alerts = by_alert(sigs)
    assert len(alerts) == 1  # none for the hundreds of legal trucks
    (series,) = alerts.values()
    fired = [s for s in series if s.status == "firing"]
    assert len(fired) == 1
    s = fired[0]
    assert (s.rule_id, s.site, s.device, s.value, s.threshold, s.department, s.item_code) == (
        "wim-overload",
        gt["site"],
        gt["device"],
        gt["value"],
        gt["limit"],
        "transport",
        "TRANS-WIM-OVERLOAD",
    )
    assert s.ts == T0 + timedelta(seconds=float(gt["start_s"]))
    assert dict(s.annotations)["summary"].startswith(f"{gt['axles']}-axle truck at ")
    assert [x.status for x in series] == ["firing", "resolved"]  # the next truck closed it


def test_the_packs_load_with_the_default_pack_and_ids_are_unique() -> None:
    ids = [r.id for r in load_ruleset()]
    assert len(ids) == len(set(ids))
    assert {
        "site-offline",
        "cems-running-mismatch",
        "cems-o2-dilution",
        "env-multi-evidence",
        "wim-overload",
        "gps-zone-dwell",
    } <= set(ids)


# -- the pack test files, through the `farsight rules test` runner ---------------------------


@pytest.mark.parametrize("name", ["env-site.test.yaml", "transport.test.yaml"])
def test_the_pack_test_files_hold(name: str) -> None:
    from rules.testing import format_result, run_test_file

    result = run_test_file(PACKS / "tests" / name)
    assert result.error is None and result.cases and result.passed, format_result(result)
