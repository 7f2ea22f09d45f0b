"""The ``farsight`` command: one entry point, a subcommand per role or tool.

Tools that use one package (``decode``, ``rules test``, ``audit``, ``video analyze``,
``rs detect``, ...) come from that package's own ``cli`` module; process roles (``ingest``,
``hub``, ``edge``, ``video run``, ``demo``) and commands that join packages (``check-config``,
``rules backtest``, ``report risk``, ``rs watch --queue``) are wired here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

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


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="run every role in one process on embedded defaults")
    p.add_argument("--port", type=int, default=None, help="hub port (default: hub.port)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    p.set_defaults(func=_cmd_demo)


def _add_check_config(sub: Subparsers) -> None:
    from app.commands.check_config import add_check_config_parser

    add_check_config_parser(sub)


def _add_ingest(sub: Subparsers) -> None:
    p = sub.add_parser("ingest", help="run the MQTT ingest consumer with rules and alerts")
    p.set_defaults(func=_cmd_ingest)


def _add_edge(sub: Subparsers) -> None:
    from app.demos.edge import run_from_args as run_edge_demo
    from app.roles.edge import run_edge
    from edge.cli import add_edge_parser

    add_edge_parser(sub, run_gateway=run_edge, run_demo=run_edge_demo)


def _add_deadletters(sub: Subparsers) -> None:
    from app.commands.deadletters import add_deadletters_parser

    add_deadletters_parser(sub)


def _add_decode(sub: Subparsers) -> None:
    from ingest.decode_cli import add_decode_parser

    add_decode_parser(sub)


def _add_prune_dead_letters(sub: Subparsers) -> None:
    # The old name of `deadletters prune`, hidden from the help; it says so when used.
    from ingest.retention import add_prune_alias

    add_prune_alias(sub)


def _add_simulate(sub: Subparsers) -> None:
    from simulators.cli import add_simulate_parser

    add_simulate_parser(sub)


def _add_devices(sub: Subparsers) -> None:
    from app.commands.devices import add_devices_parser

    add_devices_parser(sub)


def _add_hub(sub: Subparsers) -> None:
    from app.roles.hub import add_hub_parser

    add_hub_parser(sub)


def _add_token(sub: Subparsers) -> None:
    from hub.cli import add_token_parser

    add_token_parser(sub)


def _add_rules(sub: Subparsers) -> None:
    from app.commands.backtest import add_backtest_parser
    from app.commands.repair_state import add_repair_state_parser
    from rules.cli import add_rules_parser

    actions = add_rules_parser(sub)
    add_backtest_parser(actions)
    add_repair_state_parser(actions)


def _add_audit(sub: Subparsers) -> None:
    from alerts.audit_cli import add_audit_parser

    add_audit_parser(sub)


def _add_outbox(sub: Subparsers) -> None:
    from alerts.outbox_cli import add_parser as add_outbox_parser

    add_outbox_parser(sub)


def _add_report(sub: Subparsers) -> None:
    from app.commands.quality_report import add_parser as add_quality_report_parser
    from app.commands.risk_report import add_parser as add_report_parser

    add_quality_report_parser(add_report_parser(sub))


def _add_video(sub: Subparsers) -> None:
    from app.roles.video import add_video_run_parser
    from video.cli import add_video_parser

    add_video_run_parser(add_video_parser(sub))


def _add_db(sub: Subparsers) -> None:
    from farsight.migrate import add_db_parser

    add_db_parser(sub)


def _add_pki(sub: Subparsers) -> None:
    from app.commands.pki import add_pki_parser

    add_pki_parser(sub)


def _add_rs(sub: Subparsers) -> None:
    from app.roles.satellite import open_queue
    from remote_sensing.cli import add_rs_parser

    add_rs_parser(sub, open_queue=open_queue)


COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "demo": _add_demo,
    "check-config": _add_check_config,
    "ingest": _add_ingest,
    "edge": _add_edge,
    "decode": _add_decode,
    "deadletters": _add_deadletters,
    "prune-dead-letters": _add_prune_dead_letters,
    "simulate": _add_simulate,
    "hub": _add_hub,
    "devices": _add_devices,
    "token": _add_token,
    "rules": _add_rules,
    "audit": _add_audit,
    "db": _add_db,
    "outbox": _add_outbox,
    "report": _add_report,
    "video": _add_video,
    "rs": _add_rs,
    "pki": _add_pki,
}
"""Each subcommand and what adds its parser. The modules behind a command are imported only
when its parser is built: ``farsight audit verify`` need not load OpenCV, rasterio and FastAPI."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``farsight`` parser with every subcommand, or with the subcommand ``only``."""
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
    for name, add in COMMANDS.items():
        if only is None or name == only:
            add(sub)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, if the global options before it leave no doubt."""
    args = iter(argv)
    for arg in args:
        if arg in ("--config", "-c"):
            next(args, None)
        elif arg.startswith("-"):
            if not arg.startswith(("--config=", "-c")):
                return None  # --help, --version or a mistake: the full parser answers
        else:
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_in(argv))
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
