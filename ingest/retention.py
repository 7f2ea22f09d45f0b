"""Dead-letter retention: delete letters older than a set age, then the oldest beyond a total size.

Run by ``farsight ingest`` every ``ingest.dead_letters.every_s`` (wall clock; see
:class:`DeadLetterRetention`) and on demand by ``farsight deadletters prune`` (``--dry-run`` says
what it would delete). What it deletes is added to the ``dead_letters_removed`` counters (exported
at ``/metrics``) and logged. ``farsight prune-dead-letters`` is the command's old name, kept as a
hidden alias that says so on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
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


def prune(
    store: ReadingStore, settings: DeadLetterSettings, now: datetime, dry_run: bool = False
) -> Pruned:
    """One retention run over ``store`` by ``settings``; logs what it deleted. With ``dry_run``,
    what it would delete, deleting nothing."""
    pruned = store.prune_dead_letters(
        timedelta(days=settings.max_age_days), int(settings.max_total_mb * MIB), now, dry_run
    )
    if pruned.total and not dry_run:
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


OLD_NAME = "prune-dead-letters"
"""The command's name before it moved under ``farsight deadletters``; a hidden alias now."""

SubParsers = argparse._SubParsersAction  # argparse does not export the type


def add_prune_parser(actions: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``prune`` to the actions of ``farsight deadletters``."""
    p = actions.add_parser(
        "prune", help="delete dead letters beyond ingest.dead_letters' age and total size"
    )
    _add_prune_arguments(p)
    p.set_defaults(func=_cmd_prune)


def add_prune_alias(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add the deprecated ``prune-dead-letters`` to the main CLI's subparsers: the same options
    as ``deadletters prune``, left out of the help (no ``help=``, so argparse lists it nowhere)."""
    p = sub.add_parser(OLD_NAME)
    _add_prune_arguments(p)
    p.set_defaults(func=_cmd_prune_alias)


def _add_prune_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="say how many letters would be deleted, by cause, and delete nothing",
    )


def _cmd_prune_alias(args: argparse.Namespace) -> int:
    print(
        f"farsight {OLD_NAME} is deprecated: use `farsight deadletters prune` (same options)",
        file=sys.stderr,
    )
    return _cmd_prune(args)


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
            source="farsight deadletters prune",
        ) from None
    store = ReadingStore(database_target(args))
    try:
        before = store.dead_letter_count()
        pruned = prune(store, settings, datetime.now(UTC), dry_run=args.dry_run)
        causes = (
            f"{pruned.by_age} older than {settings.max_age_days:g} days and {pruned.by_size}"
            f" beyond {settings.max_total_mb:g} MiB"
        )
        if args.dry_run:
            print(
                f"dead letters: {before}; dry run, nothing deleted: would delete {causes};"
                f" {before - pruned.total} would be kept"
            )
        else:
            print(
                f"dead letters: {before} before, deleted {causes}; {store.dead_letter_count()}"
                f" kept ({store.dead_letter_bytes()} payload bytes)"
            )
    finally:
        store.close()
    return 0
