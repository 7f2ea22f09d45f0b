"""Where ``rs watch --queue`` sends its revisit state changes: the platform's risk queue.

A change region is a finding already (detection, post-processing and zones did the judging), so
each revisit state change enters the alert pipeline as the firing signal
:func:`~remote_sensing.events.alert_signal` makes: through the mute stage (silences, inhibition)
into the queue, with the audit chain and the outbox as for every alert. Its quicklooks go to the
platform's evidence store, so the hub serves them with the alert.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from farsight.settings import Settings, load_settings
from farsight.types import AlertSignal


def queue_sink(settings: Settings) -> tuple[Callable[[AlertSignal], None], Callable[[], None]]:
    """``(on_signal, close)`` applying signals to the risk queue of ``settings.database``."""
    from alerts.escalation import Escalator
    from alerts.mute import MuteStage
    from alerts.outbox import attach_outbox
    from alerts.silences import SilenceStore
    from alerts.store import AlertStore

    # The same stages as ingest's alert pipeline: upstream outbox and handling deadlines are
    # written in each event's transaction; silences and inhibition mute.
    store = AlertStore(settings.database, risk=settings.alerts.risk)
    attach_outbox(store, settings.alerts.upstream.source)
    store.listeners.append(Escalator(store, settings.alerts.escalation).on_event)
    mute = MuteStage(store, SilenceStore(store.db, audit=store.audit), settings.alerts.inhibit)

    def on_signal(signal: AlertSignal) -> None:
        mute.apply([signal])

    return on_signal, store.close


def open_queue(config: Path | None, department: str, evidence: Path | None
               ) -> tuple[Path, Callable[[AlertSignal], None], Callable[[], None]]:
    """Settings from ``config`` (or defaults), then ``(evidence root, on_signal, close)``."""
    settings = load_settings(config)
    if department not in settings.registry.departments:
        from farsight.errors import ConfigError

        raise ConfigError(f"--department {department!r} is not one of {', '.join(settings.registry.departments)}")
    on_signal, close = queue_sink(settings)
    return evidence or settings.evidence_dir, on_signal, close
