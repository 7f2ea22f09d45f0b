"""``farsight audit``: verify the audit trail, show its head, export an anchor, list entries,
make the anchors' signing key.

:func:`add_audit_parser` adds the command to the main CLI's subparsers. Every action reads the
audit log of ``--db`` (a SQLite file or a PostgreSQL URL; default: the settings' database) and
never creates one: a missing file or table is an error, because silently starting an empty
chain would hide a deleted one.

``verify`` checks the chain, the anchor given (signed by the key of ``--public-key`` or
``alerts.anchor_public_key_file``: an unsigned or wrongly signed anchor is refused), and that
``alerts`` and ``alert_events`` are what the chain recorded (:mod:`alerts.audit_trail`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alerts.audit import format_at, read_anchor
from alerts.audit_store import SqlAuditLog
from farsight.db import is_postgres_url
from farsight.errors import AuditError

if TYPE_CHECKING:
    from farsight.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    from farsight.settings import load_settings

    return load_settings(getattr(args, "config", None))


def _open(args: argparse.Namespace) -> SqlAuditLog:
    target: str | Path | None = args.db
    if target is None:
        target = _settings(args).database
    if not is_postgres_url(target):
        target = Path(target)
        if not target.is_file():
            raise AuditError(f"no database at {target}")
    return SqlAuditLog(target, create=False)


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the chain, the anchor (if given) and the queue check out, else 1."""
    from alerts.anchor_sign import load_public_key
    from alerts.audit_trail import verify_trail

    anchor = read_anchor(args.anchor) if args.anchor is not None else None
    key_file = args.public_key
    if key_file is None and anchor is not None:
        key_file = _settings(args).alerts.anchor_public_key_file
    public_key = load_public_key(key_file) if key_file is not None else None
    with _open(args) as log:
        missing = log.missing_triggers()
        report = verify_trail(log.db, anchor, public_key)
    if missing:
        # The chain may still verify, but the database no longer refuses edits on its own.
        print(
            f"warning: append-only triggers missing: {', '.join(missing)} (database altered"
            " outside Farsight)",
            file=sys.stderr,
        )
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _cmd_head(args: argparse.Namespace) -> int:
    with _open(args) as log:
        seq, h = log.head()
    print(f"{seq} {h}")
    return 0


def _cmd_anchor(args: argparse.Namespace) -> int:
    from alerts.anchor_sign import load_signing_key, signer

    key_file = args.key if args.key is not None else _settings(args).alerts.anchor_key_file
    sign = signer(load_signing_key(key_file)) if key_file is not None else None
    with _open(args) as log:
        anchor = log.export_anchor(args.out, sign=sign)
    print(f"anchor written to {args.out}: seq {anchor.seq}, hash {anchor.hash}")
    if anchor.signed:
        print(f"signed by key {anchor.key_id}; keep it outside the database", file=sys.stderr)
    else:
        print(
            "warning: the anchor is not signed (no --key, no alerts.anchor_key_file), so"
            " `audit verify` will refuse it: make a key with `farsight audit keygen`",
            file=sys.stderr,
        )
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from alerts.anchor_sign import generate_key

    out = args.out if args.out is not None else _settings(args).alerts.anchor_key_file
    if out is None:
        print("error: give --out, or set alerts.anchor_key_file", file=sys.stderr)
        return 2
    pub, kid = generate_key(out)
    print(f"signing key written to {out} (mode 0600), public key to {pub}: key id {kid}")
    print(
        "set alerts.anchor_key_file to the key where `farsight ingest` runs, and give the"
        " public key to whoever verifies (alerts.anchor_public_key_file, the provincial hub)",
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
    """Add ``audit verify|head|anchor|log|keygen`` to the main CLI."""
    p = sub.add_parser("audit", help="check and read the hash-chained audit log")
    actions = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    def db_option(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--db",
            default=None,
            help="SQLite file or postgresql:// URL (default: the settings' database)",
        )

    q = actions.add_parser(
        "verify",
        help="walk the chain, check the anchor's signature, and check that alerts and their"
        " events are what the chain recorded; exit 1 on any difference",
    )
    db_option(q)
    q.add_argument(
        "--anchor",
        type=Path,
        default=None,
        help="signed anchor from `audit anchor`, or as the upstream hub kept it; the chain must"
        " still contain it",
    )
    q.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="public key the anchor must be signed with (default: alerts.anchor_public_key_file)",
    )
    q.set_defaults(func=_cmd_verify)

    q = actions.add_parser("head", help="print the last entry's seq and hash")
    db_option(q)
    q.set_defaults(func=_cmd_head)

    q = actions.add_parser(
        "anchor", help="verify, then write the head, signed, to a JSON file to keep elsewhere"
    )
    db_option(q)
    q.add_argument("--out", type=Path, required=True, help="anchor file to write")
    q.add_argument(
        "--key",
        type=Path,
        default=None,
        help="Ed25519 signing key (default: alerts.anchor_key_file)",
    )
    q.set_defaults(func=_cmd_anchor)

    q = actions.add_parser(
        "keygen", help="make the Ed25519 key pair that signs anchors (private key mode 0600)"
    )
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        help="private key file to write, the public key next to it with .pub added (default:"
        " alerts.anchor_key_file)",
    )
    q.set_defaults(func=_cmd_keygen)

    q = actions.add_parser(
        "log", help="list entries, oldest first (one subject's timeline with --subject)"
    )
    db_option(q)
    q.add_argument("--subject", default=None, help='only this subject, e.g. "alert:42"')
    q.add_argument("--after", type=int, default=0, help="only entries after this seq")
    q.add_argument("--limit", type=int, default=1000, help="most entries to print")
    q.add_argument("--json", action="store_true", help="one JSON object a line, with both hashes")
    q.set_defaults(func=_cmd_log)
