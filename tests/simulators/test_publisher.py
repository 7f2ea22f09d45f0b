"""The simulator's messages (contract, determinism, HJ 212 frames), its MQTT publishing against a
real mosquitto (including a dropped link), and the ``simulate`` command."""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from farsight.broker import MosquittoBroker
from farsight.clock import BEIJING
from farsight.hj212 import crc16
from farsight.metrics import BY_HJ212, BY_NAME
from farsight.mqttclient import connect, make_client
from farsight.registry import load_registry
from farsight.settings import BrokerSettings
from farsight.types import HJ212_FLAGS
from simulators import cli
from simulators.devices import legal_gross_weight_t
from simulators.publisher import ST_BY_KIND, Simulator, format_ts
from tests.conftest import wait_until

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
TOPIC_RE = re.compile(
    r"^fs/v1/(?P<dept>[a-z]+)/(?P<site>[A-Za-z0-9_.-]+)/(?P<device>[A-Za-z0-9_.-]+)/(?P<kind>reading|hj212)$"
)
FRAME_RE = re.compile(rb"^##(?P<len>\d{4})(?P<seg>.*)(?P<crc>[0-9A-F]{4})\r\n$", re.DOTALL)


@pytest.fixture(scope="module")
def registry():
    return load_registry(None)


def rounds(sim: Simulator, n: int) -> list[tuple[str, bytes]]:
    return [m for k in range(n) for m in sim.messages(sim.round_time(k))]


# ------------------------------------------------------------------ determinism


def test_same_seed_same_messages_other_seed_other_messages(registry) -> None:
    a = rounds(Simulator(registry, "demo", seed=5, start=T0), 6)
    b = rounds(Simulator(registry, "demo", seed=5, start=T0), 6)
    c = rounds(Simulator(registry, "demo", seed=6, start=T0), 6)
    assert a == b
    assert a != c
    assert [t for t, _ in a if t.endswith("/hj212")] == [
        t for t, _ in c if t.endswith("/hj212")
    ]  # same devices


def test_messages_depend_on_time_not_on_call_history(registry) -> None:
    """A round's readings are a function of its time: skipping rounds changes only ``seq``."""
    full = Simulator(registry, "demo", seed=5, start=T0)
    skip = Simulator(registry, "demo", seed=5, start=T0)
    rounds(full, 4)
    late_full = full.messages(full.round_time(4))
    late_skip = skip.messages(skip.round_time(4))

    def strip_seq(msgs):
        out = []
        for topic, payload in msgs:
            if topic.endswith("/reading"):
                doc = json.loads(payload)
                doc.pop("seq")
                payload = json.dumps(doc, sort_keys=True).encode()
            out.append((topic, payload))
        return out

    assert strip_seq(late_full) == strip_seq(late_skip)


def test_start_defaults_to_the_first_round(registry) -> None:
    sim = Simulator(registry, "quiet", seed=1)
    assert sim.start is None
    sim.messages(T0)
    assert sim.start == T0 and sim.round_time(2) == T0 + timedelta(minutes=2)


