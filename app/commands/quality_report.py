"""``farsight report quality``: write the monthly data quality report (数据质量月报) of a
department as one offline HTML file, or as CSV.

The command reads the settings' database and never creates one: a missing file is an error,
because a report of a database that is not there would read as "nothing arrived".
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from alerts.audit_store import open_audit_log
from farsight.logs import kv
from farsight.registry import load_registry
from farsight.settings import load_settings
from hub.quality_report import (
    MONTH_RE,
    collect_quality_report,
    last_month,
    render_quality_csv,
    render_quality_html,
    report_filename,
)
from ingest.quality_store import QualityStore
from ingest.store import ReadingStore

log = logging.getLogger(__name__)


def _month_arg(text: str) -> str:
    """argparse type: ``YYYY-MM``."""
    if not MONTH_RE.match(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not YYYY-MM, e.g. 2026-11")
    return text.strip()


def cmd_quality_report(args: argparse.Namespace) -> int:
    """Write the report; print its path. Exit 2 on bad arguments, 1 when there is no database."""
    settings = load_settings(getattr(args, "config", None))
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    if args.department is not None and args.department not in registry.departments:
        known = ", ".join(registry.departments)
        print(f"error: unknown department {args.department!r}; known: {known}", file=sys.stderr)
        return 2
    database = settings.database
    if isinstance(database, Path) and not database.is_file():
        print(
            f"error: no database at {database} (set data_dir in the settings or FARSIGHT_DATA_DIR)",
            file=sys.stderr,
        )
        return 1
    month = args.month or last_month(datetime.now(UTC))
    store = ReadingStore(database)
    try:
        try:
            report = collect_quality_report(QualityStore(store), registry, month, args.department)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        # Whoever runs the command on the server exports the data: recorded in the audit chain.
        open_audit_log(store.db).append(
            f"os:{getpass.getuser()}",
            "export",
            "report:quality",
            {
                "format": args.format,
                "department": args.department,
                "month": month,
                "rows": len(report.rows),
            },
        )
    finally:
        store.close()
    text = render_quality_csv(report) if args.format == "csv" else render_quality_html(report)
    out = args.out if args.out is not None else Path.cwd() / report_filename(report, args.format)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a report.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    log.info(
        "quality report written",
        extra=kv(path=out, month=month, rows=len(report.rows), department=args.department or "*"),
    )
    print(out)
    return 0


def add_parser(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report quality`` to the ``report`` subcommands."""
    q = kinds.add_parser(
        "quality",
        help="数据质量月报: the monthly data quality report, HTML or CSV",
        description="Per site and device of a month: values owed by the registered cadence,"
        " received and valid, the effective data transmission rate (有效数据传输率), HJ 75-2017"
        " valid hours and days, timeliness, dead letters and irregularities.",
    )
    q.add_argument(
        "--month",
        type=_month_arg,
        default=None,
        metavar="YYYY-MM",
        help="the month, Beijing time (default: last month)",
    )
    q.add_argument("--department", default=None, help="only this department (default: all)")
    q.add_argument(
        "--format", choices=("html", "csv"), default="html", help="html (default) or csv"
    )
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        help="file to write (default: ./quality-report-<month>[-<department>].<format>)",
    )
    # SUPPRESS: when not given here, the main parser's global --config (same dest) stays in force.
    q.add_argument(
        "--config",
        "-c",
        type=Path,
        default=argparse.SUPPRESS,
        help="farsight.yaml (default: the global --config)",
    )
    q.set_defaults(func=cmd_quality_report)
