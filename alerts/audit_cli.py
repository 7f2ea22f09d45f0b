"""``farsight audit``: verify the audit chain, show its head, export an anchor, list entries.

:func:`add_audit_parser` adds the command to the main CLI's subparsers. Every action reads the
audit log of ``--db`` (default: the settings' database) and never creates one: a missing file or
table is an error, because silently starting an empty chain would hide a deleted one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alerts.audit import format_at
from alerts.audit_store import SqliteAuditLog
from farsight.errors import AuditError


def _open(args: argparse.Namespace) -> SqliteAuditLog:
    path = args.db
    if path is None:
        from farsight.settings import load_settings

        path = load_settings(getattr(args, "config", None)).db_path
    if not Path(path).is_file():
        raise AuditError(f"no database at {path}")
    return SqliteAuditLog(path, create=False)


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the chain (and the anchor, if given) checks out, else 1."""
    with _open(args) as log:
        missing = log.missing_triggers()
        result = log.verify(anchor=args.anchor)
    if missing:
        # The chain may still verify, but the database no longer refuses edits on its own.
        print(
            f"warning: append-only triggers missing: {', '.join(missing)} (database altered"
            " outside Farsight)",
            file=sys.stderr,
        )
    print(result.summary())
    return 0 if result.ok else 1


def _cmd_head(args: argparse.Namespace) -> int:
    with _open(args) as log:
        seq, h = log.head()
    print(f"{seq} {h}")
    return 0


def _cmd_anchor(args: argparse.Namespace) -> int:
    with _open(args) as log:
        anchor = log.export_anchor(args.out)
    print(f"anchor written to {args.out}: seq {anchor.seq}, hash {anchor.hash}")
    print(
        f"sign it and keep it outside the database, e.g. gpg --detach-sign {args.out}",
        file=sys.stderr,
    )
    return 0


def _cmd_log(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    with _open(args) as log:
        entries = log.entries(subject=args.subject, after_seq=args.after, limit=args.limit)
    for e in entries:
        if args.json:
            print(json.dumps(e.to_json(), ensure_ascii=False))
        else:
            data = json.dumps(e.data, ensure_ascii=False, sort_keys=True)
            print(f"{e.seq}\t{format_at(e.at)}\t{e.actor}\t{e.action}\t{e.subject}\t{data}")
    return 0


def add_audit_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``audit verify|head|anchor|log`` to the main CLI."""
    p = sub.add_parser("audit", help="check and read the hash-chained audit log")
    actions = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    def db_option(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--db",
            type=Path,
            default=None,
            help="SQLite database (default: the settings' data_dir/farsight.db)",
        )

    q = actions.add_parser("verify", help="walk the chain; exit 1 at the first broken link")
    db_option(q)
    q.add_argument(
        "--anchor",
        type=Path,
        default=None,
        help="anchor file from `audit anchor`; the chain must still contain it",
    )
    q.set_defaults(func=_cmd_verify)

    q = actions.add_parser("head", help="print the last entry's seq and hash")
    db_option(q)
    q.set_defaults(func=_cmd_head)

    q = actions.add_parser(
        "anchor", help="verify, then write the head to a JSON file to sign and keep elsewhere"
    )
    db_option(q)
    q.add_argument("--out", type=Path, required=True, help="anchor file to write")
    q.set_defaults(func=_cmd_anchor)

    q = actions.add_parser(
        "log", help="list entries, oldest first (one subject's timeline with --subject)"
    )
    db_option(q)
    q.add_argument("--subject", default=None, help='only this subject, e.g. "alert:42"')
    q.add_argument("--after", type=int, default=0, help="only entries after this seq")
    q.add_argument("--limit", type=int, default=1000, help="most entries to print")
    q.add_argument("--json", action="store_true", help="one JSON object a line, with both hashes")
    q.set_defaults(func=_cmd_log)
