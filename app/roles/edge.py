"""``farsight edge``: run a site gateway until SIGINT or SIGTERM."""

from __future__ import annotations

from pathlib import Path

from app.lifecycle import Shutdown, run_until_stopped
from edge.remote_config import effective_config
from edge.service import EdgeService
from farsight.logs import setup_logging
from farsight.settings import read_yaml


def run_edge(path: Path) -> int:
    """Run the gateway of ``gateway.yaml``; its collectors, uplink and buffer stop with it."""
    raw = read_yaml(Path(path)) or {}
    config = effective_config(raw, str(path))
    setup_logging(config.log_level)
    service = EdgeService(config, raw)
    shutdown = Shutdown()
    shutdown.on_close("gateway", service.stop)
    service.start()
    run_until_stopped(shutdown)
    return 0
