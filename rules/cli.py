"""``farsight rules``: test, backtest and check rule files; list rule kinds.

:func:`add_rules_parser` adds the command to the main CLI's subparsers; handlers take the parsed
arguments (``args.config`` is the global ``--config`` path or ``None``) and return an exit code:
0 success, 1 a test failed, 2 invalid input (every problem printed, with file and key path).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from farsight.errors import ConfigError, ConfigProblem, RuleError


def _quiet_engine() -> None:
    # The report is the output; the engine's per-signal INFO lines (and one warning per late
    # reading in a long replay) would repeat it on stderr. Problems at ERROR still show.
    logging.getLogger("farsight.rules").setLevel(logging.ERROR)


def pack_test_files() -> list[Path]:
    """The built-in pack's rule tests (``rules/packs/tests/*.test.yaml``)."""
    root = Path(str(resources.files("rules.packs"))) / "tests"
    return sorted(root.glob("*.test.yaml"))


# -- test -------------------------------------------------------------------------------------


def _cmd_test(args: argparse.Namespace) -> int:
    """Run rule test files; 1 if a case failed, 2 if a file is invalid."""
    from rules.testing import format_result, run_test_file

    _quiet_engine()
    files = args.files or pack_test_files()
    try:
        name_filter = re.compile(args.run) if args.run else None
    except re.error as exc:
        print(f"--run {args.run!r}: not a regular expression: {exc}", file=sys.stderr)
        return 2
    status = 0
    passed = failed = invalid = 0
    for f in files:
        result = run_test_file(f, name_filter)
        print(
            format_result(result, verbose=args.verbose),
            file=sys.stderr if result.error else sys.stdout,
        )
        if result.error is not None:
            invalid += 1
            status = 2
            continue
        failed += len(result.failed)
        passed += len(result.cases) - len(result.failed)
        if result.failed and status == 0:
            status = 1
    print(f"{len(files)} file(s): {passed} passed, {failed} failed, {invalid} invalid file(s)")
    return status


# -- check ------------------------------------------------------------------------------------


def check_files(files: list[Path]) -> list[dict[str, Any]]:
    """Every problem of the given rule files (each file checked on its own, then ids across them)."""
    from farsight.settings import read_yaml
    from rules.model import parse_ruleset
    from rules.reload import problem_rows

    rows: list[dict[str, Any]] = []
    owner: dict[str, str] = {}
    for f in files:
        try:
            rs = parse_ruleset(read_yaml(f), str(f))
        except ConfigError as exc:
            rows += problem_rows(exc)
            continue
        for r in rs.rules:
            if r.id in owner:
                rows += problem_rows(
                    RuleError(
                        [
                            ConfigProblem(
                                f"rules[{r.id}].id",
                                r.id,
                                f"rule id already defined in {owner[r.id]}",
                            )
                        ],
                        source=str(f),
                    )
                )
            owner.setdefault(r.id, str(f))
    return rows


def _cmd_check(args: argparse.Namespace) -> int:
    """Validate rule files; print every problem and exit 2, or a count per file and exit 0."""
    from rules.model import default_pack_files

    files = args.files
    if not files:
        root = Path(str(resources.files("rules.packs")))
        files = [root / name for name, _ in default_pack_files()]
    rows = check_files(files)
    for row in rows:
        rule = f" rule {row['rule']}:" if row["rule"] else ""
        key = f" {row['key']}:" if row["key"] else ""
        print(f"{row['file']}:{rule}{key} {row['message']} (got {row['value']!r})", file=sys.stderr)
    if rows:
        print(
            f"{len(rows)} problem(s) in {len({r['file'] for r in rows})} of {len(files)} file(s)",
            file=sys.stderr,
        )
        return 2
    print(f"{len(files)} file(s) ok")
    return 0


# -- kinds ------------------------------------------------------------------------------------


