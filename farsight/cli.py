"""The ``farsight`` command: one entry point, a subcommand per role or tool."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from farsight import __version__
from farsight.errors import ConfigError, FarsightError


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Validate settings, the site registry and the rules; print every problem."""
    from farsight.registry import load_registry
    from farsight.settings import Settings, load_settings
    from rules.model import load_rules

    if args.schema:
        print(json.dumps(Settings.model_json_schema(), indent=2, ensure_ascii=False))
        return 0
    path = args.file or args.config
    errors: list[ConfigError] = []
    settings = None
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        errors.append(exc)
    if settings is not None:
        for load in (
            lambda: load_registry(settings.registry.sites_file, settings.registry.departments),
            lambda: load_rules(settings.rules.files, settings.rules.default_pack),
        ):
            try:
                load()
            except ConfigError as exc:
                errors.append(exc)
    if errors:
        for exc in errors:
            print(exc, file=sys.stderr)
        return 2
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)  # type: ignore[union-attr]
    rules = load_rules(settings.rules.files, settings.rules.default_pack)  # type: ignore[union-attr]
    print(
        f"configuration ok: {path or 'built-in defaults'}; {len(registry)} sites, {len(rules)} rules"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from farsight.runtime import run_demo
    from farsight.settings import load_settings

    return run_demo(load_settings(args.config), port=args.port, duration_s=args.duration)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from farsight.runtime import run_ingest
    from farsight.settings import load_settings

    return run_ingest(load_settings(args.config))


def build_parser() -> argparse.ArgumentParser:
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

    p = sub.add_parser(
        "check-config", help="validate settings, registry and rules; print every error"
    )
    p.add_argument(
        "file", nargs="?", type=Path, default=None, help="settings file (default: --config)"
    )
    p.add_argument("--schema", action="store_true", help="print the settings JSON schema and exit")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("ingest", help="run the MQTT ingest consumer with rules and alerts")
    p.set_defaults(func=_cmd_ingest)

    from edge.cli import add_edge_parser  # the site gateway (issue 7)

    add_edge_parser(sub)

    from alerts.audit_cli import add_audit_parser
    from alerts.outbox_cli import add_parser as add_outbox_parser
    from alerts.report_cli import add_parser as add_report_parser
    from hub.cli import add_hub_parser
    from ingest.decode_cli import add_decode_parser
    from remote_sensing.cli import add_rs_parser
    from rules.cli import add_rules_parser
    from simulators.cli import add_simulate_parser
    from video.cli import add_video_parser

    add_decode_parser(sub)
    add_simulate_parser(sub)
    add_hub_parser(sub)
    add_rules_parser(sub)
    add_audit_parser(sub)
    add_outbox_parser(sub)
    add_report_parser(sub)
    add_video_parser(sub)
    add_rs_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from farsight.logs import setup_logging

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
