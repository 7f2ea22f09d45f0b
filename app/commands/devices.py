"""``farsight devices``: broker identities of the registry's devices, gateways and services.

``issue`` makes credentials for every identity that has none, ``rotate`` and ``revoke`` change
one, ``list`` shows them, and ``sync`` writes mosquitto's password and ACL files from the
registry and the store and has the broker read them again (SIGHUP). Plain secrets are printed
once, or written to a file of mode 0600 with ``--out``; they are never logged and the store
keeps only their hashes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farsight.credentials import CredentialStore, Secret
    from farsight.registry import Registry
    from farsight.settings import Settings


def add_devices_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``devices`` and its actions to the ``farsight`` parser."""
    p = sub.add_parser(
        "devices",
        help="broker credentials of devices, gateways and services; the broker's ACL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    out_help = "write the new secrets to FILE (JSON, mode 0600, merged) instead of printing them"

    issue = actions.add_parser("issue", help="make credentials for every identity without any")
    issue.add_argument("--out", type=Path, default=None, metavar="FILE", help=out_help)
    issue.set_defaults(func=_cmd_issue)

    rotate = actions.add_parser("rotate", help="new secrets for one identity")
    rotate.add_argument("name", help="user name, e.g. env/yc-aq-xiling/aq1, gw/gw-demo")
    rotate.add_argument("--out", type=Path, default=None, metavar="FILE", help=out_help)
    rotate.set_defaults(func=_cmd_rotate)

    revoke = actions.add_parser("revoke", help="take one identity's credentials away")
    revoke.add_argument("name", help="user name, as `farsight devices list` shows it")
    revoke.set_defaults(func=_cmd_revoke)

    ls = actions.add_parser("list", help="identities, their state and times (no secrets)")
    ls.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    ls.set_defaults(func=_cmd_list)

    sync = actions.add_parser(
        "sync", help="write the broker's password and ACL files; reload the broker"
    )
    pid = sync.add_mutually_exclusive_group()
    pid.add_argument("--pid", type=int, default=None, help="send this mosquitto process SIGHUP")
    pid.add_argument(
        "--pid-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="mosquitto's pid_file (default: credentials.broker_pid_file)",
    )
    sync.set_defaults(func=_cmd_sync)


def _context(args: argparse.Namespace) -> tuple[Settings, Registry, CredentialStore]:
    from farsight.credentials import CredentialStore
    from farsight.registry import load_registry
    from farsight.settings import load_settings

    settings = load_settings(getattr(args, "config", None))
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    return settings, registry, CredentialStore(settings.credential_store_path)


def _hand_out(secrets: Sequence[Secret], out: Path | None) -> None:
    """Print the secrets once, or file them at ``out``."""
    from farsight.credentials import write_secrets

    if out is not None:
        write_secrets(out, secrets)
        print(f"wrote {len(secrets)} secret(s) to {out} (mode 0600)")
        return
    print("New secrets, shown this once (the store keeps only their hashes):")
    width = max(len(s.username) for s in secrets)
    for s in secrets:
        pw = f"  hj212_pw={s.hj212_pw}" if s.hj212_pw else ""
        print(f"  {s.username:<{width}}  password={s.password}{pw}")


def _cmd_issue(args: argparse.Namespace) -> int:
    _settings, registry, store = _context(args)
    secrets = store.issue_missing(registry)
    if not secrets:
        print(
            f"every identity of the registry has credentials ({store.path});"
            " `farsight devices rotate NAME` makes new ones"
        )
        return 0
    _hand_out(secrets, args.out)
    print(f"{len(secrets)} identities issued in {store.path}")
    print("`farsight devices sync` tells the broker")
    return 0


def _cmd_rotate(args: argparse.Namespace) -> int:
    _settings, registry, store = _context(args)
    secret = store.rotate(args.name, registry)
    _hand_out([secret], args.out)
    print("`farsight devices sync` tells the broker; the old password works until then")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    _settings, _registry, store = _context(args)
    cred = store.revoke(args.name)
    print(f"revoked {cred.username}; `farsight devices sync` tells the broker")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from farsight.broker_acl import plan

    _settings, registry, store = _context(args)
    creds = store.credentials()
    _entries, report = plan(creds, registry)
    stale, missing = set(report.stale), set(report.missing)
    rows: list[dict[str, str | bool | None]] = []
    for c in creds:
        state = "revoked" if c.revoked else "stale" if c.username in stale else "active"
        rows.append(
            {
                "name": c.username,
                "kind": c.identity.kind,
                "state": state,
                "hj212": c.identity.hj212,
                "created": c.created.isoformat(timespec="seconds"),
                "rotated": c.rotated.isoformat(timespec="seconds") if c.rotated else None,
                "revoked": c.revoked.isoformat(timespec="seconds") if c.revoked else None,
            }
        )
    known = {c.username for c in creds}
    rows += [
        {"name": n, "kind": "", "state": "missing", "hj212": False, "created": None}
        for n in sorted(missing - known)
    ]
    if args.json:
        print(json.dumps({"store": str(store.path), "identities": rows}, indent=2))
        return 0
    width = max([len(str(r["name"])) for r in rows] + [4])
    print(f"{'name':<{width}}  {'kind':<7}  {'state':<7}  created                    rotated")
    for r in rows:
        print(
            f"{r['name']:<{width}}  {r['kind']:<7}  {r['state']:<7}  {r['created'] or '-':<25}"
            f"  {r.get('rotated') or '-'}"
        )
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from farsight.broker_acl import read_pid_file, reload_broker, write_broker_files

    settings, registry, store = _context(args)
    report = write_broker_files(
        store, registry, settings.broker_password_path, settings.broker_acl_path
    )
    print(
        f"wrote {settings.broker_password_path} and {settings.broker_acl_path}:"
        f" {len(report.users)} identities"
    )
    if report.missing:
        print(
            f"  {len(report.missing)} without credentials (not let in): "
            f"{', '.join(report.missing[:5])}{', ...' if len(report.missing) > 5 else ''};"
            " `farsight devices issue` makes them"
        )
    if report.stale:
        print(
            f"  {len(report.stale)} no longer in the registry (left out): {', '.join(report.stale)}"
        )
    pid_file = args.pid_file or settings.credentials.broker_pid_file
    pid = args.pid if args.pid is not None else read_pid_file(pid_file) if pid_file else None
    if pid is None:
        print("no broker reloaded: pass --pid or --pid-file, or send mosquitto SIGHUP yourself")
        return 0
    reload_broker(pid)
    print(f"broker {pid} reloads its password and ACL files (SIGHUP)")
    return 0
