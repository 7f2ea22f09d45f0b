"""Dead-letter retention: delete letters older than a set age, then the oldest beyond a total size.

Run by ``farsight ingest`` every ``ingest.dead_letters.every_s`` (wall clock; see
:class:`DeadLetterRetention`) and on demand by ``farsight prune-dead-letters``. What it deletes is
added to the ``dead_letters_removed`` counters (exported at ``/metrics``) and logged.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from farsight.cli_options import add_database_options, database_target
from farsight.errors import ConfigError
from farsight.logs import kv
from farsight.settings import DeadLetterSettings, load_settings, validation_problems
from ingest.store import Pruned, ReadingStore

log = logging.getLogger("farsight.ingest")

MIB = 1024 * 1024


def prune(store: ReadingStore, settings: DeadLetterSettings, now: datetime) -> Pruned:
    """One retention run over ``store`` by ``settings``; logs what it deleted."""
    pruned = store.prune_dead_letters(
        timedelta(days=settings.max_age_days), int(settings.max_total_mb * MIB), now
    )
    if pruned.total:
        log.info(
            "dead letters pruned",
            extra=kv(
                by_age=pruned.by_age,
                by_size=pruned.by_size,
                max_age_days=settings.max_age_days,
                max_total_mb=settings.max_total_mb,
            ),
        )
    return pruned


class DeadLetterRetention:
    """Runs :func:`prune` at most every ``settings.every_s`` seconds of wall-clock time.

    Called from ingest's periodic task (the consumer thread, which owns the store's connection);
    the first call runs at once, so a start-up also trims what piled up while ingest was down.
    """

    def __init__(
        self,
        store: ReadingStore,
        settings: DeadLetterSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._next: float | None = None

    def __call__(self) -> Pruned | None:
        """Prune when the period has passed; ``None`` when it has not."""
        t = self._monotonic()
        if self._next is not None and t < self._next:
            return None
        self._next = t + self.settings.every_s
        return prune(self.store, self.settings, self._clock())


def add_prune_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``prune-dead-letters`` to the main CLI's subparsers."""
    p = sub.add_parser(
        "prune-dead-letters",
        help="delete dead letters beyond ingest.dead_letters' age and total size",
    )
    add_database_options(p)
    p.add_argument(
        "--max-age-days",
        type=float,
        default=None,
        help="keep letters younger than this (default: ingest.dead_letters.max_age_days)",
    )
    p.add_argument(
        "--max-total-mb",
        type=float,
        default=None,
        help="keep at most this many MiB of payloads (default: ingest.dead_letters.max_total_mb)",
    )
    p.set_defaults(func=_cmd_prune)


def _cmd_prune(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None)).ingest.dead_letters
    overrides = {
        key: value
        for key, value in (
            ("max_age_days", args.max_age_days),
            ("max_total_mb", args.max_total_mb),
        )
        if value is not None
    }
    # Validated like the settings file: the same bounds, the key path in the error.
    try:
        settings = DeadLetterSettings.model_validate({**settings.model_dump(), **overrides})
    except ValidationError as exc:
        raise ConfigError(
            validation_problems(exc, overrides, prefix="ingest.dead_letters"),
            source="farsight prune-dead-letters",
        ) from None
    store = ReadingStore(database_target(args))
    try:
        before = store.dead_letter_count()
        pruned = prune(store, settings, datetime.now(UTC))
        print(
            f"dead letters: {before} before, deleted {pruned.by_age} older than"
            f" {settings.max_age_days:g} days and {pruned.by_size} beyond"
            f" {settings.max_total_mb:g} MiB; {store.dead_letter_count()} kept"
            f" ({store.dead_letter_bytes()} payload bytes)"
        )
    finally:
        store.close()
    return 0
