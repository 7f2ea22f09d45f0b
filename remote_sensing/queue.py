"""Where ``rs watch --queue`` sends its revisit state changes: the rule engine, then the risk queue.

Each :class:`~farsight.types.ChangeEvent` is judged by the ``change_region`` rules of the
configured rule files (the default pack's ``remote-sensing.yaml`` unless turned off); the signals
go through the mute stage (silences, inhibition) into the queue, with the audit chain, deadlines
and the outbox as for every alert. Quicklooks go to the platform's evidence store, so the hub
serves them with the alert.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from farsight.settings import Settings, load_settings
from farsight.types import ChangeEvent


def queue_sink(settings: Settings) -> tuple[Callable[[ChangeEvent], None], Callable[[], None]]:
    """``(on_change, close)``: judge change events by the rules, queue what they raise."""
    from alerts.escalation import Escalator
    from alerts.mute import MuteStage
    from alerts.outbox import attach_outbox
    from alerts.silences import SilenceStore
    from alerts.store import AlertStore
    from farsight.registry import load_registry
    from rules.engine import Engine
    from rules.model import load_ruleset

    # The same stages as ingest's alert pipeline: upstream outbox and handling deadlines are
    # written in each event's transaction; silences and inhibition mute.
    store = AlertStore(settings.database, risk=settings.alerts.risk)
    attach_outbox(store, settings.alerts.upstream.source)
    store.listeners.append(Escalator(store, settings.alerts.escalation).on_event)
    mute = MuteStage(store, SilenceStore(store.db, audit=store.audit), settings.alerts.inhibit)

    engine = Engine(
        load_ruleset(settings.rules.files, settings.rules.default_pack),
        load_registry(settings.registry.sites_file, settings.registry.departments),
    )

    def on_change(event: ChangeEvent) -> None:
        signals = engine.judge_changes([event])
        if signals:
            mute.apply(signals)

    return on_change, store.close


def open_queue(
    config: Path | None, department: str, evidence: Path | None
) -> tuple[Path, Callable[[ChangeEvent], None], Callable[[], None]]:
    """Settings from ``config`` (or defaults), then ``(evidence root, on_change, close)``."""
    settings = load_settings(config)
    if department not in settings.registry.departments:
        from farsight.errors import ConfigError

        raise ConfigError(
            f"--department {department!r} is not one of {', '.join(settings.registry.departments)}"
        )
    on_change, close = queue_sink(settings)
    return evidence or settings.evidence_dir, on_change, close
