"""The demo, end to end over mosquitto: the demo scenario's history, replayed as `farsight demo`
replays it, raises alerts of at least five rule kinds, each where the ground truth says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.roles.ingest import IngestService
from farsight.registry import load_registry
from farsight.settings import Settings
from simulators.publisher import Simulator
from simulators.scenarios import get_scenario, ground_truth
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

HISTORY = timedelta(minutes=120)  # long enough that a whole clock hour of the SO2 excess closes


def test_demo_history_raises_alerts_of_five_kinds(fresh_mosquitto, data_dir: Path) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "broker": {
                "host": fresh_mosquitto.host,
                "port": fresh_mosquitto.port,
                "embedded": "none",
            },
            "rules": {"tick_s": 0.2},
        }
    )
    registry = load_registry(None)
    ingest = IngestService(settings, registry)
    ingest.start()
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now - HISTORY
        sim = Simulator(registry, get_scenario("demo"), seed=2026)
        rounds = int(HISTORY / timedelta(minutes=1)) + 1
        stats = sim.run(
            settings.broker,
            start=start,
            rounds=rounds,
            interval_s=60,
            speedup=1,
            catch_up_until=now,
        )
        assert stats.acknowledged == stats.messages
        wait_until(
            lambda: ingest.pipeline.stats.messages >= stats.messages,
            timeout=120,
            what="every message ingested",
        )
        assert ingest.pipeline.stats.rejected == 0

        truth = ground_truth(get_scenario("demo"), registry, start=start, horizon=HISTORY)
        expected_sites = {t["site"] for t in truth}

        def kinds() -> set[str]:
            alerts, _ = ingest.alerts.list(limit=1000)
            by_id = {r.id: r.kind for r in ingest.engine.rules}
            return {by_id[a.rule_id] for a in alerts if a.rule_id in by_id}

        wait_until(lambda: len(kinds()) >= 5, timeout=30, what="alerts of five rule kinds")
        alerts, _ = ingest.alerts.list(limit=1000)
        # Every alert is at a site where the scenario injected a violation: no false alarms.
        assert {a.site for a in alerts} <= expected_sites, sorted(
            {a.site for a in alerts} - expected_sites
        )
        assert {"threshold", "missing_data", "wim_overload", "flatline"} <= kinds(), kinds()
    finally:
        ingest.stop()
