"""``farsight decode``: decode payloads, one a line, into JSON readings; rejects go to stderr.

Used to inspect captures and to check dead letters before a replay. Exit status 1 when any
line was rejected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC
from typing import IO

from farsight.errors import DecodeError
from farsight.types import ID_RE, Reading
from ingest.codecs import CODECS, get_codec


def run_decode(
    codec: str,
    source: IO[bytes] | str | os.PathLike[str],
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    site: str = "unknown",
    device: str | None = None,
    irregular: bool = False,
) -> int:
    """Decode each non-blank line of ``source`` (a binary stream, a path, or ``"-"`` for stdin).

    Readings go to ``out`` as JSON lines, rejects to ``err`` as ``line N: REJECT reason: detail``.
    Without ``device``, HJ 212 readings take the frame's MN (made safe as an id), others
    ``unknown``. With ``irregular``, what a decoded line had off (e.g. HJ 212 field quirks) goes
    to ``err`` as ``line N: IRREGULAR what; what``. Returns 1 if any line was rejected, else 0.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    decoder = get_codec(codec)
    rejected = False
    with ExitStack() as stack:
        if source == "-":
            stream: Iterable[bytes] = sys.stdin.buffer
        elif isinstance(source, (str, os.PathLike)):
            stream = stack.enter_context(open(source, "rb"))
        else:
            stream = source
        for number, raw in enumerate(stream, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            if decoder.name == "hj212":
                # Splitting on newlines took the frame's CRLF (HJ 212-2017, 6.3): put it back.
                line += b"\r\n"
            try:
                decoded = decoder.decode(line, site=site, device=device or "unknown")
            except DecodeError as exc:
                rejected = True
                err.write(f"line {number}: REJECT {exc.reason}: {exc.detail}\n")
                continue
            if irregular and decoded.irregularities:
                err.write(f"line {number}: IRREGULAR {'; '.join(decoded.irregularities)}\n")
            mn_device = _safe_id(decoded.meta.get("MN", "")) if device is None else None
            for reading in decoded.readings:
                if mn_device:
                    reading = replace(reading, device=mn_device)
                out.write(json.dumps(_as_json(reading)) + "\n")
    return 1 if rejected else 0


def _safe_id(text: str) -> str:
    """``text`` made to match ``ID_RE``; the standard MN is 24 alphanumerics, devices vary."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip("_.-")[:64]
    return cleaned if ID_RE.match(cleaned) else ""


def _as_json(reading: Reading) -> dict[str, object]:
    return {
        "site": reading.site,
        "device": reading.device,
        "metric": reading.metric,
        "value": reading.value,
        "unit": reading.unit,
        "ts": reading.ts.astimezone(UTC).isoformat(),
        "flag": reading.flag,
        "seq": reading.seq,
    }


def _id_arg(value: str) -> str:
    if not ID_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} must match {ID_RE.pattern}")
    return value


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", required=True, choices=sorted(CODECS), help="payload format")
    parser.add_argument("file", nargs="?", default="-", help="one payload a line; - for stdin")
    parser.add_argument("--site", type=_id_arg, default="unknown", help="site id for readings")
    parser.add_argument(
        "--device", type=_id_arg, default=None, help="device id (default: HJ 212 MN, or unknown)"
    )
    parser.add_argument(
        "--irregular",
        action="store_true",
        help="also report what each decoded line had off (HJ 212 field quirks) on stderr",
    )
    parser.set_defaults(func=_cmd_decode)


def add_decode_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``decode`` subcommand to a CLI's subparsers."""
    parser = subparsers.add_parser(
        "decode", help="decode payloads (one a line) into JSON readings; rejects to stderr"
    )
    _configure(parser)
    return parser


def _cmd_decode(args: argparse.Namespace) -> int:
    try:
        return run_decode(
            args.codec, args.file, site=args.site, device=args.device, irregular=args.irregular
        )
    except OSError as exc:
        print(f"decode: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m ingest.decode_cli --codec hj212 FILE``."""
    parser = argparse.ArgumentParser(prog="decode", description=__doc__)
    _configure(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
