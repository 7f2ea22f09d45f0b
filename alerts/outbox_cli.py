"""``farsight outbox``: see the upstream outbox, and push dead letters again.

``outbox status`` prints rows per status, the age of the oldest undelivered event and the dead
letters with their last error; ``outbox redrive`` puts dead letters (one alert's, one key's or
all) back to pending with their attempts reset, for the hub's senders to deliver in order.
"""

from __future__ import annotations

import argparse
import json
import sys

from alerts import outbox
from farsight.cli_options import add_database_options, database_target


def _cmd_status(args: argparse.Namespace) -> int:
    target = database_target(args)
    st = outbox.status(target)
    dead = outbox.dead_letters(target, limit=args.dead)
    if args.json:
        print(json.dumps({**st, "dead_letters": dead}, ensure_ascii=False))
        return 0
    age = st["oldest_pending_age_s"]
    print(
        f"pending {st['pending']}  sent {st['sent']}  dead {st['dead']}"
        + (f"  oldest pending {age:.0f} s" if age is not None else "")
    )
    for d in dead:
        print(
            f"dead\t{d['key']}\talert {d['alert_id']}\tattempts {d['attempts']}\t{d['last_error']}"
        )
    if st["dead"] > len(dead):
        print(f"... {st['dead'] - len(dead)} more dead letters (--dead N shows more)")
    return 0


def _cmd_redrive(args: argparse.Namespace) -> int:
    n = outbox.redrive(database_target(args), alert_id=args.alert, key=args.key)
    what = (
        f"alert {args.alert}"
        if args.alert is not None
        else f"key {args.key}"
        if args.key
        else "all"
    )
    print(f"{n} dead letter(s) back to pending ({what})")
    return 0 if n or args.all else 1


def add_outbox_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox status|redrive`` to the main CLI's subparsers."""
    p = sub.add_parser("outbox", help="the upstream outbox: status and redrive of dead letters")
    actions = p.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)

    q = actions.add_parser("status", help="rows per status, oldest pending age, dead letters")
    add_database_options(q)
    q.add_argument("--dead", type=int, default=20, help="most dead letters to list")
    q.add_argument("--json", action="store_true", help="one JSON object")
    q.set_defaults(func=_cmd_status)

    q = actions.add_parser("redrive", help="put dead letters back to pending (attempts reset)")
    add_database_options(q)
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--alert", type=int, default=None, help="dead letters of this alert id")
    which.add_argument("--key", default=None, help="the dead letter with this idempotency key")
    which.add_argument("--all", action="store_true", help="every dead letter")
    q.set_defaults(func=_cmd_redrive)


add_parser = add_outbox_parser


def main(argv: list[str] | None = None) -> int:
    """Run ``outbox ...`` alone (tests; ``python -m alerts.outbox_cli status``)."""
    parser = argparse.ArgumentParser(prog="farsight")
    add_outbox_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["outbox", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
