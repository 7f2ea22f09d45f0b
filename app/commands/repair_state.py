"""``farsight rules repair-state``: take times from the future out of the saved rule state.

Ingest does the same at every start-up; the command shows (``--dry-run``) or makes the repair
while ingest is stopped, and prints what it changed. It reads the settings (the database, the
allowed future skew), so it lives in the composition root.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from farsight.clock import SystemClock
from farsight.errors import ConfigError, ConfigProblem
from farsight.settings import load_settings
from rules.state import RuleStateStore
from rules.state_repair import repair_rule_state


def _cmd_repair_state(args: argparse.Namespace) -> int:
    """Repair (or with ``--dry-run`` list) rule state with times after now plus the skew."""
    settings = load_settings(getattr(args, "config", None))
    if settings.database_url is None and not settings.db_path.is_file():
        # Opening the store would create an empty database where none is.
        raise ConfigError(
            [ConfigProblem("data_dir", str(settings.data_dir), "no farsight.db in it")]
        )
    skew = timedelta(seconds=settings.ingest.time.widest_skew_s)
    not_after = SystemClock().now() + skew
    store = RuleStateStore(settings.database)
    try:
        result = repair_rule_state(store, not_after, dry_run=args.dry_run)
    finally:
        store.close()
    for f in result.findings:
        print(f.line())
    verb = "would repair" if args.dry_run else "repaired"
    print(
        f"{verb} {len(result.findings)} of {len(result.entries)} rule state entries"
        f" (times after {not_after.isoformat(timespec='seconds')})"
    )
    return 0


def add_repair_state_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``repair-state`` to the ``rules`` command's actions."""
    p = actions.add_parser(
        "repair-state",
        help="take times from the future out of the saved rule state",
        description="Clear every time after now plus ingest.time's widest future skew from the"
        " saved rule state (a series' newest time, buffered readings, pending lifecycles; a"
        " condition that saw such a time restarts). Ingest repairs at start-up too; run this"
        " while ingest is stopped, or it may save its poisoned memory again.",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.set_defaults(func=_cmd_repair_state)
