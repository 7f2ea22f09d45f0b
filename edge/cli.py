"""``farsight edge``: run a site gateway, or check its configuration."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

RunGateway = Callable[[Path], int]
"""Runs the gateway of a configuration file until it is told to stop (the process role)."""
RunDemo = Callable[[argparse.Namespace], int]
"""Runs ``--demo`` with the parsed arguments (it needs brokers, a hub and simulators)."""


def _cmd_edge(args: argparse.Namespace) -> int:
    from edge.config import GatewayConfig, load_gateway_config

    if args.demo:
        return int(args.run_demo(args))
    if args.schema:
        print(json.dumps(GatewayConfig.model_json_schema(), indent=2, ensure_ascii=False))
        return 0
    path = args.gateway_config or args.config
    if path is None:
        print("farsight edge: give the gateway configuration: farsight edge --config gateway.yaml")
        return 2
    if args.check:
        cfg = load_gateway_config(path)
        print(f"gateway configuration ok: {path}; gateway {cfg.gateway_id}, version {cfg.version}")
        return 0
    return int(args.run_gateway(Path(path)))


def add_edge_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    run_gateway: RunGateway,
    run_demo: RunDemo,
) -> None:
    """Add the ``edge`` subcommand to an argparse ``add_subparsers()`` object; the composition
    root passes what runs the gateway and the demo."""
    p = subparsers.add_parser(
        "edge",
        help="run a site gateway: collect, buffer durably, forward to the hub",
        description="Run a site gateway: collectors (local MQTT, HJ 212 over TCP), a durable "
        "store-and-forward buffer, signed batches to the central broker, heartbeat "
        "and remote configuration.",
    )
    # The main parser's --config names farsight.yaml; `farsight edge --config gateway.yaml` puts it
    # after the subcommand, where this option takes it.
    p.add_argument(
        "--config", "-c", dest="gateway_config", type=Path, default=None, help="gateway.yaml"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration, print every error and exit",
    )
    p.add_argument(
        "--schema", action="store_true", help="print the configuration's JSON schema and exit"
    )
    d = p.add_argument_group(
        "demo: a simulated site loses its uplink and catches up (starts its own brokers and hub)"
    )
    d.add_argument("--demo", action="store_true", help="run the outage demo instead of a gateway")
    d.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    d.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="readings per second from all devices (default 200)",
    )
    d.add_argument(
        "--outage", type=float, default=15.0, help="seconds the uplink is down (default 15)"
    )
    p.set_defaults(func=_cmd_edge, run_gateway=run_gateway, run_demo=run_demo)
