"""Where ``rs watch --queue`` sends its revisit state changes: the rule engine, then the risk queue.

Each :class:`~farsight.types.ChangeEvent` is judged by the ``change_region`` rules of the
configured rule files (the default pack's ``remote-sensing.yaml`` unless turned off); the signals
go through the alert pipeline (:func:`alerts.pipeline.build_alert_pipeline`: mute stage, audit
chain, deadlines and the outbox, as for every alert). Quicklooks go to the platform's evidence
store, so the hub serves them with the alert.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alerts.pipeline import build_alert_pipeline
from farsight.errors import ConfigError
from farsight.registry import load_registry
from farsight.settings import Settings, load_settings
from farsight.types import ChangeEvent
from rules.engine import Engine
from rules.loader import load_ruleset


def queue_sink(settings: Settings) -> tuple[Callable[[ChangeEvent], None], Callable[[], None]]:
    """``(on_change, close)``: judge change events by the rules, queue what they raise."""
    pipeline = build_alert_pipeline(settings.database, settings.alerts)
    engine = Engine(
        load_ruleset(settings.rules.files, settings.rules.default_pack),
        load_registry(settings.registry.sites_file, settings.registry.departments),
    )

    def on_change(event: ChangeEvent) -> None:
        signals = engine.judge_changes([event])
        if signals:
            pipeline.apply(signals)

    return on_change, pipeline.close


def open_queue(
    config: Path | None, department: str, evidence: Path | None
) -> tuple[Path, Callable[[ChangeEvent], None], Callable[[], None]]:
    """Settings from ``config`` (or defaults), then ``(evidence root, on_change, close)``."""
    settings = load_settings(config)
    if department not in settings.registry.departments:
        known = ", ".join(settings.registry.departments)
        raise ConfigError(f"--department {department!r} is not one of {known}")
    on_change, close = queue_sink(settings)
    return evidence or settings.evidence_dir, on_change, close
