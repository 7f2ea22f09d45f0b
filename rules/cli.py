"""``farsight rules``: test and check rule files; list rule kinds (``backtest``:
:mod:`app.commands.backtest`; ``repair-state``: :mod:`app.commands.repair_state`).

:func:`add_rules_parser` adds the command to the main CLI's subparsers; handlers take the parsed
arguments (``args.config`` is the global ``--config`` path or ``None``) and return an exit code:
0 success, 1 a test failed, 2 invalid input (every problem printed, with file and key path).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from farsight.errors import ConfigError, ConfigProblem, RuleError


def quiet_engine() -> None:
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

    quiet_engine()
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
    """Every problem of the given rule files (each file checked on its own, then ids across
    them)."""
    from farsight.settings import read_yaml
    from rules.loader import parse_ruleset
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
    from rules.loader import default_pack_files

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
    from rules.model import RuleModel
    from rules.registry import RULE_KINDS

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


# -- parser -----------------------------------------------------------------------------------


def add_rules_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add the ``rules`` command (test, check, kinds) to the main CLI; returns its actions,
    where the composition root adds ``backtest`` and ``repair-state`` (they read the
    stores)."""
    rules = subparsers.add_parser(
        "rules",
        help="test, backtest and check rule files; list rule kinds",
        description="Work with rule files without running ingest.",
    )
    sub = rules.add_subparsers(
        dest="rules_command", metavar="{test,backtest,check,kinds,repair-state}"
    )
    sub.required = True

    p = sub.add_parser(
        "test",
        help="run rule unit tests (promtool style)",
        description="Run rule test files: input series in expanding notation, and the alerts"
        " expected at given times. "
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
        "check",
        help="validate rule files; print every problem",
        description="Validate rule files. Exit 2 with every problem (file, rule id, key path,"
        " value, message), else 0.",
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
    return sub
