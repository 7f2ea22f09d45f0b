"""``farsight hub``: serve the API, live stream and dashboard until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging

from app.lifecycle import Shutdown, stop_on_signals
from farsight.logs import kv, setup_logging
from farsight.registry import load_registry
from farsight.settings import load_settings
from hub.app import create_app, make_server

log = logging.getLogger("farsight.hub")


def _cmd_hub(args: argparse.Namespace) -> int:
    """Serve the hub until SIGINT or SIGTERM; exit 0 after a requested stop, as every role does.

    uvicorn handles the signal (it closes the live streams, waits for requests in flight, then
    the app's lifespan closes the stores) and raises it again once stopped, to the handlers it
    found: ours, which only note the stop, rather than the defaults, which would end the process
    by the signal (SIGTERM) or with a KeyboardInterrupt (SIGINT)."""
    settings = load_settings(getattr(args, "config", None))
    setup_logging(settings.logging.level)
    registry = load_registry(settings.registry.sites_file, settings.registry.departments)
    host = args.host or settings.hub.host
    port = args.port if args.port is not None else settings.hub.port
    app = create_app(settings, registry)
    scheme = "https" if settings.hub.tls else "http"
    log.info("hub listening", extra=kv(url=f"{scheme}://{host}:{port}/", db=settings.db_path))
    with stop_on_signals(Shutdown()):
        make_server(app, host, port).run()
    return 0


def add_hub_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``hub`` command to the main CLI."""
    hub = subparsers.add_parser(
        "hub",
        help="serve the API, live stream and dashboard",
        description="Serve the hub on settings.hub.host:port until interrupted (HTTPS when "
        "settings hub.tls_certfile and hub.tls_keyfile are set).",
    )
    hub.add_argument("--host", default=None, help="listen address (default: settings hub.host)")
    hub.add_argument(
        "--port", type=int, default=None, help="listen port (default: settings hub.port)"
    )
    hub.set_defaults(func=_cmd_hub)
