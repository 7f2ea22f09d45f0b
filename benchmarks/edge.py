"""Edge gateway figures: durable buffered writes per second, replay rate after an outage, and
buffer bytes per reading.

- **Buffered writes/s**: messages submitted one at a time (as the local MQTT collector does, one
  per received message) until the last one's commit callback has run, with ``synchronous=FULL``
  (every group commit fsynced: each message survives a power cut before it is acknowledged).
- **Replay rate**: the buffer holds the backlog of an outage; the uplink then connects to a real
  mosquitto (deploy/mosquitto.conf) and forwards it as signed batches, QoS 1, while a subscriber
  on the same broker receives them. The figure is messages per second until every batch has been
  acknowledged by the broker (PUBACK) and deleted from the buffer, and the subscriber has them.
- **Bytes per reading**: the buffer file's size (after a WAL checkpoint) over the rows it holds.

Each message is one device's JSON reading of one metric on ``fs/v1/env/{site}/{device}/reading``.

    .venv/bin/python benchmarks/edge.py [--messages 50000] [--devices 200]

The last line printed is the figure.
"""

from __future__ import annotations

import os
import sys

# benchmarks/queue.py shares its name with the standard library's queue module: this folder must
# not be first on the import path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import json
import secrets
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.batch import decode_batch
from edge.buffer import Buffer
from edge.config import BufferSettings, parse_gateway_config
from edge.uplink import Uplink
from farsight.broker import MosquittoBroker

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def messages(n: int, devices: int) -> list[tuple[str, bytes]]:
    out = []
    for k in range(n):
        d = k % devices
        ts = (T0 + timedelta(seconds=k // devices)).isoformat()
        out.append(
            (
                f"fs/v1/env/site-{d // 10}/dev-{d}/reading",
                json.dumps(
                    {
                        "ts": ts,
                        "metrics": {"pm25": round(20 + (k * 7919 % 1000) / 100, 2)},
                        "seq": k // devices,
                    }
                ).encode(),
            )
        )
    return out


def buffered_writes(path: Path, msgs: list[tuple[str, bytes]]) -> float:
    buf = Buffer(path, BufferSettings(synchronous="FULL", max_bytes=1024**3))
    done = threading.Event()
    left = [len(msgs)]
    lock = threading.Lock()

    def cb(_flags: list[bool]) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    t0 = time.perf_counter()
    for item in msgs:
        buf.submit([item], cb)
    assert done.wait(300), "writes did not complete"
    elapsed = time.perf_counter() - t0
    buf.close()
    return len(msgs) / elapsed


def bytes_per_reading(path: Path) -> float:
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = con.execute("SELECT COUNT(*) FROM buffer").fetchone()[0]
    con.close()
    size = path.stat().st_size + (
        path.with_name(path.name + "-wal").stat().st_size
        if path.with_name(path.name + "-wal").exists()
        else 0
    )
    return size / rows


def replay(path: Path, n: int, broker: MosquittoBroker) -> float:
    key = secrets.token_bytes(32)
    cfg = parse_gateway_config(
        {
            "gateway_id": "bench-gw",
            "data_dir": str(path.parent),
            "buffer": {"path": str(path)},
            "uplink": {"host": broker.host, "port": broker.port, "batch_max": 500, "inflight": 16},
        }
    )
    received = [0]
    got_all = threading.Event()

    def on_message(c, userdata, msg) -> None:
        received[0] += len(decode_batch(msg.payload, key).messages)
        if received[0] >= n:
            got_all.set()

    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-hub")
    sub.on_message = on_message
    sub.on_connect = lambda c, *a: c.subscribe("fs/v1/gw/bench-gw/batch", qos=1)
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    time.sleep(0.5)  # let the subscription settle before timing (not a wait for the result)
    buf = Buffer(path, cfg.buffer)
    assert buf.depth == n, (buf.depth, n)
    up = Uplink(cfg, buf, key)
    t0 = time.perf_counter()
    up.start()
    deadline = time.monotonic() + 300
    while (buf.depth > 0 or not got_all.is_set()) and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    assert buf.depth == 0 and received[0] >= n, (buf.depth, received[0])
    up.stop()
    buf.close()
    sub.disconnect()
    sub.loop_stop()
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=200)
    args = ap.parse_args()
    msgs = messages(args.messages, args.devices)
    raw = sum(len(t) + len(p) for t, p in msgs) / len(msgs)
    with tempfile.TemporaryDirectory(prefix="farsight-edge-bench-") as tmp:
        path = Path(tmp) / "buffer.db"
        writes = buffered_writes(path, msgs)
        print(
            f"buffered writes: {writes:,.0f} messages/s durable (synchronous=FULL, group commit),"
            f" {len(msgs):,} messages"
        )
        per = bytes_per_reading(path)
        print(
            f"buffer size: {per:,.0f} bytes per reading on disk ({raw:,.0f} bytes of topic and"
            " payload)"
        )
        broker = MosquittoBroker(data_dir=Path(tmp) / "mosquitto")
        try:
            rate = replay(path, len(msgs), broker)
        finally:
            broker.close()
        print(
            f"replay after an outage: {rate:,.0f} messages/s to mosquitto (signed batches of 500,"
            " QoS 1, PUBACK, deleted)"
        )
    print(
        f"edge: {writes:,.0f} buffered writes/s, replay {rate:,.0f} msg/s, {per:,.0f} bytes/reading"
    )


if __name__ == "__main__":
    main()
