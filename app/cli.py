"""The ``farsight`` command: one entry point, a subcommand per role or tool.

Tools that use one package (``decode``, ``rules test``, ``audit``, ``video analyze``,
``rs detect``, ...) come from that package's own ``cli`` module; process roles (``ingest``,
``hub``, ``edge``, ``video run``, ``demo``) and commands that join packages (``check-config``,
``rules backtest``, ``report risk``, ``rs watch --queue``) are wired here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from farsight import __version__
from farsight.errors import ConfigError, FarsightError
from farsight.logs import setup_logging


def _cmd_demo(args: argparse.Namespace) -> int:
    from app.demos.platform import run_demo
    from farsight.settings import load_settings

    return run_demo(load_settings(args.config), port=args.port, duration_s=args.duration)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from app.roles.ingest import run_ingest
    from farsight.settings import load_settings

    return run_ingest(load_settings(args.config))


def build_parser() -> argparse.ArgumentParser:
    # Imports here, not at the top: `farsight --help` and the light tools should not load
    # OpenCV, rasterio and FastAPI.
    from alerts.audit_cli import add_audit_parser
    from alerts.outbox_cli import add_parser as add_outbox_parser
    from app.commands.backtest import add_backtest_parser
    from app.commands.check_config import add_check_config_parser
    from app.commands.risk_report import add_parser as add_report_parser
    from app.demos.edge import run_from_args as run_edge_demo
    from app.roles.edge import run_edge
    from app.roles.hub import add_hub_parser
    from app.roles.satellite import open_queue
    from app.roles.video import add_video_run_parser
    from edge.cli import add_edge_parser
    from farsight.migrate import add_db_parser
    from hub.cli import add_token_parser
    from ingest.decode_cli import add_decode_parser
    from remote_sensing.cli import add_rs_parser
    from rules.cli import add_rules_parser
    from simulators.cli import add_simulate_parser
    from video.cli import add_video_parser

    parser = argparse.ArgumentParser(
        prog="farsight", description="Farsight non-site supervision platform."
    )
    parser.add_argument("--version", action="version", version=f"farsight {__version__}")
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=None,
        help="farsight.yaml (default: built-in defaults plus FARSIGHT__* variables)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="run every role in one process on embedded defaults")
    p.add_argument("--port", type=int, default=None, help="hub port (default: hub.port)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    p.set_defaults(func=_cmd_demo)
    add_check_config_parser(sub)
    p = sub.add_parser("ingest", help="run the MQTT ingest consumer with rules and alerts")
    p.set_defaults(func=_cmd_ingest)
    add_edge_parser(sub, run_gateway=run_edge, run_demo=run_edge_demo)
    add_decode_parser(sub)
    add_simulate_parser(sub)
    add_hub_parser(sub)
    add_token_parser(sub)
    add_backtest_parser(add_rules_parser(sub))
    add_audit_parser(sub)
    add_db_parser(sub)
    add_outbox_parser(sub)
    add_report_parser(sub)
    add_video_run_parser(add_video_parser(sub))
    add_rs_parser(sub, open_queue=open_queue)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging()
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except FarsightError as exc:
        print(f"farsight: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