def _cmd_kinds(args: argparse.Namespace) -> int:
    """List registered rule kinds, or the fields of one."""
    import rules.kinds  # noqa: F401 - registers the built-in kinds
    from rules.model import RULE_KINDS, RuleModel

    if args.kind:
        kind = RULE_KINDS.get(args.kind)
        if kind is None:
            print(
                f"unknown rule kind {args.kind!r}; known kinds: {', '.join(sorted(RULE_KINDS))}",
                file=sys.stderr,
            )
            return 2
        print(f"{kind.name} ({kind.scope} scope): {kind.description}")
        shared = set(RuleModel.model_fields)
        for name, f in kind.model.model_fields.items():
            if name in shared:
                continue
            default = (
                "required"
                if f.is_required()
                else f"default {f.get_default(call_default_factory=True)!r}"
            )
            print(f"  {f.alias or name}: {f.description or f.title or ''} ({default})")
        print(
            "  and the fields every rule has: "
            + ", ".join(sorted(f.alias or n for n, f in RuleModel.model_fields.items()))
        )
        return 0
    width = max((len(n) for n in RULE_KINDS), default=4)
    for name in sorted(RULE_KINDS):
        k = RULE_KINDS[name]
        print(f"{name:<{width}}  {k.scope:<6}  {k.description}")
    return 0


# -- backtest ---------------------------------------------------------------------------------


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


def _signal_json(status: str, s: Any, tz: Any) -> dict[str, Any]:
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
    from farsight.db import connect
    from farsight.registry import Registry, load_registry
    from farsight.settings import load_settings
    from ingest.store import ReadingStore  # the edge: rules' core never imports a store
    from rules.model import load_ruleset
    from rules.testing import backtest

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

    _quiet_engine()
    tz = start.tzinfo
    out: TextIO = sys.stdout
    if not args.json:
        print(
            f"{'time':<25} {'status':<8} {'rule':<28} {'site':<28} {'device':<8} {'metric':<12} {'value':>9} {'limit':>9}  summary",
            file=out,
        )

    def on_event(status: str, s: Any) -> None:
        if args.json:
            print(json.dumps(_signal_json(status, s, tz), ensure_ascii=False), file=out)
        else:
            print(
                f"{s.ts.astimezone(tz).isoformat():<25} {status.upper():<8} {s.rule_id:<28} {s.site:<28} {s.device:<8} {s.metric:<12} "
                f"{_fmt_value(s.value):>9} {_fmt_value(s.threshold):>9}  {s.summary if status == 'firing' else ''}",
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


# -- parser -----------------------------------------------------------------------------------


def add_rules_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``rules`` command (test, backtest, check, kinds) to the main CLI."""
    rules = subparsers.add_parser(
        "rules",
        help="test, backtest and check rule files; list rule kinds",
        description="Work with rule files without running ingest.",
    )
    sub = rules.add_subparsers(dest="rules_command", metavar="{test,backtest,check,kinds}")
    sub.required = True

    p = sub.add_parser(
        "test",
        help="run rule unit tests (promtool style)",
        description="Run rule test files: input series in expanding notation, and the alerts expected at given times. "
        "Exit 0 if all pass, 1 if a case fails, 2 if a file is invalid.",
    )
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="test files (default: the built-in pack's rules/packs/tests/*.test.yaml)",
    )
    p.add_argument(
        "--run", default=None, metavar="REGEX", help="run only test cases whose name matches"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="show every check, not only failures"
    )
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser(
        "backtest",
        help="replay stored readings through rules; report what would have fired",
        description="Replay readings from the SQLite readings table through a fresh engine, ticking its clock on event time. "
        "Reads only: the database is opened read-only for the replay.",
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

    p = sub.add_parser(
        "check",
        help="validate rule files; print every problem",
        description="Validate rule files. Exit 2 with every problem (file, rule id, key path, value, message), else 0.",
    )
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="rule files (default: the built-in default pack)",
    )
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser(
        "kinds",
        help="list registered rule kinds",
        description="List rule kinds with their scope and description, or one kind's fields.",
    )
    p.add_argument("kind", nargs="?", default=None, help="show the fields of this kind")
    p.set_defaults(func=_cmd_kinds)
