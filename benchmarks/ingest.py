"""Ingest throughput: MQTT (QoS 1, mosquitto with deploy/mosquitto.conf) to stored and
rule-evaluated readings, for 1,000 devices, against a bare paho subscriber on such a broker.

Both consumers are measured the same way: their persistent session is registered, they go
away, every message is published and acknowledged by the broker, then they reconnect and
drain the queue. The figure is readings drained per second, so the publisher's speed does not enter
it.
Each message is one air-quality analyser's report of six metrics (PM2.5, PM10, SO2, NO2,
O3, CO), as the demo's stations send; messages per second are printed beside it.

Ingest runs on the open broker and on each broker set up as a deployment should be
(:data:`SECURED`), in turn, ``--repeat`` rounds; the best run of each counts, and each secured one
is printed as a ratio to the open one. On the open broker each round also runs ingest with the
door's checks off (admission: payload and metric caps, registered metrics, physical ranges; the
measure-time checks: future skew, backfill horizon; the HJ 212 MN/PW checks, which these JSON
readings do not reach) against the same broker, interleaved with the run with checks on (off, on
in one round, on, off in the next, so a slow start or a drift of the machine weighs on both); the
medians of the two are printed with their ratio. The checks are turned off through
``IngestService(checks=False)``, a constructor argument and not a setting. The last line printed
is the figure, with those ratios on it. The secured brokers:

* TLS: a TLS-only listener (private CA from farsight.pki) that requires a client certificate and
  takes it as the user name; ingest and the publisher share one certificate;
* auth+ACL+TLS: a deployment's broker. A TLS-only listener, ``allow_anonymous false``, the
  password and ACL files ``farsight devices sync`` writes from the registry and a credential
  store, ``use_username_as_clientid``; ingest connects as ``farsight-ingest`` with its password,
  and every message is published through a connection of the device it is for, as that device
  (the ACL lets a device publish only its own topics). Before each run the script checks that
  the broker refuses an anonymous client and drops what a device publishes on another device's
  topic, so the figure cannot come from an open broker.

    .venv/bin/python benchmarks/ingest.py [--devices 1000] [--per-device 40] [--repeat 3]
        [--checks-only]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt

from app.roles.ingest import IngestService
from farsight import pki
from farsight.broker import BrokerAuth, MosquittoBroker, TlsListener
from farsight.broker_acl import write_broker_files
from farsight.credentials import (
    INGEST,
    CredentialStore,
    Secret,
    registry_identities,
    username_of_topic,
)
from farsight.credit import make_credit_code
from farsight.mqttclient import (
    PublishTracker,
    anonymous_accepted,
    connect,
    make_client,
    session_connect_kwargs,
    wait_connected,
)
from farsight.registry import Registry, parse_registry
from farsight.settings import BrokerSettings, Settings

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


def publish_all(settings: BrokerSettings, msgs: list[tuple[str, bytes]]) -> None:
    """Every message through one connection, acknowledged by the broker."""
    pub = make_client(settings, "bench-publisher", persistent=False)
    tracker = PublishTracker(pub)
    connect(pub, settings, persistent=False)
    wait_connected(pub)
    for topic, payload in msgs:
        tracker.add(pub.publish(topic, payload, qos=1))
    if not tracker.wait(300):
        raise SystemExit("broker did not acknowledge every publish")
    pub.disconnect()
    pub.loop_stop()


class Pump:
    """Drives many paho clients from this thread: no loop thread per client, so a thousand
    device connections cost a thousand sockets, not a thousand threads."""

    def __init__(self, clients: Iterable[mqtt.Client]) -> None:
        self.clients = list(clients)
        self.selector = selectors.DefaultSelector()
        for c in self.clients:
            self.selector.register(c.socket(), selectors.EVENT_READ, c)

    def _read(self, c: mqtt.Client) -> None:
        rc = c.loop_read(max_packets=100)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            # A refused CONNECT ends here too: paho drops the connection on its CONNACK.
            raise SystemExit(f"publisher {c.username!r} lost its connection: {rc.name}")

    def step(self, timeout: float = 0.0) -> None:
        """Read what the broker sent (waiting up to ``timeout`` seconds for it), write what
        is pending."""
        for key, _ in self.selector.select(timeout):
            self._read(key.data)
        for c in self.clients:
            if c.want_write():
                c.loop_write()
            sock = c.socket()
            # Records TLS has decrypted already: select() does not see them.
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                self._read(c)

    def run(self, done: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
        """Step until ``done()``; exit naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise SystemExit(f"publishers: {what} not done after {timeout:.0f} s")
            self.step(0.05)

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()  # written at once; paho closes the socket after it
        self.selector.close()


