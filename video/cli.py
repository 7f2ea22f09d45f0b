"""``farsight video analyze``: a file offline, episodes (or, with ``--frames``, per-frame
detections) as JSONL.

``farsight video run`` (live cameras) is a process role: :mod:`app.roles.video`.

:func:`add_video_parser` adds the command to the main CLI's subparsers. Exit 0 on success, 2 on
an invalid camera file (every problem printed with its key path), 1 when the clip cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farsight.errors import ConfigError, FarsightError

if TYPE_CHECKING:
    from video.evidence import EvidenceStore


def _with_snapshot(episode: dict[str, Any], store: EvidenceStore | None) -> dict[str, Any]:
    # The annotated JPEG of the peak's snapshot pair, as a path an officer can open.
    shas = episode.get("peak_evidence") or ()
    path = store.path(shas[0]) if store is not None and shas else None
    return {**episode, "snapshot": str(path) if path is not None else None}


def _cmd_analyze(args: argparse.Namespace) -> int:
    """Analyse CLIP; write one JSON episode (or detection, with --frames) a line to --out or
    stdout."""
    from video.camera_config import load_camera_config
    from video.episodes import episodes_of
    from video.pipeline import analyze_file, analyze_file_frames, write_jsonl

    try:
        config = load_camera_config(args.camera) if args.camera is not None else None
        if args.rate is not None and not 0 < args.rate <= 60:
            raise ConfigError(f"--rate must be in (0, 60] frames per second, got {args.rate!r}")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from video.evidence import EvidenceStore

    store = EvidenceStore(args.evidence) if args.evidence is not None else None
    rows: Iterable[dict[str, Any]]
    if args.frames:
        rows = analyze_file(args.clip, config, rate_fps=args.rate, evidence=store)
    else:
        frames = analyze_file_frames(args.clip, config, rate_fps=args.rate, evidence=store)
        rows = (_with_snapshot(e, store) for e in episodes_of(frames))
    try:
        if args.out is None:
            n = write_jsonl(rows, sys.stdout)
            sys.stdout.flush()
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", encoding="utf-8") as fh:
                n = write_jsonl(rows, fh)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except FarsightError as exc:
        print(f"farsight video analyze: {exc}", file=sys.stderr)
        return 1
    where = f" to {args.out}" if args.out is not None else ""
    what = "detection(s)" if args.frames else "episode(s)"
    print(f"{n} {what} from {args.clip}{where}", file=sys.stderr)
    return 0


def add_video_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``video analyze`` to the main CLI; returns the ``video`` actions, where the
    composition root adds ``run`` (a process role)."""
    p = sub.add_parser("video", help="analyse video files offline, or run live cameras")
    actions = p.add_subparsers(dest="video_command", metavar="ACTION", required=True)

    q = actions.add_parser(
        "analyze",
        help="analyse a video file; one JSON episode a line (--frames: one detection a line)",
    )
    q.add_argument("clip", type=Path, metavar="CLIP", help="video file (mp4, avi, ...)")
    q.add_argument(
        "--camera",
        type=Path,
        default=None,
        metavar="CAMERA.yaml",
        help=(
            "camera config: ids, zones, masks, analysers "
            "(default: every analyser, whole frame, defaults)"
        ),
    )
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="events.jsonl",
        help="output file (default: stdout)",
    )
    q.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="FPS",
        help="analysis rate (default: the camera's rate_fps, 5)",
    )
    q.add_argument(
        "--evidence",
        type=Path,
        default=None,
        metavar="DIR",
        help=(
            "store annotated and raw JPEG snapshots here, content-addressed; each episode names "
            "its peak's annotated snapshot as `snapshot` (default: none)"
        ),
    )
    q.add_argument(
        "--frames",
        action="store_true",
        help=(
            "one line per detection in each analysed frame, instead of one per episode (start "
            "`offset_s`, `end_s`, peak `confidence` at `peak_offset_s` with its `bbox`)"
        ),
    )
    q.set_defaults(func=_cmd_analyze)
    return actions
