"""The alert pipeline, assembled in one place from settings.

Rule signals enter through :meth:`AlertPipeline.apply`: dedup into the risk queue
(:class:`~alerts.store.AlertStore`), then silences and inhibition
(:class:`~alerts.mute.MuteStage`). Every alert event, in its own transaction, also sets the
handling deadline (:class:`~alerts.escalation.Escalator`), goes to the upstream outbox
(:class:`~alerts.outbox.Outbox`) and is appended to the audit chain. :meth:`AlertPipeline.tick`
moves what time moves, on the wall clock: silences
that start or end (people set them) and overdue escalations (handling deadlines are people's
time too; a device's clock, which decides the data's time, must not move them).

Every process that raises or handles alerts (ingest, the hub, satellite watching, the demo, the
queue benchmark) builds its pipeline with :func:`build_alert_pipeline`, so the stages and their
order are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alerts.escalation import Escalator
from alerts.model import Alert
from alerts.mute import MuteStage
from alerts.outbox import Outbox, attach_outbox
from alerts.silences import SilenceStore
from alerts.stages import ClockStage, SignalStage
from alerts.store import AlertStore
from farsight.clock import Clock
from farsight.db import Database
from farsight.settings import AlertsSettings
from farsight.types import AlertSignal


@dataclass(slots=True)
class AlertPipeline:
    """The stages of one process's alert pipeline, on one database.

    ``entry`` takes the rules' signals; ``timed`` are moved by :meth:`tick`; the store's
    listeners (the escalator's deadlines, the outbox) run inside each event's transaction.
    ``silences`` and ``mute`` are kept for the hub's silence endpoints.
    """

    store: AlertStore
    silences: SilenceStore
    mute: MuteStage
    escalator: Escalator
    outbox: Outbox
    entry: SignalStage
    timed: tuple[ClockStage, ...]
    owns_store: bool = True

    def apply(self, signals: Sequence[AlertSignal]) -> list[Alert]:
        """Rule signals into the queue, muted where a silence or an inhibition says so."""
        return self.entry.apply(signals)

    def tick(self, now: datetime) -> list[Alert]:
        """What time changes at the wall clock's ``now``: mutes (on the store's own clock) and
        escalations."""
        return [alert for stage in self.timed for alert in stage.tick(now)]

    def close(self) -> None:
        """Close the store's connection, if this pipeline opened it."""
        if self.owns_store:
            self.store.close()


def build_alert_pipeline(
    target: Path | str | Database | AlertStore,
    settings: AlertsSettings,
    *,
    clock: Clock | None = None,
) -> AlertPipeline:
    """Assemble the pipeline on a database (path, URL or shared :class:`Database`) or on an
    existing store (then the store is not closed with the pipeline).

    Listeners are registered once per store: a store shared by two pipelines (ingest and the
    hub in ``farsight demo``) does not enqueue or set deadlines twice.
    """
    if isinstance(target, AlertStore):
        store, owns = target, False
    else:
        store, owns = AlertStore(target, clock=clock, risk=settings.risk), True
    outbox = attach_outbox(store, settings.upstream.source)
    escalator = next(
        (
            owner
            for listener in store.listeners
            if isinstance(owner := getattr(listener, "__self__", None), Escalator)
        ),
        None,
    )
    if escalator is None:
        escalator = Escalator(store, settings.escalation)
        store.listeners.append(escalator.on_event)
    silences = SilenceStore(store.db, clock=store.clock, audit=store.audit)
    mute = MuteStage(store, silences, settings.inhibit)
    # Silences end on the store's clock, escalation at the time the tick gives (the wall clock).
    timed: tuple[ClockStage, ...] = (_WallClock(mute), escalator)
    return AlertPipeline(store, silences, mute, escalator, outbox, mute, timed, owns_store=owns)


@dataclass(frozen=True, slots=True)
class _WallClock:
    """A stage that moves on the store's clock, ticked with a time it ignores."""

    stage: MuteStage

    def tick(self, now: datetime) -> list[Alert]:
        return self.stage.tick()