def test_bad_arguments_raise_at_once(registry) -> None:
    with pytest.raises(ValueError, match="unknown site"):
        Simulator(registry, "demo", sites=["yc-aq-xiling", "atlantis"])
    with pytest.raises(ValueError, match="timezone-aware"):
        Simulator(registry, "demo", start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Simulator(registry, "demo").messages(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        Simulator(registry, "demo", step_s=0)


def test_format_ts_uses_beijing_offset_and_milliseconds_only_when_needed() -> None:
    assert format_ts(T0) == "2026-11-25T08:00:00+08:00"
    assert format_ts(T0 + timedelta(milliseconds=5)) == "2026-11-25T08:00:00.005+08:00"


# ------------------------------------------------------------------ the wire contract


def test_every_json_payload_matches_the_contract(registry) -> None:
    sim = Simulator(registry, "demo", seed=2, start=T0)
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
    kinds = Counter()
    for topic, payload in rounds(sim, 30):
        m = TOPIC_RE.match(topic)
        assert m, topic
        site = registry.get(m["site"])
        device = site.device(m["device"])
        assert m["dept"] == site.department and device is not None
        kinds[device.kind, m["kind"]] += 1
        if m["kind"] != "reading":
            continue
        doc = json.loads(payload.decode("utf-8"))
        required = {"ts", "metrics", "flags", "seq"}
        extra = {"wim": {"attrs"}, "air_quality": {"units"}}.get(device.kind, set())
        assert set(doc) == required | extra, doc
        if device.kind == "wim":
            assert set(doc["attrs"]) == {"plate"}
        if device.kind == "air_quality":
            assert doc["units"] == {"so2": "ug/m3"}  # the others match the catalogue
        ts = datetime.fromisoformat(doc["ts"])
        assert doc["ts"].endswith("+08:00") and ts.tzinfo is not None
        assert doc["metrics"] and set(doc["metrics"]) <= set(device.metrics)
        assert all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in doc["metrics"].values()
        )
        assert (
            set(doc["flags"]) == set(doc["metrics"]) and set(doc["flags"].values()) <= HJ212_FLAGS
        )
        assert isinstance(doc["seq"], int)
        seqs[site.id, device.id].append(doc["seq"])
        if device.protocol == "hj212":
            # Only what HJ 212 has no code for travels as JSON next to the frames.
            assert (
                set(doc["metrics"])
                == {m for m in device.metrics if BY_NAME[m].hj212 is None}
                == {"running"}
            )
    for key, values in seqs.items():
        assert values == list(range(1, len(values) + 1)), key
    assert {k for k, _ in kinds} == {"air_quality", "cems", "water_quality", "dust_noise", "wim"}
    assert kinds["cems", "hj212"] == kinds["cems", "reading"] == 6 * 30


def test_every_hj212_frame_is_well_formed_with_a_valid_crc(registry) -> None:
    sim = Simulator(registry, "demo", seed=2, start=T0)
    frames = 0
    for k in range(5):
        t = sim.round_time(k)
        for topic, payload in sim.messages(t):
            if not topic.endswith("/hj212"):
                continue
            m = TOPIC_RE.match(topic)
            site = registry.get(m["site"])
            device = site.device(m["device"])
            f = FRAME_RE.match(payload)
            assert f, payload
            seg = f["seg"]
            assert int(f["len"]) == len(seg)
            assert crc16(seg) == int(f["crc"], 16)
            text = seg.decode("ascii")
            header = dict(
                item.split("=", 1) for item in text[: text.index("CP=&&")].rstrip(";").split(";")
            )
            assert header["ST"] == ST_BY_KIND[device.kind] and header["CN"] == "2011"
            assert (
                header["MN"] == device.mn
                and header["Flag"] == "4"
                and re.fullmatch(r"\d{17}", header["QN"])
            )
            cp = text[text.index("CP=&&") + 5 : -2]
            items = cp.split(";")
            assert items[0] == "DataTime=" + t.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
            codes = {}
            for item in items[1:]:
                fields = dict(part.split("=", 1) for part in item.split(","))
                code = next(iter(fields)).split("-")[0]
                assert set(fields) == {f"{code}-Rtd", f"{code}-Flag"}
                assert fields[f"{code}-Flag"] in HJ212_FLAGS
                float(fields[f"{code}-Rtd"])
                codes[code] = BY_HJ212[code].name
            assert set(codes.values()) == {m for m in device.metrics if BY_NAME[m].hj212}
            frames += 1
    assert frames == 5 * 10  # six stacks and four outfalls


def test_ingest_codecs_accept_every_message(registry) -> None:
    """Cross-check with the platform's own decoders: every reading goes through, with no
    irregularity to record."""
    from ingest.codecs import get_codec

    sim = Simulator(registry, "demo", seed=3, start=T0)
    decoded = 0
    for topic, payload in rounds(sim, 10):
        m = TOPIC_RE.match(topic)
        codec = get_codec("json" if m["kind"] == "reading" else "hj212")
        result = codec.decode(payload, site=m["site"], device=m["device"])
        assert result.irregularities == (), result.irregularities
        assert result.readings
        decoded += len(result.readings)
    assert decoded > 1000


def test_site_filter_limits_the_devices(registry) -> None:
    sim = Simulator(registry, "demo", seed=1, start=T0, sites=["yc-cems-xiaoting-power"])
    msgs = sim.messages(T0)
    assert [t for t, _ in msgs] == [
        "fs/v1/env/yc-cems-xiaoting-power/cems1/hj212",
        "fs/v1/env/yc-cems-xiaoting-power/cems1/reading",
    ]
    assert sim.devices == [
        (registry.get("yc-cems-xiaoting-power"), registry.get("yc-cems-xiaoting-power").devices[0])
    ]


def test_overloaded_truck_is_published_above_its_axle_limit(registry) -> None:
    sim = Simulator(registry, "overload", seed=4, start=T0, sites=["yc-wim-g50-yichangdong"])
    trucks = [json.loads(p) for t, p in rounds(sim, 6)]
    heavy = [d for d in trucks if d["attrs"]["plate"] == "鄂E·7C215"]
    assert len(heavy) == 1
    assert heavy[0]["metrics"]["axles"] == 6 and heavy[0]["metrics"]["gross_weight"] == 61.8
    assert heavy[0]["metrics"]["gross_weight"] > legal_gross_weight_t(6)
    assert datetime.fromisoformat(heavy[0]["ts"]) == T0 + timedelta(minutes=3)
    stamps = [datetime.fromisoformat(d["ts"]) for d in trucks]
    assert stamps == sorted(set(stamps))


# ------------------------------------------------------------------ publishing to a real broker


class Subscriber:
    """A paho subscriber to ``fs/v1/#`` at QoS 1 that records every message it gets."""

    def __init__(
        self, host: str, port: int, client_id: str = "sim-test-sub", persistent: bool = False
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        settings = BrokerSettings(host=host, port=port)
        self.client = make_client(settings, client_id, persistent=persistent)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client, settings, persistent=persistent)

    def _on_connect(
        self, client: mqtt.Client, userdata, flags, reason_code, properties=None
    ) -> None:
        client.subscribe("fs/v1/#", qos=1)

    def _on_message(self, client: mqtt.Client, userdata, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(fresh_mosquitto: MosquittoBroker) -> MosquittoBroker:
    """A mosquitto of this test's own: demo exceedances published here must not reach the
    persistent sessions other tests' consumers leave on the shared broker."""
    return fresh_mosquitto


@pytest.fixture
def subscriber(broker: MosquittoBroker) -> Iterator[Subscriber]:
    sub = Subscriber(broker.host, broker.port)
    assert sub.subscribed.wait(10), "subscription not acknowledged"
    yield sub
    sub.close()


def test_every_message_of_n_rounds_arrives(registry, broker, subscriber) -> None:
    sim = Simulator(registry, "demo", seed=5)
    stats = sim.run(
        BrokerSettings(host=broker.host, port=broker.port),
        start=T0,
        rounds=4,
        interval_s=0.01,
        speedup=6000,
    )
    expected = rounds(Simulator(registry, "demo", seed=5, start=T0, step_s=60.0), 4)
    assert stats.rounds == 4 and stats.messages == len(expected) and stats.dropped == 0
    assert stats.acknowledged == stats.messages
    assert stats.by_kind["hj212"] == 4 * 10 and sum(stats.by_kind.values()) == stats.messages
    wait_until(
        lambda: len(subscriber.messages()) >= len(expected),
        what="all simulated messages at the subscriber",
    )
    assert Counter(subscriber.messages()) == Counter(expected)
    assert by_topic(subscriber.messages()) == by_topic(expected), "messages overtook each other"


def test_stop_event_ends_an_endless_run(registry, broker) -> None:
    sim = Simulator(registry, "quiet", seed=1, sites=["yc-aq-xiling"])
    stop = threading.Event()
    seen: list[int] = []

    def on_round(k: int, t: datetime, n: int) -> None:
        seen.append(k)
        if k == 2:
            stop.set()

    stats = sim.run(
        BrokerSettings(host=broker.host, port=broker.port),
        start=T0,
        rounds=None,
        interval_s=0.01,
        speedup=6000,
        stop_event=stop,
        on_round=on_round,
    )
    assert seen == [0, 1, 2] and stats.rounds == 3 and stats.acknowledged == 3


def test_backfill_rounds_go_out_at_once_then_the_wall_clock_paces_the_rest(
    registry, broker
) -> None:
    """The demo publishes its last hour of history at start: with one-hour steps every round up
    to ``catch_up_until`` is due at once, and the next one an hour later."""
    sim = Simulator(registry, "quiet", seed=1, sites=["yc-aq-xiling"])
    stop = threading.Event()
    seen: list[datetime] = []

    def on_round(k: int, t: datetime, n: int) -> None:
        seen.append(t)
        if k == 4:
            # Round 5 lies past catch_up_until: it would wait an hour. Stop instead.
            threading.Timer(0.5, stop.set).start()

    watchdog = threading.Timer(60, stop.set)  # a deadline for a broken implementation
    watchdog.start()
    try:
        stats = sim.run(
            BrokerSettings(host=broker.host, port=broker.port),
            start=T0,
            rounds=None,
            interval_s=3600,
            speedup=1,
            stop_event=stop,
            on_round=on_round,
            catch_up_until=T0 + timedelta(hours=4),
        )
    finally:
        watchdog.cancel()
    assert seen == [T0 + timedelta(hours=h) for h in range(5)]
    assert stats.rounds == 5


class LinkProxy:
    """A TCP relay between a client and the broker whose link the test can cut and restore.

    Cutting closes every relayed connection and turns new ones away, as a dropped mobile link
    does, while the broker and its other clients stay up.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()


def by_topic(messages: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    """Payloads per topic in order of first arrival (QoS 1 resends may repeat one)."""
    out: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload in messages:
        if payload not in out[topic]:
            out[topic].append(payload)
    return dict(out)


def test_publishes_survive_a_dropped_link(registry, broker, subscriber) -> None:
    """When the link drops, paho reconnects by itself and resends what was unacknowledged;
    rounds due meanwhile go out after the resends, so nothing is lost and nothing overtakes
    (duplicates are allowed: QoS 1 is at-least-once)."""
    proxy = LinkProxy(broker.host, broker.port)
    try:
        sim = Simulator(
            registry,
            "demo",
            seed=8,
            sites=["yc-aq-xiling", "yc-cems-xiaoting-power", "yc-wim-g50-yichangdong"],
        )
        n = 24
        runner = threading.Thread(
            target=sim.run,
            kwargs={
                "broker": BrokerSettings(host="127.0.0.1", port=proxy.port),
                "start": T0,
                "rounds": n,
                "interval_s": 0.1,
                "speedup": 600,
                "ack_timeout_s": 60,
            },
        )
        runner.start()
        wait_until(lambda: sim.stats.rounds >= 3, what="first rounds")
        proxy.cut()
        wait_until(
            lambda: sim.stats.disconnects >= 1 and not sim.stats.connected,
            what="the simulator noticing the cut",
        )
        proxy.restore()
        runner.join(timeout=90)
        assert not runner.is_alive()
        expected = set(
            rounds(
                Simulator(
                    registry,
                    "demo",
                    seed=8,
                    start=T0,
                    step_s=60.0,
                    sites=[s.id for s, _ in sim.devices],
                ),
                n,
            )
        )
        wait_until(
            lambda: set(subscriber.messages()) >= expected,
            timeout=30,
            what="every message after the link is back",
        )
        assert set(subscriber.messages()) == expected
        assert by_topic(subscriber.messages()) == by_topic(
            rounds(
                Simulator(
                    registry,
                    "demo",
                    seed=8,
                    start=T0,
                    step_s=60.0,
                    sites=[s.id for s, _ in sim.devices],
                ),
                n,
            )
        )
        assert sim.stats.acknowledged == sim.stats.messages == len(expected)
        assert sim.stats.disconnects == 1 and sim.stats.rounds == n
    finally:
        proxy.close()


# ------------------------------------------------------------------ the simulate command

DRY = [
    "simulate",
    "--dry-run",
    "--start",
    "2026-11-25T08:00:00+08:00",
    "--rounds",
    "3",
    "--scenario",
    "demo",
    "--interval",
    "2",
    "--speedup",
    "30",
]


def test_dry_run_prints_deterministic_lines(registry, capsys) -> None:
    assert cli.main([*DRY, "--seed", "7"]) == 0
    first = capsys.readouterr().out
    assert cli.main([*DRY, "--seed", "7"]) == 0
    assert capsys.readouterr().out == first
    assert cli.main([*DRY, "--seed", "8"]) == 0
    assert capsys.readouterr().out != first
    lines = first.splitlines()
    expected = rounds(Simulator(registry, "demo", seed=7, start=T0), 3)
    assert lines == [f"{t} {p.decode().rstrip()}" for t, p in expected]


def test_dry_run_site_filter_and_default_single_round(capsys) -> None:
    assert (
        cli.main(["simulate", "--dry-run", "--sites", "yc-aq-xiling, xg-aq-xiaonan", "--seed", "1"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "fs/v1/env/yc-aq-xiling/aq1/reading",
        "fs/v1/env/xg-aq-xiaonan/aq1/reading",
    ]


def test_bad_command_lines_are_refused(capsys) -> None:
    assert cli.main(["simulate", "--dry-run", "--sites", "atlantis"]) == 2
    assert "unknown site(s) atlantis" in capsys.readouterr().err
    assert cli.main(["simulate", "--dry-run", "--scenario", "storm"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    for bad in (
        ["--start", "2026-11-25T08:00:00"],
        ["--interval", "0"],
        ["--rounds", "-1"],
        ["--seed", "-3"],
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(["simulate", "--dry-run", *bad])
        assert exc.value.code == 2


def test_add_simulate_parser_wires_the_handler() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_simulate_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["simulate", "--host", "broker.example", "--port", "1884", "--speedup", "60"]
    )
    assert args.func is cli._cmd_simulate
    assert (args.host, args.port, args.speedup, args.rounds, args.dry_run) == (
        "broker.example",
        1884,
        60.0,
        None,
        False,
    )


def test_simulate_publishes_to_the_broker(registry, broker, subscriber) -> None:
    argv = [
        "simulate",
        "--host",
        broker.host,
        "--port",
        str(broker.port),
        "--seed",
        "9",
        "--scenario",
        "quiet",
        "--rounds",
        "2",
        "--interval",
        "0.01",
        "--speedup",
        "6000",
        "--start",
        "2026-11-25T08:00:00+08:00",
        "--sites",
        "xg-cems-linkong-power,xg-wim-g4-xiaogan",
    ]
    assert cli.main(argv) == 0
    expected = rounds(
        Simulator(
            registry,
            "quiet",
            seed=9,
            start=T0,
            sites=["xg-cems-linkong-power", "xg-wim-g4-xiaogan"],
        ),
        2,
    )
    wait_until(
        lambda: Counter(subscriber.messages()) == Counter(expected), what="the command's messages"
    )


def test_module_entry_point_runs() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulators.cli",
            "simulate",
            "--dry-run",
            "--sites",
            "yc-wim-g318-yiling",
            "--start",
            "2026-11-25T08:00:00+08:00",
            "--rounds",
            "30",
            "--seed",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert lines and all(
        line.startswith("fs/v1/transport/yc-wim-g318-yiling/wim1/reading {") for line in lines
    )
    assert all("鄂" in line or "·" in line for line in lines)
