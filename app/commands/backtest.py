"""``farsight rules backtest``: replay stored readings through rules; report what would have fired.

It joins two packages (the readings store of ``ingest`` and the engine of ``rules``), so it lives
in the composition root; the replay itself is :func:`rules.testing.backtest`, which takes any
iterable of readings.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TextIO

from farsight.db import connect
from farsight.errors import ConfigError, ConfigProblem
from farsight.registry import Registry, load_registry
from farsight.settings import load_settings
from farsight.types import AlertSignal
from ingest.store import ReadingStore
from rules.cli import quiet_engine
from rules.loader import load_ruleset
from rules.testing import backtest


def _parse_time(text: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            [ConfigProblem(what, text, "not an ISO 8601 time, e.g. 2026-11-25T08:00:00+08:00")]
        ) from None
    if t.tzinfo is None:
        raise ConfigError(
            [ConfigProblem(what, text, "needs a UTC offset, e.g. 2026-11-25T08:00:00+08:00")]
        )
    return t


def _fmt_value(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def _signal_json(status: str, s: AlertSignal, tz: tzinfo | None) -> dict[str, Any]:
    return {
        "record": "alert",
        "status": status,
        "ts": s.ts.astimezone(tz).isoformat(),
        "rule": s.rule_id,
        "site": s.site,
        "device": s.device,
        "metric": s.metric,
        "severity": s.severity,
        "value": s.value,
        "threshold": s.threshold,
        "summary": s.summary,
        "fingerprint": s.fingerprint,
    }


def _cmd_backtest(args: argparse.Namespace) -> int:
    """Replay stored readings through the rules; print what would have fired and resolved."""
    start, end = _parse_time(args.start, "--from"), _parse_time(args.end, "--to")
    if end <= start:
        raise ConfigError([ConfigProblem("--to", args.end, "must be after --from")])
    if args.tick <= 0:
        raise ConfigError([ConfigProblem("--tick", args.tick, "must be more than zero seconds")])
    settings = load_settings(getattr(args, "config", None))
    db_path = Path(args.db) if args.db else settings.db_path
    # Refuse before opening the store: it would create an empty database (a write) where none is.
    if not db_path.is_file():
        raise ConfigError([ConfigProblem("--db", str(db_path), "no such database file")])
    probe = connect(db_path, readonly=True)
    try:
        has_readings = (
            probe.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'readings'"
            ).fetchone()
            is not None
        )
    finally:
        probe.close()
    if not has_readings:
        raise ConfigError(
            [ConfigProblem("--db", str(db_path), "the database has no readings table")]
        )
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    if args.site:
        site = registry.get(args.site)
        if site is None:
            raise ConfigError([ConfigProblem("--site", args.site, "no such site in the registry")])
        # Only this site's readings are replayed: every other site would look silent to the
        # missing-data rules, so the replay's registry holds this site alone.
        registry = Registry(sites=(site,), departments=registry.departments)
    ruleset = load_ruleset(args.rules, default_pack=not args.rules)
    if args.rule:
        unknown = sorted(set(args.rule) - {r.id for r in ruleset.rules})
        if unknown:
            raise ConfigError(
                [ConfigProblem("--rule", ", ".join(unknown), "no such rule in the loaded files")]
            )
        ruleset = type(ruleset)(
            tuple(r for r in ruleset.rules if r.id in set(args.rule)), ruleset.maintenance
        )

    quiet_engine()
    tz = start.tzinfo
    out: TextIO = sys.stdout
    if not args.json:
        print(
            f"{'time':<25} {'status':<8} {'rule':<28} {'site':<28} {'device':<8} {'metric':<12}"
            f" {'value':>9} {'limit':>9}  summary",
            file=out,
        )

    def on_event(status: str, s: AlertSignal) -> None:
        if args.json:
            print(json.dumps(_signal_json(status, s, tz), ensure_ascii=False), file=out)
        else:
            summary = s.summary if status == "firing" else ""
            print(
                f"{s.ts.astimezone(tz).isoformat():<25} {status.upper():<8} {s.rule_id:<28}"
                f" {s.site:<28} {s.device:<8} {s.metric:<12} {_fmt_value(s.value):>9}"
                f" {_fmt_value(s.threshold):>9}  {summary}",
                file=out,
            )

    store = ReadingStore(db_path)
    try:
        result = backtest(
            store.iter_range(start, end, site=args.site),
            ruleset,
            registry,
            start,
            end,
            tick_every=timedelta(seconds=args.tick),
            on_event=on_event,
        )
    finally:
        store.close()

    summaries = sorted(result.rules.values(), key=lambda r: (-r.fired, r.rule))
    if args.json:
        for r in summaries:
            print(
                json.dumps(
                    {
                        "record": "rule",
                        "rule": r.rule,
                        "fired": r.fired,
                        "resolved": r.resolved,
                        "open": r.open,
                        "firing_s": round(r.firing_s, 3),
                    }
                ),
                file=out,
            )
        print(
            json.dumps(
                {
                    "record": "totals",
                    "from": start.isoformat(),
                    "to": end.isoformat(),
                    "readings": result.readings,
                    "flagged": result.flagged,
                    "late": result.late,
                    "alerts": len(result.alerts),
                }
            ),
            file=out,
        )
        return 0
    print(file=out)
    print(f"{'rule':<32} {'fired':>6} {'resolved':>9} {'open':>5} {'firing h':>9}", file=out)
    for r in summaries:
        print(
            f"{r.rule:<32} {r.fired:>6} {r.resolved:>9} {r.open:>5} {r.firing_s / 3600:>9.2f}",
            file=out,
        )
    print(
        f"\n{result.readings} readings from {start.isoformat()} to {end.isoformat()}"
        f"{' at ' + args.site if args.site else ''}: {len(result.alerts)} alert(s); "
        f"{result.flagged} flagged and {result.late} late readings not evaluated",
        file=out,
    )
    return 0


def add_backtest_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backtest`` to the ``rules`` command's actions."""
    p = actions.add_parser(
        "backtest",
        help="replay stored readings through rules; report what would have fired",
        description="Replay readings from the SQLite readings table through a fresh engine,"
        " ticking its clock on event time. Reads only: the database is opened read-only for the"
        " replay.",
    )
    p.add_argument(
        "rules",
        nargs="*",
        type=Path,
        metavar="RULES",
        help="rule files (default: the built-in default pack)",
    )
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="ISO",
        help="start of the replay, ISO 8601 with offset",
    )
    p.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="ISO",
        help="end of the replay, ISO 8601 with offset",
    )
    p.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="SQLite database (default: the configured data directory's farsight.db)",
    )
    p.add_argument("--site", default=None, metavar="S", help="replay only this site's readings")
    p.add_argument(
        "--rule", action="append", default=None, metavar="ID", help="only this rule (repeatable)"
    )
    p.add_argument(
        "--tick",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="event time between engine clock ticks (default: 60)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON lines: one per alert event, one per rule, then totals",
    )
    p.set_defaults(func=_cmd_backtest)