def publish_as_devices(
    settings: BrokerSettings, secrets: Mapping[str, Secret], msgs: list[tuple[str, bytes]]
) -> None:
    """Every message through a connection of the device it is for, as that device (its user
    name and password), in the order of ``msgs``, all acknowledged by the broker."""
    users = list(dict.fromkeys(username_of_topic(topic) or topic for topic, _ in msgs))
    refused: list[str] = []
    connected = acked = 0

    def on_connect(c: mqtt.Client, user: str, flags: Any, rc: Any, props: Any) -> None:
        nonlocal connected
        if rc.is_failure:
            refused.append(f"{user}: {rc}")
        connected += 1

    def on_publish(c: mqtt.Client, user: str, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1

    clients: dict[str, mqtt.Client] = {}
    for user in users:
        if user not in secrets:
            raise SystemExit(f"no secret for {user!r}: it cannot publish on its own topics")
        device = settings.model_copy(update={"username": user, "password": secrets[user].password})
        c = make_client(device, user, persistent=False)
        c.user_data_set(user)
        c.on_connect, c.on_publish = on_connect, on_publish
        # Blocking until TLS is up; the CONNACK is read by the pump below.
        c.connect(device.host, device.port, **session_connect_kwargs(device, persistent=False))
        clients[user] = c
    pump = Pump(clients.values())
    try:
        pump.run(lambda: connected == len(clients), "CONNACKs", timeout=120)
        if refused:
            raise SystemExit(f"the broker refused {len(refused)} devices, e.g. {refused[0]}")
        for k, (topic, payload) in enumerate(msgs):
            clients[username_of_topic(topic) or topic].publish(topic, payload, qos=1)
            if k % 1000 == 999:  # read PUBACKs, finish writes a full socket buffer held back
                pump.step()
        pump.run(lambda: acked == len(msgs), "PUBACKs")
    finally:
        pump.close()


def bare_paho(settings: BrokerSettings, msgs: list[tuple[str, bytes]]) -> float:
    """A paho subscriber that only counts: the ceiling for any Python consumer here."""
    n = len(msgs)
    count = 0
    done, subscribed = threading.Event(), threading.Event()

    def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    def client() -> mqtt.Client:
        c = make_client(settings, "bench-bare", persistent=True)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("fs/v1/+/+/+/reading", qos=1)
        c.on_subscribe = lambda cl, u, mid, rcs, p: subscribed.set()
        c.on_message = on_message
        return c

    c = client()
    connect(c, settings)
    if not subscribed.wait(10):  # the session holds the subscription before it goes away
        raise SystemExit("bare subscriber: no SUBACK")
    c.disconnect()
    c.loop_stop()
    publish_all(settings, msgs)
    start = time.perf_counter()
    c = client()
    connect(c, settings)
    if not done.wait(600):
        raise SystemExit(f"bare subscriber got {count}/{n}")
    elapsed = time.perf_counter() - start
    c.disconnect()
    c.loop_stop()
    return n / elapsed


@dataclass(frozen=True)
class BrokerSetup:
    """One way to run the broker and its clients: keyword options of :class:`MosquittoBroker`,
    ingest's ``broker`` settings besides host and port (``tls``, ``username``, ``password``) and
    its other settings; with ``devices``, each message is published as the device it is for
    (``device_client``: the devices' ``broker`` settings besides host, port and credentials),
    else through one connection with ingest's ``broker`` settings."""

    name: str
    broker_options: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    devices: Mapping[str, Secret] = field(default_factory=dict)
    device_client: dict[str, Any] = field(default_factory=dict)


def broker_settings(broker: MosquittoBroker, client: dict[str, Any]) -> BrokerSettings:
    return BrokerSettings.model_validate(
        {"host": broker.host, "port": broker.port, "embedded": "none", **client}
    )


def settings_for(broker: MosquittoBroker, data_dir: Path, setup: BrokerSetup) -> Settings:
    return Settings.model_validate(
        {
            **setup.settings,
            "data_dir": str(data_dir),
            "broker": broker_settings(broker, setup.client).model_dump(),
        }
    )


def publish(setup: BrokerSetup, broker: MosquittoBroker, msgs: list[tuple[str, bytes]]) -> None:
    if setup.devices:
        publish_as_devices(broker_settings(broker, setup.device_client), setup.devices, msgs)
    else:
        publish_all(broker_settings(broker, setup.client), msgs)


@dataclass(frozen=True)
class Run:
    """One ingest run: messages per second drained, and CPU time per message of ingest's process
    and of the broker over the drain (less disturbed than the rate by other work on the
    machine; the broker's None where /proc is not there to read)."""

    rate: float
    ingest_cpu_us: float
    broker_cpu_us: float | None
    summary: str

    def cpu(self) -> str:
        broker = "" if self.broker_cpu_us is None else f", broker {self.broker_cpu_us:.0f} µs"
        return f"CPU per message: ingest {self.ingest_cpu_us:.0f} µs{broker}"


def cpu_seconds(pid: int | None) -> float | None:
    """User and system CPU time process ``pid`` has used, from /proc (Linux); None elsewhere."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold blanks
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def farsight_ingest(
    settings: Settings,
    registry: Registry,
    send: Callable[[], None],
    expected: int,
    broker_pid: int | None,
    checks: bool = True,
) -> tuple[Run, IngestService]:
    """How fast ingest drains its persistent session once ``send`` has filled it with
    ``expected`` messages of :data:`METRICS`; ``checks=False``: with the door's checks off."""
    svc = IngestService(settings, registry, checks=checks)
    svc.start()
    svc.stop()
    send()
    svc = IngestService(settings, registry, checks=checks)
    base = svc.readings.count()
    broker_before, cpu_before = cpu_seconds(broker_pid), time.process_time()
    start = time.perf_counter()
    svc.start()
    deadline = start + 600
    readings = expected * len(METRICS)
    while svc.readings.count() - base < readings:
        if time.perf_counter() > deadline:
            raise SystemExit(f"ingest stored {svc.readings.count() - base}/{readings}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    cpu, broker_after = time.process_time() - cpu_before, cpu_seconds(broker_pid)
    broker = None
    if broker_before is not None and broker_after is not None:
        broker = (broker_after - broker_before) / expected * 1e6
    summary = (
        f"{len(svc.engine.rules)} rules, {svc.alerts.list()[1]} alerts,"
        f" {svc.readings.dead_letter_count()} dead letters,"
        f" {svc.pipeline.stats.past_horizon} readings past the backfill horizon"
    )
    return Run(expected / elapsed, cpu / expected * 1e6, broker, summary), svc


def _broker_pki(directory: Path) -> tuple[pki.Issued, pki.Issued]:
    """A private CA and the broker's certificate for 127.0.0.1."""
    ca = pki.init_ca(directory)
    return ca, pki.issue_server(directory, "broker", ip_addresses=["127.0.0.1"])


def tls_setup(directory: Path, registry: Registry) -> BrokerSetup:
    """TLS only, a client certificate required and taken as the user name: a private CA, the
    broker's certificate and one client certificate (ingest and the publisher share it)."""
    ca, server = _broker_pki(directory / "pki")
    client = pki.issue_client(directory / "pki", "bench")
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


def auth_acl_tls_setup(directory: Path, registry: Registry) -> BrokerSetup:
    """A deployment's broker: credentials for every identity of ``registry`` in a credential
    store, mosquitto's password and ACL files written from them, a TLS-only listener; ingest
    as ``farsight-ingest`` with its password, each device with its own."""
    store = CredentialStore(directory / "trust" / "credentials.json")
    secrets = {s.username: s for s in store.issue_missing(registry)}
    auth = BrokerAuth(
        directory / "trust" / "mosquitto.passwd", directory / "trust" / "mosquitto.acl"
    )
    files = write_broker_files(store, registry, auth.password_file, auth.acl_file)
    if files.missing:
        raise SystemExit(f"no credentials for {', '.join(files.missing[:5])}")
    ca, server = _broker_pki(directory / "pki")
    tls = {"enabled": True, "ca_file": ca.cert}
    devices = {
        i.username: secrets[i.username] for i in registry_identities(registry) if i.kind == "device"
    }
    return BrokerSetup(
        "auth+ACL+TLS",
        {"auth": auth, "tls": TlsListener(ca.cert, server.cert, server.key, only=True)},
        {"tls": tls, "username": INGEST, "password": secrets[INGEST].password},
        # Ingest checks HJ 212 PWs against the store, as deployed (these readings are JSON).
        {"ingest": {"client_id": INGEST}, "credentials": {"store_file": str(store.path)}},
        devices,
        {"tls": tls},
    )


SECURED: tuple[Callable[[Path, Registry], BrokerSetup], ...] = (tls_setup, auth_acl_tls_setup)
"""The broker set-ups measured against the open one."""


def check_enforced(setup: BrokerSetup, broker: MosquittoBroker) -> None:
    """Exit unless the broker refuses anonymous clients and, with ``setup.devices``, drops what
    a device publishes on another device's topic: a secured figure is never an open broker's."""
    ingest = broker_settings(broker, setup.client)
    if anonymous_accepted(ingest) is not False:
        raise SystemExit(f"{setup.name}: the broker did not refuse an anonymous client")
    if len(setup.devices) < 2:
        return
    (own, secret), (other, _) = list(setup.devices.items())[:2]
    got: list[str] = []
    subscribed = threading.Event()
    # Ingest's identity and filter, in a clean session: gone before ingest makes its own.
    probe = make_client(ingest, INGEST, persistent=False)
    probe.on_connect = lambda c, u, f, rc, p: c.subscribe("fs/v1/#", qos=1)
    probe.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    probe.on_message = lambda c, u, m: got.append(m.topic)
    connect(probe, ingest, persistent=False)
    device = broker_settings(broker, setup.device_client).model_copy(
        update={"username": own, "password": secret.password}
    )
    pub = make_client(device, own, persistent=False)
    tracker = PublishTracker(pub)
    connect(pub, device, persistent=False)
    try:
        wait_connected(pub)
        if not subscribed.wait(10):
            raise SystemExit(f"{setup.name}: ingest's identity could not subscribe")
        forged, mine = f"fs/v1/{other}/reading", f"fs/v1/{own}/reading"
        # One connection keeps order: once the device's own message is through, the forged
        # one, published first, would have been too.
        tracker.add(pub.publish(forged, b"{}", qos=1))
        tracker.add(pub.publish(mine, b"{}", qos=1))
        deadline = time.monotonic() + 10
        while mine not in got:
            if time.monotonic() > deadline:
                raise SystemExit(f"{setup.name}: {own}'s own message did not reach ingest")
            time.sleep(0.01)
        if forged in got:
            raise SystemExit(f"{setup.name}: {own} published on {other}'s topic")
    finally:
        for c in (pub, probe):
            c.disconnect()
            c.loop_stop()


def run_ingest(
    setup: BrokerSetup,
    tmp: Path,
    registry: Registry,
    msgs: list[tuple[str, bytes]],
    checks: Sequence[bool] = (True,),
) -> list[Run]:
    """Ingest through one broker of ``setup``, once per entry of ``checks`` (whether the door's
    checks are on), in that order, each run into a database of its own."""
    broker = MosquittoBroker(data_dir=tmp / "mosquitto", **setup.broker_options)
    runs = []
    try:
        if setup.broker_options:
            check_enforced(setup, broker)
        for i, on in enumerate(checks):
            settings = settings_for(broker, tmp / f"var-{i}", setup)
            run, svc = farsight_ingest(
                settings,
                registry,
                lambda: publish(setup, broker, msgs),
                len(msgs),
                broker.pid,
                checks=on,
            )
            svc.stop()
            runs.append(run)
    finally:
        broker.close()
    return runs


def best_of(runs: list[Run]) -> Run:
    """The fastest run's rate and summary, and the least CPU per message of any run."""
    fastest = max(runs, key=lambda r: r.rate)
    brokers = [r.broker_cpu_us for r in runs if r.broker_cpu_us is not None]
    return Run(
        fastest.rate,
        min(r.ingest_cpu_us for r in runs),
        min(brokers) if brokers else None,
        fastest.summary,
    )


@dataclass(frozen=True)
class ChecksCost:
    """Ingest on one broker with the door's checks on and off: the median rate and CPU per
    message of each (interleaved runs)."""

    on: list[Run]
    off: list[Run]

    @property
    def rate_on(self) -> float:
        return statistics.median(r.rate for r in self.on)

    @property
    def rate_off(self) -> float:
        return statistics.median(r.rate for r in self.off)

    @property
    def ratio(self) -> float:
        """Rate with checks on over rate with checks off: 0.90 is a 10 % drop."""
        return self.rate_on / self.rate_off

    @property
    def cpu_on(self) -> float:
        return statistics.median(r.ingest_cpu_us for r in self.on)

    @property
    def cpu_off(self) -> float:
        return statistics.median(r.ingest_cpu_us for r in self.off)

    def line(self) -> str:
        return (
            f"checks on vs off (open broker, median of {len(self.on)} interleaved runs each):"
            f" on {self.rate_on:,.0f} messages/s, off {self.rate_off:,.0f} messages/s,"
            f" on/off {self.ratio:.2f}; ingest CPU per message on {self.cpu_on:.0f} µs,"
            f" off {self.cpu_off:.0f} µs, on/off {self.cpu_on / self.cpu_off:.2f}"
        )


def checks_order(round_no: int) -> tuple[bool, ...]:
    """Checks on or off, per run of round ``round_no`` on the open broker: off then on, then on
    then off in the next round, so neither always runs first on a fresh broker."""
    return (False, True) if round_no % 2 == 0 else (True, False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-device", type=int, default=40)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of ingest runs, each broker set-up in turn; the best of each is reported "
        "(a shared machine slows some runs: the best is the least disturbed); on the open broker "
        "each round runs with the checks off and on, whose medians are compared",
    )
    ap.add_argument(
        "--checks-only",
        action="store_true",
        help="only the open broker's runs with the checks off and on (no bare paho, no secured "
        "brokers); the last line is their comparison",
    )
    args = ap.parse_args()
    registry = parse_registry(registry_doc(args.devices))
    msgs = messages(args.devices, args.per_device)
    checks_off: list[Run] = []
    bare = 0.0
    with tempfile.TemporaryDirectory(prefix="farsight-bench-") as tmp:
        root = Path(tmp)
        setups = [BrokerSetup("open")]
        if not args.checks_only:
            broker = MosquittoBroker(data_dir=root / "bare" / "mosquitto")
            try:
                bare = bare_paho(broker_settings(broker, {}), msgs)
            finally:
                broker.close()
            print(f"bare paho subscriber: {bare:,.0f} messages/s ({len(msgs)} messages)")
            setups += [make(root / make.__name__, registry) for make in SECURED]
        runs: dict[str, list[Run]] = {setup.name: [] for setup in setups}
        for k in range(max(1, args.repeat)):
            for setup in setups:
                order = checks_order(k) if setup.name == "open" else (True,)
                done = run_ingest(setup, root / f"{setup.name}-{k}", registry, msgs, order)
                for on, run in zip(order, done):
                    (runs[setup.name] if on else checks_off).append(run)
                    what = "" if on else ", checks off"
                    print(
                        f"round {k + 1}, {setup.name} broker{what}: {run.rate:,.0f} messages/s"
                        f" ({run.cpu()})",
                        flush=True,
                    )
    cost = ChecksCost(runs["open"], checks_off)
    if args.checks_only:
        print(cost.line())
        return
    best = {name: best_of(each) for name, each in runs.items()}
    open_run = best["open"]
    rate = open_run.rate
    print(
        f"farsight ingest: {rate:,.0f} messages/s = {rate * len(METRICS):,.0f} readings/s"
        " stored and rule-evaluated "
        f"({len(msgs) * len(METRICS)} readings, {args.devices} devices, {open_run.summary};"
        f" {open_run.cpu()})"
    )
    ratios = []
    for setup in setups[1:]:
        secured = best[setup.name]
        ratios.append(f"{setup.name} {secured.rate / rate:.2f}")
        print(
            f"farsight ingest with {setup.name}: {secured.rate:,.0f} messages/s ="
            f" {secured.rate * len(METRICS):,.0f} readings/s ({secured.summary});"
            f" {secured.rate / rate:.2f} of the open broker; {secured.cpu()}"
        )
    print(cost.line())
    print(
        f"ingest: {rate * len(METRICS):,.0f} readings/s end to end ({rate:,.0f} messages/s of"
        f" {len(METRICS)} metrics, "
        f"qos1, mosquitto, MQTT {BrokerSettings().protocol}); bare paho {bare:,.0f} messages/s;"
        f" ratio {rate / bare:.2f}; to the open broker: {', '.join(ratios)};"
        f" checks on/off {cost.ratio:.2f}"
        f" (ingest CPU per message on/off {cost.cpu_on / cost.cpu_off:.2f})"
    )


if __name__ == "__main__":
    main()
