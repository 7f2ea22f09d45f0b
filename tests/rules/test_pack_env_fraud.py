"""The env-fraud default pack against the simulator: quiet data raise nothing, injected fraud is
found.

The simulator's natural values stay under every limit and never freeze (simulators/devices.py);
every alert a run raises must therefore match the scenario's ground truth. Messages go through
the platform's own decoders (topic -> codec -> readings), as ingest feeds the engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from farsight.registry import Registry, load_registry
from farsight.types import AlertSignal
from ingest.codecs import get_codec
from ingest.topics import CODEC_FOR_KIND, parse_topic
from rules.engine import Engine
from rules.loader import default_pack_files, parse_ruleset
from rules.model import RuleSet
from simulators.publisher import Simulator
from simulators.scenarios import get_scenario, ground_truth

PACK = "env-fraud.yaml"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(None)


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return parse_ruleset(yaml.safe_load(dict(default_pack_files())[PACK]), PACK)


def play(
    registry: Registry,
    pack: RuleSet,
    scenario: str,
    start: datetime,
    minutes: int,
    seed: int = 2026,
    sites: list[str] | None = None,
) -> tuple[Engine, list[AlertSignal]]:
    """Run ``minutes`` one-minute rounds of the simulator through the decoders into an engine."""
    sim = Simulator(registry, scenario, seed=seed, start=start, step_s=60, sites=sites)
    engine = Engine(pack, registry)
    signals: list[AlertSignal] = []
    for k in range(minutes):
        readings = []
        for topic, payload in sim.messages(sim.round_time(k)):
            t = parse_topic(topic)
            readings += (
                get_codec(CODEC_FOR_KIND[t.kind])
                .decode(payload, site=t.site, device=t.device)
                .readings
            )
        signals += engine.evaluate(readings)
    return engine, signals


def judged(engine: Engine, rule_id: str) -> set[tuple[str, ...]]:
    """Scopes where ``rule_id`` gave at least one verdict (its lifecycle exists)."""
    return {tuple(e["scope"]) for e in engine.snapshot() if e["rule"] == rule_id and e["lcs"]}


def test_the_pack_is_part_of_the_default_pack(pack: RuleSet) -> None:
    ids = {r.id for r in pack}
    assert {
        "cems-so2-hourly-mean",
        "aq-pm25-24h-mean",
        "cems-nox-flatline",
        "cems-so2-near-limit",
        "cems-o2-stuck-zero",
        "cems-particulate-zero-drift",
        "dust-pm10-sudden-drop",
    } <= ids
    assert all(
        r.id.split("-")[0] in {"cems", "aq", "dust"} for r in pack
    )  # prefixed by their domain


@pytest.mark.parametrize(
    "start, seed",
    [
        # 05:00-08:00 Beijing: the two-shift foundry starts at 06:00, construction work at 07:00.
        (datetime(2026, 11, 24, 21, 0, tzinfo=UTC), 2026),
        # 11:00-14:00 Beijing: the construction sites' lunch break (PM10 falls to the background).
        (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), 7),
    ],
    ids=["dawn", "lunch"],
)
def test_a_quiet_run_raises_nothing(
    registry: Registry, pack: RuleSet, start: datetime, seed: int
) -> None:
    engine, signals = play(registry, pack, "quiet", start, minutes=180, seed=seed)
    assert signals == [], [
        (s.rule_id, s.site, s.device, s.metric, s.ts.isoformat(), s.value) for s in signals
    ]
    # The rules really ran: hourly means were judged, flat lines and steps looked for.
    assert len(judged(engine, "cems-so2-hourly-mean")) >= 5
    assert len(judged(engine, "cems-nox-flatline")) >= 5
    assert len(judged(engine, "dust-pm10-sudden-drop")) == 4
    assert engine.stats.late == 0


def test_a_quiet_day_passes_the_daily_windows(registry: Registry, pack: RuleSet) -> None:
    # 25 hours from 23:30 Beijing: one whole natural day closes for the 24-hour rules.
    sites = ["yc-aq-xiling", "xg-aq-gaoxin", "yc-cems-xiaoting-power", "yc-cems-hengda-foundry"]
    engine, signals = play(
        registry,
        pack,
        "quiet",
        datetime(2026, 11, 24, 15, 30, tzinfo=UTC),
        minutes=25 * 60,
        sites=sites,
    )
    assert signals == [], [
        (s.rule_id, s.site, s.device, s.metric, s.ts.isoformat(), s.value) for s in signals
    ]
    assert judged(engine, "aq-pm25-24h-mean") == {
        ("yc-aq-xiling", "aq1", "pm25"),
        ("xg-aq-gaoxin", "aq1", "pm25"),
    }
    assert judged(engine, "aq-pm10-24h-mean") == {
        ("yc-aq-xiling", "aq1", "pm10"),
        ("xg-aq-gaoxin", "aq1", "pm10"),
    }
    # The foundry is stopped (flag F) 8 hours a night: 16 hours of data, under the 20 needed.
    assert judged(engine, "cems-so2-near-limit") == {("yc-cems-xiaoting-power", "cems1", "so2")}


def test_the_flatline_scenario_raises_exactly_the_flatline_alert(
    registry: Registry, pack: RuleSet
) -> None:
    start = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    (truth,) = ground_truth(get_scenario("flatline"), registry, start=start)
    _engine, signals = play(registry, pack, "flatline", start, minutes=180)
    assert {(s.rule_id, s.site, s.device, s.metric) for s in signals} == {
        ("cems-nox-flatline", truth["site"], truth["device"], truth["metric"])
    }
    first, last = signals[0], signals[-1]
    frozen_from = start + timedelta(seconds=truth["start_s"])
    # Fires once the 30-minute window holds only the frozen value (readings at minutes 5..34).
    assert first.status == "firing" and first.ts == frozen_from + timedelta(minutes=29)
    assert (
        first.value == truth["value"]
        and first.severity == "major"
        and first.item_code == "ENV-CEMS-FRAUD"
    )
    assert "恒值" in first.summary and "constant value" in first.summary
    assert all(s.status == "firing" for s in signals[:-1])  # repeats while frozen, no second alert
    # Resolves on the first moving reading after the injection.
    assert last.status == "resolved" and last.ts == start + timedelta(seconds=truth["end_s"])


def test_the_demo_scenario_finds_the_flatline_and_the_hourly_mean_of_the_so2_excess(
    registry: Registry, pack: RuleSet
) -> None:
    start = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    truth = ground_truth(get_scenario("demo"), registry, start=start)
    flat = next(t for t in truth if t["kind"] == "flatline")
    so2 = next(t for t in truth if t["kind"] == "exceedance" and t["metric"] == "so2")
    _engine, signals = play(registry, pack, "demo", start, minutes=181)
    raised = {(s.rule_id, s.site, s.device, s.metric) for s in signals}
    assert raised == {
        ("cems-nox-flatline", flat["site"], flat["device"], flat["metric"]),
        # The SO2 excess (minutes 2-80) makes the hours 08:00 and 09:00 Beijing exceed on average.
        ("cems-so2-hourly-mean", so2["site"], so2["device"], so2["metric"]),
    }
    hourly = [(s.status, s.ts) for s in signals if s.rule_id == "cems-so2-hourly-mean"]
    assert hourly == [
        ("firing", start + timedelta(hours=1)),
        ("firing", start + timedelta(hours=2)),
        ("resolved", start + timedelta(hours=3)),
    ]
