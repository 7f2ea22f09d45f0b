"""``farsight deadletters``: list, show, replay and prune the messages ingest refused.

``list`` and ``replay`` take the same filters (reason, topic with MQTT wildcards, site, device,
received from/to, ids, replay outcome, limit). ``replay`` decodes each letter again with the
current codecs, registry and device passwords (:mod:`ingest.dead_letters`), stores what now
decodes once, marks every letter with what it came to, and records who replayed what in the
audit chain. A gateway's batch is verified again with the current gateway keys (edge.keys_file)
and site assignment, its sequence aside; one whose MAC no longer verifies (a key since rotated)
stays failed and says so. By default it takes the letters never replayed or whose last replay
failed.
``prune`` applies the retention of ``ingest.dead_letters`` now (:mod:`ingest.retention`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from farsight.cli_options import add_database_options, database_target
from farsight.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from farsight.db import Database
    from ingest.dead_letters import LetterFilter, ReplayResult, StoredLetter


def _when(text: str) -> datetime:
    """An ISO 8601 time for ``--from``/``--to``; without an offset it is UTC."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _add_filters(p: argparse.ArgumentParser, default_limit: int) -> None:
    p.add_argument("--reason", default=None, help="only letters refused for this reason")
    p.add_argument("--topic", default=None, help="only this topic; MQTT wildcards + and # allowed")
    p.add_argument("--site", default=None, help="only letters on this site's topics")
    p.add_argument("--device", default=None, help="only letters on this device's topics")
    p.add_argument(
        "--from",
        dest="since",
        type=_when,
        default=None,
        metavar="TIME",
        help="received at or after TIME (ISO 8601; UTC without an offset)",
    )
    p.add_argument(
        "--to", dest="until", type=_when, default=None, metavar="TIME", help="received at or before"
    )
    p.add_argument(
        "--id",
        dest="ids",
        type=int,
        action="append",
        default=[],
        metavar="ID",
        help="only this letter (repeatable)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=default_limit,
        help=f"at most this many letters (default {default_limit})",
    )


