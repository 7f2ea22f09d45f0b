"""Command-line options that several packages' commands share (each package's own ``cli``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--db``: which hub database a command works on."""
    # SUPPRESS: a default here would overwrite the main parser's --config.
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=argparse.SUPPRESS,
        help="farsight.yaml (database: its database_url or data_dir)",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="database (SQLite file or postgresql:// URL) instead of the settings'",
    )


def database_target(args: argparse.Namespace) -> Path | str:
    """The database of ``--db``, else of the settings (``--config``, or the defaults)."""
    if getattr(args, "db", None):
        return str(args.db)
    from farsight.settings import load_settings  # settings load only for commands that need them

    return load_settings(getattr(args, "config", None)).database
