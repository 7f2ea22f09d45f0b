"""``farsight token``: issue, list and revoke API tokens.

``farsight hub`` (serve the API and dashboard) is a process role: :mod:`app.roles.hub`.
:func:`add_token_parser` adds the command to the main CLI's subparsers; handlers take the parsed
arguments (``args.config`` is the global ``--config`` path or ``None``) and return an exit code.
"""

from __future__ import annotations

import argparse
import sys

from farsight.errors import NotFoundError
from farsight.logs import setup_logging
from farsight.registry import Registry, load_registry
from farsight.settings import Settings, load_settings
from hub.auth import TokenStore


def _load(args: argparse.Namespace) -> tuple[Settings, Registry]:
    settings = load_settings(getattr(args, "config", None))
    setup_logging(settings.logging.level)
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    return settings, registry


def _tokens(args: argparse.Namespace) -> TokenStore:
    settings, registry = _load(args)
    return TokenStore(settings.database, registry.departments)


def _cmd_token_issue(args: argparse.Namespace) -> int:
    """Print a new token once; only its hash is kept."""
    store = _tokens(args)
    try:
        token = store.issue(args.user, args.department)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(token)
    print("Keep this token now: it is not stored and cannot be shown again.", file=sys.stderr)
    return 0


def _cmd_token_list(args: argparse.Namespace) -> int:
    """List tokens (never their secrets)."""
    store = _tokens(args)
    try:
        tokens = store.list()
    finally:
        store.close()
    print(f"{'id':>4}  {'user':<24} {'department':<12} {'created':<26} revoked")
    for t in tokens:
        created = t.created.isoformat(timespec="seconds")
        revoked = t.revoked.isoformat(timespec="seconds") if t.revoked else "-"
        print(f"{t.id:>4}  {t.user:<24} {t.department or '*':<12} {created:<26} {revoked}")
    return 0


def _cmd_token_revoke(args: argparse.Namespace) -> int:
    """Revoke one token by id."""
    store = _tokens(args)
    try:
        info = store.revoke(args.id)
    except NotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"revoked token {info.id} of {info.user}")
    return 0


def add_token_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``token`` command to the main CLI."""
    token = subparsers.add_parser(
        "token", help="manage API tokens", description="Issue, list and revoke API tokens."
    )
    tsub = token.add_subparsers(dest="token_command", metavar="{issue,list,revoke}")
    tsub.required = True

    issue = tsub.add_parser("issue", help="issue a token and print it once")
    issue.add_argument(
        "--user", required=True, help="who the token acts for (shown in alert history)"
    )
    issue.add_argument(
        "--department", default=None, help="limit the token to one department (default: all)"
    )
    issue.set_defaults(func=_cmd_token_issue)

    lst = tsub.add_parser("list", help="list tokens without their secrets")
    lst.set_defaults(func=_cmd_token_list)

    revoke = tsub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int, help="token id from `farsight token list`")
    revoke.set_defaults(func=_cmd_token_revoke)
