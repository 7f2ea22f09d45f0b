"""``farsight simulate``: publish simulated readings of the registry's devices, or print them.

Defaults come from the settings (``simulator`` and ``broker`` sections, ``FARSIGHT__*``
variables, ``--config`` when the main parser has it); flags override them. ``--dry-run`` prints
one ``topic payload`` line per message instead of publishing: with ``--start`` and ``--seed``
given, the output is the same on every run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from farsight.errors import ConfigError


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _aware_time(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ISO 8601, e.g. 2026-11-25T08:00:00+08:00"
        ) from None
    if ts.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add one, e.g. +08:00 for Beijing time"
        )
    return ts


def add_simulate_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand to an argparse ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "simulate",
        help="publish simulated device readings playing a scripted scenario",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b = p.add_argument_group("broker (default: the broker settings)")
    b.add_argument("--host", default=None, help="MQTT broker host")
    b.add_argument("--port", type=int, default=None, help="MQTT broker port")
    b.add_argument("--username", default=None, help="MQTT username (or FARSIGHT__BROKER__USERNAME)")
    b.add_argument(
        "--password",
        default=None,
        help="MQTT password; prefer FARSIGHT__BROKER__PASSWORD, which ps cannot see",
    )
    b.add_argument(
        "--secrets",
        type=Path,
        default=None,
        metavar="FILE",
        help="devices' secrets (`farsight devices issue --out FILE`): each device connects as"
        " itself and HJ 212 frames carry its PW; needed where the broker requires credentials",
    )
    s = p.add_argument_group("simulation (default: the simulator settings)")
    s.add_argument(
        "--registry",
        type=Path,
        default=None,
        help="sites YAML (default: registry.sites_file, else the built-in demo registry)",
    )
    s.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="random seed; the same seed gives the same readings",
    )
    s.add_argument(
        "--scenario",
        default=None,
        help="scenario name (demo, quiet, exceedance, flatline, silence, overload)",
    )
    s.add_argument(
        "--interval", type=_positive_float, default=None, help="wall-clock seconds between rounds"
    )
    s.add_argument(
        "--speedup",
        type=_positive_float,
        default=None,
        help="simulated seconds per wall-clock second",
    )
    s.add_argument(
        "--rounds",
        type=_non_negative_int,
        default=None,
        help="rounds to send (default: until Ctrl-C; 1 with --dry-run)",
    )
    s.add_argument(
        "--start",
        type=_aware_time,
        default=None,
        help="simulated start, ISO 8601 with offset (default: now)",
    )
    s.add_argument(
        "--sites", default=None, help="comma-separated site ids to simulate (default: all)"
    )
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="print 'topic payload' lines instead of publishing; no pacing",
    )
    p.set_defaults(func=_cmd_simulate)
    return p


def _cmd_simulate(args: argparse.Namespace) -> int:
    """Run the ``simulate`` subcommand.

    Returns 0 on success, 1 when publishes went unacknowledged, 2 on bad input.
    """
    from farsight.credentials import read_secrets
    from farsight.errors import BrokerError, CredentialError
    from farsight.registry import load_registry
    from farsight.settings import load_settings
    from simulators.publisher import Simulator
    from simulators.scenarios import get_scenario

    settings = load_settings(getattr(args, "config", None))
    sim = settings.simulator
    registry = load_registry(
        args.registry or settings.registry.sites_file, settings.registry.departments
    )
    scenario = get_scenario(args.scenario or sim.scenario)
    seed = sim.seed if args.seed is None else args.seed
    interval = args.interval or sim.interval_s
    speedup = args.speedup or sim.speedup
    sites = [x.strip() for x in args.sites.split(",") if x.strip()] if args.sites else None
    start = args.start or datetime.now(UTC).replace(microsecond=0)
    try:
        secrets = read_secrets(args.secrets) if args.secrets is not None else None
        simulator = Simulator(
            registry,
            scenario,
            seed=seed,
            sites=sites,
            start=start,
            step_s=interval * speedup,
            secrets=secrets,
        )
    except (ValueError, CredentialError) as exc:
        print(f"farsight simulate: {exc}", file=sys.stderr)
        return 2

    if args.dry_run:
        rounds = 1 if args.rounds is None else args.rounds
        out = sys.stdout
        for k in range(rounds):
            for topic, payload in simulator.messages(simulator.round_time(k)):
                out.write(f"{topic} {payload.decode('utf-8').rstrip()}\n")
        out.flush()
        return 0

    overrides = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("username", args.username),
            ("password", args.password),
        )
        if v is not None
    }
    broker = settings.broker.model_copy(update=overrides)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C or SIGTERM ends the rounds, then the run drains what is still unacknowledged.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        stats = simulator.run(
            broker,
            start=start,
            rounds=args.rounds,
            interval_s=interval,
            speedup=speedup,
            stop_event=stop,
        )
    except ValueError as exc:  # secrets that lack a simulated device
        print(f"farsight simulate: {exc}", file=sys.stderr)
        return 2
    except BrokerError as exc:  # the broker refused the credentials
        print(f"farsight simulate: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(
        f"simulate: {stats.rounds} rounds, {stats.messages} messages, "
        f"{stats.acknowledged} acknowledged, {stats.dropped} dropped "
        f"({broker.host}:{broker.port}, scenario {scenario.name}, seed {seed})",
        file=sys.stderr,
    )
    return 0 if stats.acknowledged >= stats.messages and not stats.dropped else 1


def build_parser() -> argparse.ArgumentParser:
    """A parser with only the ``simulate`` subcommand (for ``python -m simulators.cli``)."""
    parser = argparse.ArgumentParser(prog="python -m simulators.cli")
    parser.add_argument("--config", "-c", type=Path, default=None, help="farsight.yaml")
    add_simulate_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m simulators.cli simulate ...``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
