"""``farsight token``: issue, list and revoke API tokens.

``farsight hub`` (serve the API and dashboard) is a process role: :mod:`app.roles.hub`.
:func:`add_token_parser` adds the command to the main CLI's subparsers; handlers take the parsed
arguments (``args.config`` is the global ``--config`` path or ``None``) and return an exit code.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from farsight.errors import NotFoundError
from farsight.logs import setup_logging
from farsight.registry import Registry, load_registry
from farsight.settings import Settings, load_settings
from hub.auth import ID_MAX, TTL_MAX, Role, TokenStore


def _load(args: argparse.Namespace) -> tuple[Settings, Registry]:
    settings = load_settings(getattr(args, "config", None))
    setup_logging(settings.logging.level)
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    return settings, registry


def _tokens(args: argparse.Namespace) -> TokenStore:
    settings, registry = _load(args)
    return TokenStore(
        settings.database,
        registry.departments,
        ttl=timedelta(hours=settings.hub.token_ttl_h),
        session_ttl=timedelta(hours=settings.hub.session_ttl_h),
    )


def _cmd_token_issue(args: argparse.Namespace) -> int:
    """Print a new token once; only its hash is kept."""
    store = _tokens(args)
    try:
        ttl = timedelta(hours=args.ttl) if args.ttl is not None else None
        token = store.issue(args.user, args.department, role=args.role, ttl=ttl)
        ends = datetime.now(UTC) + (ttl or store.ttl)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(token)
    print(
        f"Keep this token now: it is not stored and cannot be shown again. Role {args.role},"
        f" {args.department or 'all departments'}, valid until"
        f" {ends.isoformat(timespec='minutes')}.",
        file=sys.stderr,
    )
    return 0


def _cmd_token_list(args: argparse.Namespace) -> int:
    """List tokens (never their secrets)."""
    store = _tokens(args)
    try:
        tokens = store.list()
    finally:
        store.close()
    print(
        f"{'id':>4}  {'user':<24} {'department':<12} {'role':<10} {'created':<25}"
        f" {'expires':<25} revoked"
    )
    for t in tokens:
        created = t.created.isoformat(timespec="seconds")
        expires = t.expires.isoformat(timespec="seconds") if t.expires else "-"
        revoked = t.revoked.isoformat(timespec="seconds") if t.revoked else "-"
        print(
            f"{t.id:>4}  {t.user:<24} {t.department or '*':<12} {t.role.value:<10}"
            f" {created:<25} {expires:<25} {revoked}"
        )
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


def _hours(text: str) -> int:
    """``--ttl``: whole hours, at least 1, at most a year."""
    top = int(TTL_MAX.total_seconds() // 3600)
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of hours") from None
    if not 1 <= value <= top:
        raise argparse.ArgumentTypeError(f"must be between 1 and {top} hours, got {value}")
    return value


def _token_id(text: str) -> int:
    """A token id: a positive integer that fits the table's column."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a token id") from None
    if not 1 <= value <= ID_MAX:
        raise argparse.ArgumentTypeError(f"token ids are 1 to {ID_MAX}, got {value}")
    return value


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
    issue.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.VIEWER.value,
        help="viewer reads; officer handles alerts and uploads evidence; supervisor also"
        " silences, reopens, exports and dispatches joint visits; admin also reads the"
        " operations views (default: viewer)",
    )
    issue.add_argument(
        "--ttl",
        type=_hours,
        default=None,
        metavar="HOURS",
        help="hours the token stays valid (default: settings hub.token_ttl_h)",
    )
    issue.set_defaults(func=_cmd_token_issue)

    lst = tsub.add_parser("list", help="list tokens without their secrets")
    lst.set_defaults(func=_cmd_token_list)

    revoke = tsub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=_token_id, help="token id from `farsight token list`")
    revoke.set_defaults(func=_cmd_token_revoke)
