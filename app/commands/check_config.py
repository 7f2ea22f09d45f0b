"""``farsight check-config``: validate settings, the site registry and the rules together."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from farsight.errors import ConfigError
from farsight.registry import load_registry
from farsight.settings import Settings, load_settings
from farsight.tls import broker_context
from rules.loader import load_rules


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Print every problem (exit 2), or a one-line summary (exit 0)."""
    if args.schema:
        print(json.dumps(Settings.model_json_schema(), indent=2, ensure_ascii=False))
        return 0
    path = args.file or args.config
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    errors: list[ConfigError] = []
    registry = rules = None
    try:
        registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    except ConfigError as exc:
        errors.append(exc)
    try:
        rules = load_rules(settings.rules.files, settings.rules.default_pack)
    except ConfigError as exc:
        errors.append(exc)
    if settings.broker.tls.enabled:
        try:
            broker_context(settings.broker.tls)  # the files exist, parse and match
        except ConfigError as exc:
            errors.append(exc)
    if errors or registry is None or rules is None:
        for error in errors:
            print(error, file=sys.stderr)
        return 2
    where = path or "built-in defaults"
    print(f"configuration ok: {where}; {len(registry)} sites, {len(rules)} rules")
    return 0


def add_check_config_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``check-config`` to the main CLI."""
    p = sub.add_parser(
        "check-config", help="validate settings, registry and rules; print every error"
    )
    p.add_argument(
        "file", nargs="?", type=Path, default=None, help="settings file (default: --config)"
    )
    p.add_argument("--schema", action="store_true", help="print the settings JSON schema and exit")
    p.set_defaults(func=_cmd_check_config)
