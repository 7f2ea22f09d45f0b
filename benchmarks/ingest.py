"""Ingest throughput: MQTT (QoS 1, mosquitto with deploy/mosquitto.conf) to stored and
rule-evaluated readings, for 1,000 devices, against a bare paho subscriber on such a broker.

Both consumers are measured the same way: their persistent session is registered, they go
away, every message is published and acknowledged by the broker, then they reconnect and
drain the queue. The figure is readings drained per second, so the publisher's speed does not enter
it.
Each message is one air-quality analyser's report of six metrics (PM2.5, PM10, SO2, NO2,
O3, CO), as the demo's stations send; messages per second are printed beside it.

Ingest runs on the open broker and on each broker set up as a deployment should be
(:data:`SECURED`: TLS only, with a private CA and client certificates from farsight.pki), in
turn, ``--repeat`` rounds; the best run of each counts, and each secured one is printed as a ratio
to the open one. The last line printed is the figure, with those ratios on it.

    .venv/bin/python benchmarks/ingest.py [--devices 1000] [--per-device 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.roles.ingest import IngestService
from farsight import pki
from farsight.broker import MosquittoBroker, TlsListener
from farsight.credit import make_credit_code
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from farsight.registry import parse_registry
from farsight.settings import Settings

METRICS = ("pm25", "pm10", "so2", "no2", "o3", "co")


def registry_doc(devices: int) -> dict:
    """``devices`` air-quality analysers, ten per site."""
    sites = []
    for s in range((devices + 9) // 10):
        sites.append(
            {
                "id": f"bench-{s:04d}",
                "name": f"bench site {s}",
                "department": "env",
                "entity_id": make_credit_code(f"914205000000{s:05d}"),
                "location": {"lon": 111.3, "lat": 30.7},
                "kind": "air_quality",
                "devices": [
                    {"id": f"d{d}", "kind": "air_quality", "metrics": list(METRICS)}
                    for d in range(min(10, devices - s * 10))
                ],
            }
        )
    return {"sites": sites}


def messages(devices: int, per_device: int) -> list[tuple[str, bytes]]:
    # The last minutes up to now: ingest judges readings measured more than a day before they
    # arrive as backfill (stored, not evaluated) and refuses readings from the future, so the
    # figure is of live, rule-evaluated readings only with recent times.
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=per_device)
    out = []
    for k in range(per_device):
        ts = (start + timedelta(seconds=60 * k)).isoformat()
        for i in range(devices):
            # Every 97th device runs above the PM2.5 limit so rules do real work and fire.
            value = 120.0 if i % 97 == 0 else 20.0 + (i * 7 + k) % 30
            metrics = {
                "pm25": value,
                "pm10": value * 1.6,
                "so2": 8.0,
                "no2": 30.0 + k % 5,
                "o3": 60.0,
                "co": 0.7,
            }
            body = json.dumps({"ts": ts, "metrics": metrics, "seq": k})
            out.append((f"fs/v1/env/bench-{i // 10:04d}/d{i % 10}/reading", body.encode()))
    return out


def publish_all(settings: Settings, msgs: list[tuple[str, bytes]]) -> None:
    pub = make_client(settings.broker, "bench-publisher", persistent=False)
    tracker = PublishTracker(pub)
    connect(pub, settings.broker, persistent=False)
    wait_connected(pub)
    for topic, payload in msgs:
        tracker.add(pub.publish(topic, payload, qos=1))
    if not tracker.wait(300):
        raise SystemExit("broker did not acknowledge every publish")
    pub.disconnect()
    pub.loop_stop()


def bare_paho(settings: Settings, msgs: list[tuple[str, bytes]]) -> float:
    """A paho subscriber that only counts: the ceiling for any Python consumer here."""
    n = len(msgs)
    count = 0
    done = threading.Event()
    first: list[float] = []

    def on_message(c, u, m):
        nonlocal count
        if not first:
            first.append(time.perf_counter())
        count += 1
        if count >= n:
            done.set()

    def client():
        c = make_client(settings.broker, "bench-bare", persistent=True)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("fs/v1/+/+/+/reading", qos=1)
        c.on_message = on_message
        return c

    c = client()
    connect(c, settings.broker)
    wait_connected(c)
    time.sleep(0.2)  # let the SUBACK land before going away
    c.disconnect()
    c.loop_stop()
    publish_all(settings, msgs)
    start = time.perf_counter()
    c = client()
    connect(c, settings.broker)
    if not done.wait(600):
        raise SystemExit(f"bare subscriber got {count}/{n}")
    elapsed = time.perf_counter() - start
    c.disconnect()
    c.loop_stop()
    return n / elapsed


def farsight_ingest(
    settings: Settings, registry, msgs: list[tuple[str, bytes]]
) -> tuple[float, IngestService]:
    svc = IngestService(settings, registry)
    svc.start()
    svc.stop()
    publish_all(settings, msgs)
    svc = IngestService(settings, registry)
    base = svc.readings.count()
    start = time.perf_counter()
    svc.start()
    deadline = start + 600
    expected = len(msgs) * len(METRICS)
    while svc.readings.count() - base < expected:
        if time.perf_counter() > deadline:
            raise SystemExit(f"ingest stored {svc.readings.count() - base}/{expected}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    return len(msgs) / elapsed, svc


@dataclass(frozen=True)
class BrokerSetup:
    """One way to run the broker and its clients: keyword options of :class:`MosquittoBroker`
    and the ``broker`` settings of the clients besides host and port (``tls``, ``username``)."""

    name: str
    broker_options: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)


def tls_setup(directory: Path) -> BrokerSetup:
    """TLS only, a client certificate required and taken as the user name: a private CA, the
    broker's certificate and one client certificate (ingest and the publisher share it)."""
    directory = directory / "pki"
    ca = pki.init_ca(directory)
    server = pki.issue_server(directory, "broker", ip_addresses=["127.0.0.1"])
    client = pki.issue_client(directory, "bench")
    listener = TlsListener(
        ca.cert,
        server.cert,
        server.key,
        require_certificate=True,
        use_identity_as_username=True,
        only=True,
    )
    tls = {"enabled": True, "ca_file": ca.cert, "cert_file": client.cert, "key_file": client.key}
    return BrokerSetup("TLS", {"tls": listener}, {"tls": tls})


