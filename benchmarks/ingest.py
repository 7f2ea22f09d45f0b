"""Ingest throughput: MQTT (QoS 1, mosquitto with deploy/mosquitto.conf) to stored and
rule-evaluated readings, for 1,000 devices, against a bare paho subscriber on the same broker.

Both consumers are measured the same way: their persistent session is registered, they go
away, every message is published and acknowledged by the broker, then they reconnect and
drain the queue. The figure is readings drained per second, so the publisher's speed does not enter
it.
Each message is one air-quality analyser's report of six metrics (PM2.5, PM10, SO2, NO2,
O3, CO), as the demo's stations send; messages per second are printed beside it. The last
line printed is the figure.

    .venv/bin/python benchmarks/ingest.py [--devices 1000] [--per-device 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.roles.ingest import IngestService
from farsight.broker import MosquittoBroker
from farsight.credit import make_credit_code
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from farsight.registry import parse_registry
from farsight.settings import Settings

T0 = datetime(2026, 11, 25, tzinfo=UTC)
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
    out = []
    for k in range(per_device):
        ts = (T0 + timedelta(seconds=60 * k)).isoformat()
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-device", type=int, default=40)
    args = ap.parse_args()
    registry = parse_registry(registry_doc(args.devices))
    msgs = messages(args.devices, args.per_device)
    with tempfile.TemporaryDirectory(prefix="farsight-bench-") as tmp:
        broker = MosquittoBroker(data_dir=Path(tmp) / "mosquitto")
        try:
            settings = Settings.model_validate(
                {
                    "data_dir": str(Path(tmp) / "var"),
                    "broker": {"host": broker.host, "port": broker.port, "embedded": "none"},
                }
            )
            bare = bare_paho(settings, msgs)
            print(f"bare paho subscriber: {bare:,.0f} messages/s ({len(msgs)} messages)")
            rate, svc = farsight_ingest(settings, registry, msgs)
            open_alerts = svc.alerts.list()[1]
            print(
                f"farsight ingest: {rate:,.0f} messages/s = {rate * len(METRICS):,.0f} readings/s"
                " stored and rule-evaluated "
                f"({len(msgs) * len(METRICS)} readings, {args.devices} devices,"
                f" {len(svc.engine.rules)} rules, "
                f"{open_alerts} alerts, {svc.readings.dead_letter_count()} dead letters)"
            )
            svc.stop()
        finally:
            broker.close()
    print(
        f"ingest: {rate * len(METRICS):,.0f} readings/s end to end ({rate:,.0f} messages/s of"
        f" {len(METRICS)} metrics, "
        f"qos1, mosquitto, MQTT {settings.broker.protocol}); bare paho {bare:,.0f} messages/s;"
        f" ratio {rate / bare:.2f}"
    )


if __name__ == "__main__":
    main()
