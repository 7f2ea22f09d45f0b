"""``farsight edge --demo``: a simulated site behind a gateway loses its uplink and catches up.

Everything runs on this machine with real parts: two mosquitto brokers (the site's and the
central one), the hub's ingest with the built-in registry, the gateway, and N simulated devices
publishing to the site broker. The central broker is stopped for ``outage_s`` seconds while the
devices keep sending, then started again; one line a second shows what was sent, what waits in
the gateway's buffer and what the hub holds, until the hub has every reading.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from app.roles.ingest import IngestService
from edge.config import parse_gateway_config
from edge.service import EdgeService
from farsight.broker import MosquittoBroker
from farsight.logs import setup_logging
from farsight.registry import load_registry
from farsight.settings import Settings
from simulators.gateway_site import SiteSimulator, SiteSpec

DEMO_SITE = ("env", "yc-aq-xiling")


def run_edge_demo(
    devices: int = 20,
    rate: float = 200.0,
    outage_s: float = 15.0,
    before_s: float = 5.0,
    after_s: float = 5.0,
) -> int:
    """Run the outage demo; returns 0 when the hub caught up with every reading."""
    setup_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="farsight-edge-demo-") as tmp:
        root = Path(tmp)
        site = MosquittoBroker(data_dir=root / "site-broker")
        central = MosquittoBroker(data_dir=root / "central-broker")
        key = secrets.token_hex(32)
        keys = root / "gateway-keys.yaml"
        keys.write_text(yaml.safe_dump({"gw-demo": key}), encoding="utf-8")
        settings = Settings.model_validate(
            {
                "data_dir": str(root / "hub"),
                "broker": {
                    "host": central.host,
                    "port": central.port,
                    "protocol": "5",
                    "embedded": "none",
                },
                "ingest": {"client_id": "edge-demo-hub"},
                "edge": {"keys_file": str(keys), "sites": {"gw-demo": DEMO_SITE[1]}},
            }
        )
        (root / "hub").mkdir()
        hub = IngestService(settings, load_registry(None, settings.registry.departments))
        hub.start()
        os.environ["FARSIGHT_EDGE_KEY"] = key
        gw_cfg = parse_gateway_config(
            {
                "gateway_id": "gw-demo",
                "data_dir": str(root / "edge"),
                "uplink": {
                    "host": central.host,
                    "port": central.port,
                    "keepalive_s": 5,
                    "reconnect_max_s": 1,
                    "backfill_after_s": 2,
                },
                "collectors": {
                    "mqtt_local": {"enabled": True, "host": site.host, "port": site.port}
                },
                "health": {"interval_s": 1},
            }
        )
        gateway = EdgeService(gw_cfg)
        gateway.start()
        while gateway.collectors["mqtt_local"].state != "connected":
            time.sleep(0.05)
        now = datetime.now(UTC).replace(microsecond=0)
        sim = SiteSimulator(
            site.host,
            site.port,
            SiteSpec(dept=DEMO_SITE[0], site=DEMO_SITE[1], devices=devices, start=now),
            client_id="edge-demo-devices",
        )
        print(
            f"\nEdge gateway demo: {devices} devices at {DEMO_SITE[1]}"
            f" -> site mosquitto :{site.port} -> gateway gw-demo"
            f" -> central mosquitto :{central.port} -> hub ingest\n"
            f"{'t':>5}  {'phase':<9} {'sent':>7} {'buffered':>8} {'at hub':>7}"
            f" {'back-filled':>11}  uplink",
            flush=True,
        )
        t0 = time.monotonic()
        sim.start(rate=rate)
        phase = "live"
        caught_up_at = None
        ok = False
        try:
            while True:
                t = time.monotonic() - t0
                if phase == "live" and t >= before_s:
                    central.stop()
                    phase, outage_start = "OUTAGE", t
                elif phase == "OUTAGE" and t >= before_s + outage_s:
                    central.start()
                    phase = "restored"
                elif phase == "restored" and t >= before_s + outage_s + after_s:
                    sim.stop()
                    sim.wait_acked(30)
                    phase = "draining"
                st = gateway.buffer.stats()
                edge = hub.edge.gateways() if hub.edge is not None and phase != "OUTAGE" else []
                at_hub = hub.readings.count(site=DEMO_SITE[1])
                back = edge[0]["backfilled"] if edge else 0
                print(
                    f"{t:5.1f}  {phase:<9} {sim.total_acked:>7,} {st.depth:>8,} {at_hub:>7,}"
                    f" {back:>11,}  {'up' if gateway.uplink.connected else 'down'}",
                    flush=True,
                )
                if phase == "draining" and at_hub == sim.total_acked and st.depth == 0:
                    caught_up_at = t
                    ok = True
                    break
                if t > before_s + outage_s + after_s + 120:
                    break
                time.sleep(1.0)
        finally:
            sim.close()
            gateway.stop()
            hub.stop()
            site.close()
            central.close()
        if ok and caught_up_at is not None:
            print(
                f"\ncaught up: the hub holds all {sim.total_acked:,} readings exactly once;"
                f" {back:,} arrived back-filled (late data) after the {outage_s:g} s outage;"
                f" done {caught_up_at - outage_start - outage_s:.1f} s after the link returned."
            )
        else:
            print("\nthe hub did not catch up within two minutes", flush=True)
        return 0 if ok else 1


def run_from_args(args: argparse.Namespace) -> int:
    """``farsight edge --demo [--devices N] [--rate R] [--outage S]``."""
    return run_edge_demo(devices=args.devices, rate=args.rate, outage_s=args.outage)