SECURED: tuple[Callable[[Path], BrokerSetup], ...] = (tls_setup,)
"""The broker set-ups measured against the open one. Authentication and ACLs join here as a
function that returns a :class:`BrokerSetup` with MosquittoBroker's password and ACL options and
the clients' credentials (alone, and together with TLS)."""


def run_ingest(
    setup: BrokerSetup, tmp: Path, registry, msgs: list[tuple[str, bytes]]
) -> tuple[float, str]:
    """Ingest's rate through a broker of ``setup``, in messages per second, and a summary."""
    broker = MosquittoBroker(data_dir=tmp / "mosquitto", **setup.broker_options)
    try:
        settings = settings_for(broker, tmp / "var", setup.client)
        rate, svc = farsight_ingest(settings, registry, msgs)
        summary = (
            f"{len(svc.engine.rules)} rules, {svc.alerts.list()[1]} alerts,"
            f" {svc.readings.dead_letter_count()} dead letters,"
            f" {svc.pipeline.stats.past_horizon} readings past the backfill horizon"
        )
        svc.stop()
    finally:
        broker.close()
    return rate, summary


def settings_for(broker: MosquittoBroker, data_dir: Path, client: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "broker": {"host": broker.host, "port": broker.port, "embedded": "none", **client},
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-device", type=int, default=40)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of ingest runs, each broker set-up in turn; the best of each is reported "
        "(a shared machine slows some runs: the best is the least disturbed)",
    )
    args = ap.parse_args()
    registry = parse_registry(registry_doc(args.devices))
    msgs = messages(args.devices, args.per_device)
    with tempfile.TemporaryDirectory(prefix="farsight-bench-") as tmp:
        root = Path(tmp)
        broker = MosquittoBroker(data_dir=root / "bare" / "mosquitto")
        try:
            settings = settings_for(broker, root / "bare" / "var", {})
            bare = bare_paho(settings, msgs)
        finally:
            broker.close()
        print(f"bare paho subscriber: {bare:,.0f} messages/s ({len(msgs)} messages)")
        setups = [BrokerSetup("open"), *(make(root / make.__name__) for make in SECURED)]
        best: dict[str, tuple[float, str]] = {}
        for k in range(max(1, args.repeat)):
            for setup in setups:
                run, summary = run_ingest(setup, root / f"{setup.name}-{k}", registry, msgs)
                print(f"round {k + 1}, {setup.name} broker: {run:,.0f} messages/s", flush=True)
                if run > best.get(setup.name, (0.0, ""))[0]:
                    best[setup.name] = (run, summary)
    rate, summary = best["open"]
    print(
        f"farsight ingest: {rate:,.0f} messages/s = {rate * len(METRICS):,.0f} readings/s"
        " stored and rule-evaluated "
        f"({len(msgs) * len(METRICS)} readings, {args.devices} devices, {summary})"
    )
    ratios = []
    for setup in setups[1:]:
        secured, summary = best[setup.name]
        ratios.append(f"{setup.name} {secured / rate:.2f}")
        print(
            f"farsight ingest with {setup.name}: {secured:,.0f} messages/s ="
            f" {secured * len(METRICS):,.0f} readings/s ({summary});"
            f" {secured / rate:.2f} of the open broker"
        )
    print(
        f"ingest: {rate * len(METRICS):,.0f} readings/s end to end ({rate:,.0f} messages/s of"
        f" {len(METRICS)} metrics, "
        f"qos1, mosquitto, MQTT {settings.broker.protocol}); bare paho {bare:,.0f} messages/s;"
        f" ratio {rate / bare:.2f}; to the open broker: {', '.join(ratios)}"
    )


if __name__ == "__main__":
    main()
