"""``farsight video run``: live cameras analysed in a pool of worker processes."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from app.lifecycle import Shutdown, run_until_stopped
from farsight.errors import ConfigError
from farsight.logs import kv, setup_logging
from farsight.registry import load_registry
from farsight.settings import Settings, load_settings
from video.runner import VideoRunner

log = logging.getLogger("farsight.runtime")


def run_video(
    settings: Settings, cameras_dir: Path | None = None, workers: int | None = None
) -> int:
    """Analyse a folder of live cameras until SIGINT or SIGTERM; the worker processes end
    with the role."""
    setup_logging(settings.logging.level)
    folder = cameras_dir or settings.video.cameras_dir
    if folder is None:
        raise ConfigError(
            "no camera folder: pass --cameras DIR or set video.cameras_dir"
            " (one CAMERA.yaml per camera)"
        )
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    runner = VideoRunner(
        settings.broker,
        {site.id: site.department for site in registry.sites},
        cameras_dir=Path(folder),
        evidence_root=settings.evidence_dir,
        workers=workers or settings.video.workers,
        resend_s=settings.video.resend_s,
        clear_after_s=settings.video.clear_after_s,
    )
    shutdown = Shutdown()
    shutdown.on_close("video workers", runner.stop)
    runner.start()
    log.info(
        "video running",
        extra=kv(folder=str(folder), cameras=len(runner.cameras), workers=runner.n_workers),
    )
    for name, why in runner.problems.items():
        print(f"camera {name} refused: {why}", flush=True)
    run_until_stopped(shutdown)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    """Run the camera folder until interrupted; findings go to the broker."""
    if args.workers is not None and not 1 <= args.workers <= 64:
        print(f"--workers must be in 1..64, got {args.workers}", file=sys.stderr)
        return 2
    try:
        return run_video(load_settings(args.config), args.cameras, args.workers)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


def add_video_run_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` to the ``video`` command's actions."""
    r = actions.add_parser(
        "run", help="analyse live cameras in a process pool; publish findings over MQTT"
    )
    r.add_argument(
        "--cameras",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of camera YAML files, hot-reloaded (default: video.cameras_dir)",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="analysis processes (default: video.workers)",
    )
    r.set_defaults(func=_cmd_run)