def add_deadletters_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``deadletters list|show|replay|prune`` to the ``farsight`` parser."""
    from ingest.retention import add_prune_parser

    p = sub.add_parser(
        "deadletters",
        help="list, show, replay and prune the messages ingest refused",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = actions.add_parser("list", help="dead letters, oldest first")
    add_database_options(ls)
    _add_filters(ls, 100)
    ls.add_argument(
        "--outcome",
        default=None,
        choices=("pending", "stored", "duplicate", "failed", "unreplayable"),
        help="only letters whose last replay came to this (pending: never replayed, or failed)",
    )
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    ls.set_defaults(func=_cmd_list)

    show = actions.add_parser("show", help="one letter with its payload")
    add_database_options(show)
    show.add_argument("id", type=int, help="the letter's id (as `list` shows it)")
    show.set_defaults(func=_cmd_show)

    rp = actions.add_parser(
        "replay",
        help="decode letters again with the current codecs and registry; store what decodes",
    )
    add_database_options(rp)
    _add_filters(rp, 1000)
    rp.add_argument(
        "--all",
        action="store_true",
        help="also letters replayed before with success (their readings are not stored twice)",
    )
    rp.add_argument(
        "--registry",
        type=Path,
        default=None,
        metavar="FILE",
        help="site registry YAML (default: registry.sites_file of the settings)",
    )
    rp.add_argument(
        "--actor",
        default=None,
        help="who replays, for the audit log (default: cli:<login name>)",
    )
    rp.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    rp.set_defaults(func=_cmd_replay)

    add_prune_parser(actions)


def _filter(args: argparse.Namespace, outcome: str | None) -> LetterFilter:
    from ingest.dead_letters import LetterFilter

    try:
        return LetterFilter(
            reason=args.reason,
            topic=args.topic,
            site=args.site,
            device=args.device,
            since=args.since,
            until=args.until,
            ids=tuple(args.ids),
            outcome=outcome,
            limit=args.limit,
        )
    except ValueError as exc:
        raise ConfigError(f"deadletters: {exc}") from None


def _open(args: argparse.Namespace) -> Database:
    from farsight.db import Database, is_postgres_url
    from farsight.migrate import ensure_schema

    target = database_target(args)
    if not is_postgres_url(target) and not Path(target).is_file():
        # Creating an empty database would list nothing and hide a wrong path.
        raise StoreError(f"no database at {target}")
    return ensure_schema(Database.open(target))


def _row(letter: StoredLetter) -> str:
    d = letter.letter
    last = letter.replay_outcome or "-"
    tag = " [truncated]" if letter.truncated else ""
    return (
        f"{letter.id}\t{d.received.isoformat()}\t{d.topic}\t{d.reason}\t{last}\t"
        f"{d.detail[:120]}{tag}"
    )


def _cmd_list(args: argparse.Namespace) -> int:
    from ingest.dead_letters import select_letters

    f = _filter(args, args.outcome)
    db = _open(args)
    try:
        letters = select_letters(db, f)
    finally:
        db.close()
    if args.json:
        for letter in letters:
            print(json.dumps(letter.to_json(), ensure_ascii=False))
        return 0
    print("id\treceived\ttopic\treason\treplay\tdetail")
    for letter in letters:
        print(_row(letter))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from ingest.dead_letters import get_letter

    db = _open(args)
    try:
        letter = get_letter(db, args.id)
    finally:
        db.close()
    if letter is None:
        print(f"no dead letter {args.id}", file=sys.stderr)
        return 1
    doc = letter.to_json(payload=True)
    if letter.truncated:
        doc["note"] = (
            "payload truncated by retention: only its first bytes are kept; not replayable"
        )
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0


def _result_line(r: ReplayResult) -> str:
    if r.outcome in ("stored", "duplicate"):
        return f"{r.id}\t{r.outcome}\t{r.topic}\t{r.stored} new, {r.duplicates} stored already"
    return f"{r.id}\t{r.outcome}\t{r.topic}\t{r.reason}: {r.detail}"


def _cmd_replay(args: argparse.Namespace) -> int:
    from alerts.audit_store import SqlAuditLog
    from app.roles.ingest import gateway_sites, hj212_passwords
    from farsight.registry import load_registry
    from farsight.settings import load_settings
    from ingest.dead_letters import PENDING, replay_letters, replay_summary, select_letters
    from ingest.edge_batches import EdgeBatchDecoder, load_keys
    from ingest.pipeline import IngestPipeline
    from ingest.store import ReadingStore

    settings = load_settings(getattr(args, "config", None))
    sites_file = args.registry or settings.registry.sites_file
    registry = load_registry(sites_file, settings.registry.departments)
    # Given ids are replayed whatever their last outcome: the operator asked for those.
    f = _filter(args, None if args.all or args.ids else PENDING)
    actor = args.actor or f"cli:{getpass.getuser()}"
    db = _open(args)
    try:
        store = ReadingStore(db)
        # Gateway batches are verified with the current keys and site assignment, as live; no
        # heartbeat monitor: a replay is not a gateway's news.
        edge = (
            EdgeBatchDecoder(
                db,
                load_keys(settings.edge.keys_file),
                settings.edge,
                assigned_sites=lambda gw: gateway_sites(registry, settings, gw),
            )
            if settings.edge.keys_file is not None
            else None
        )
        pipeline = IngestPipeline(
            registry,
            store,
            unknown_site=settings.ingest.unknown_site,
            passwords=hj212_passwords(settings),
            edge=edge,
        )
        letters = select_letters(db, f)
        results = replay_letters(
            pipeline,
            letters,
            now=datetime.now(UTC),
            actor=actor,
            audit=SqlAuditLog(db),
        )
    finally:
        db.close()
    for r in results:
        print(json.dumps(r.to_json(), ensure_ascii=False) if args.json else _result_line(r))
    summary = replay_summary(results)
    outcomes = ", ".join(f"{n} {k}" for k, n in summary["outcomes"].items()) or "no letters"
    print(
        f"replayed {summary['letters']} letters: {outcomes};"
        f" {summary['stored_readings']} readings stored",
        file=sys.stderr,
    )
    return 0
