"""``farsight report risk``: write the risk warning report (风险预警报告) as one offline HTML file.

:func:`add_parser` adds the command to the main CLI's subparsers; :func:`cmd_risk_report` is its
handler. The report reads the settings' database and never creates one: a missing file is an
error, because an empty report of a database that is not there would read as "no alerts".
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from alerts.report import (
    check_range,
    collect_risk_report,
    default_range,
    parse_report_time,
    render_risk_report_html,
    report_filename,
    store_now,
)
from alerts.store import AlertStore
from farsight.errors import ConfigError
from farsight.logs import kv
from farsight.registry import load_registry
from farsight.settings import Settings, load_settings
from rules.loader import load_ruleset

log = logging.getLogger(__name__)


def _time_arg(text: str) -> datetime:
    """argparse type: an ISO 8601 time with its UTC offset."""
    try:
        return parse_report_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _database(settings: Settings) -> Path | str:
    """The settings' database: a PostgreSQL URL when configured, else the SQLite file."""
    return settings.database


def _open_store(settings: Settings) -> AlertStore:
    """The alert store of the settings' database (SQLite file or PostgreSQL URL)."""
    return AlertStore(_database(settings), risk=settings.alerts.risk)


def _rule_kinds(settings: Settings) -> Mapping[str, str] | None:
    """``rule_id -> kind`` of the configured rules, for counts per rule kind; ``None`` if they
    do not load.

    The command joins the queue and the rules, so it lives in the composition root; the report
    itself only takes the map. A broken rule file must not stop a report about alerts
    that already exist, so it is a warning here (``farsight check-config`` names the problem).
    """
    try:
        return {
            r.id: r.kind for r in load_ruleset(settings.rules.files, settings.rules.default_pack)
        }
    except ConfigError as exc:
        print(f"warning: rules did not load, the report has no rule kinds: {exc}", file=sys.stderr)
        return None


def cmd_risk_report(args: argparse.Namespace) -> int:
    """Write the report; print its path. Exit 2 on bad arguments, 1 when there is no database."""
    settings = load_settings(getattr(args, "config", None))
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    if args.department is not None and args.department not in registry.departments:
        known = ", ".join(registry.departments)
        print(f"error: unknown department {args.department!r}; known: {known}", file=sys.stderr)
        return 2
    database = _database(settings)
    if isinstance(database, Path) and not database.is_file():
        print(
            f"error: no database at {database} (set data_dir in the settings or FARSIGHT_DATA_DIR)",
            file=sys.stderr,
        )
        return 1
    store = _open_store(settings)
    try:
        # Local time for a period not given: days then run from the operators' midnight, not UTC's.
        start, end = default_range(store_now(store).astimezone(), args.start, args.end)
        try:
            check_range(start, end)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        report = collect_risk_report(
            store,
            start=start,
            end=end,
            department=args.department,
            registry=registry,
            rule_kinds=_rule_kinds(settings),
        )
        # Whoever runs the command on the server exports the data: recorded in the audit chain.
        store.audit.append(
            f"os:{getpass.getuser()}",
            "export",
            "report:risk",
            {
                "format": "html",
                "department": args.department,
                "from": start.isoformat(),
                "to": end.isoformat(),
                "alerts": report.total,
            },
        )
    finally:
        store.close()
    out = Path(args.out) if args.out is not None else Path.cwd() / report_filename(start, end)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a report.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(render_risk_report_html(report), encoding="utf-8")
    os.replace(tmp, out)
    log.info(
        "risk report written",
        extra=kv(path=out, alerts=report.total, department=args.department or "*"),
    )
    print(out)
    return 0


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``report risk`` to the main CLI; returns the ``report`` subcommands, for the others."""
    p = subparsers.add_parser("report", help="offline reports of the risk queue")
    kinds = p.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    q = kinds.add_parser(
        "risk",
        help="风险预警报告: the risk warning report of a period, one self-contained HTML file",
        description="Alerts raised in [--from, --to), counted by state, severity, site, operator, "
        "finding and time, with a trend chart; default period: the last 7 days.",
    )
    q.add_argument(
        "--from",
        dest="start",
        type=_time_arg,
        default=None,
        metavar="ISO",
        help="start, ISO 8601 with UTC offset, e.g. 2026-11-01T00:00:00+08:00"
        " (default: 7 days before --to)",
    )
    q.add_argument(
        "--to",
        dest="end",
        type=_time_arg,
        default=None,
        metavar="ISO",
        help="end (exclusive), ISO 8601 with UTC offset (default: now)",
    )
    q.add_argument(
        "--department", default=None, help="only this department's alerts (default: all)"
    )
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        help="HTML file to write (default: ./risk-report-<from>-<to>.html)",
    )
    # SUPPRESS: when not given here, the main parser's global --config (same dest) stays in force.
    q.add_argument(
        "--config",
        "-c",
        type=Path,
        default=argparse.SUPPRESS,
        help="farsight.yaml (default: the global --config)",
    )
    q.set_defaults(func=cmd_risk_report)
    return kinds
