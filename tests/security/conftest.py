"""A real mosquitto running on the password and ACL files made from a small registry and its
credential store, and MQTT clients that record what the broker answers them."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from farsight.broker import BrokerAuth, MosquittoBroker
from farsight.broker_acl import write_broker_files
from farsight.credentials import CredentialStore, Secret
from farsight.credit import make_credit_code
from farsight.registry import Registry, parse_registry

DEADLINE_S = 10.0


def registry_doc() -> dict[str, Any]:
    """Two departments, four sites, a JSON sensor, an HJ 212 data logger, a camera, a weigh
    station, and two gateways."""

    def site(sid: str, dept: str, devices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": sid,
            "name": f"site {sid}",
            "department": dept,
            "entity_id": make_credit_code("91420500MA4900001"),
            "location": {"lon": 111.3, "lat": 30.7},
            "devices": devices,
        }

    return {
        "departments": ["env", "transport"],
        "sites": [
            site("s-air", "env", [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25"]}]),
            site(
                "s-stack",
                "env",
                [
                    {
                        "id": "cems1",
                        "kind": "cems",
                        "protocol": "hj212",
                        "mn": "42050000000001",
                        "metrics": ["so2"],
                    },
                    {"id": "cam1", "kind": "camera", "metrics": ["video_smoke"]},
                ],
            ),
            site("s-other", "env", [{"id": "aq1", "kind": "air_quality", "metrics": ["pm25"]}]),
            site("s-wim", "transport", [{"id": "wim1", "kind": "wim", "metrics": ["axles"]}]),
        ],
        "gateways": [
            {"id": "gw-a", "site": "s-air", "sites": ["s-air"]},
            {"id": "gw-b", "site": "s-stack", "sites": ["s-stack"]},
        ],
    }


@dataclass
class Trust:
    """A registry, its credential store, the plain secrets and the broker files' paths."""

    registry: Registry
    registry_file: Path
    store: CredentialStore
    secrets: dict[str, Secret]
    auth: BrokerAuth

    def sync(self) -> None:
        write_broker_files(self.store, self.registry, self.auth.password_file, self.auth.acl_file)


def make_trust(root: Path) -> Trust:
    doc = registry_doc()
    registry_file = root / "sites.yaml"
    registry_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    registry = parse_registry(doc)
    store = CredentialStore(root / "trust" / "credentials.json", reload_s=0.0)
    secrets = {s.username: s for s in store.issue_missing(registry)}
    trust = Trust(
        registry,
        registry_file,
        store,
        secrets,
        BrokerAuth(root / "trust" / "mosquitto.passwd", root / "trust" / "mosquitto.acl"),
    )
    trust.sync()
    return trust


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Trust:
    return make_trust(tmp_path_factory.mktemp("trust"))


@pytest.fixture(scope="module")
def secure_broker(
    mosquitto_path: str, trust: Trust, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MosquittoBroker]:
    """mosquitto with the generated files, shared by the tests that change nothing."""
    broker = MosquittoBroker(data_dir=tmp_path_factory.mktemp("secure-mosquitto"), auth=trust.auth)
    yield broker
    broker.close()


_ids = itertools.count()


class Address(Protocol):
    """Where a broker listens (a MosquittoBroker, or a broker some other process runs)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class BrokerAt:
    """The address of a broker this test did not start."""

    host: str
    port: int


def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> Any:
    """Poll ``condition`` until truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class Peer:
    """An MQTT 5 client that records the broker's answers: CONNACK, SUBACK and PUBACK reason
    codes, messages received, disconnections."""

    def __init__(
        self,
        broker: Address,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sec-{os.getpid()}-{next(_ids)}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self._lock = threading.Lock()
        self.connacks: list[ReasonCode] = []
        self.disconnects: list[ReasonCode] = []
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.pubacks: dict[int, ReasonCode] = {}
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        props = Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        self.client.connect(
            broker.host, broker.port, keepalive=30, clean_start=clean_start, properties=props
        )
        self.client.loop_start()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self.connacks.append(rc)

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self.disconnects.append(rc)

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list[ReasonCode], props: Any) -> None:
        self.subacks[mid] = list(rcs)

    def _on_publish(self, c: Any, u: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        self.pubacks[mid] = rc

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def connack(self) -> ReasonCode:
        """The broker's answer to the CONNECT."""
        return wait_for(lambda: self.connacks and self.connacks[0], "a CONNACK")

    def connected(self) -> Peer:
        """This peer, once the broker accepted it (fails the test otherwise)."""
        rc = self.connack()
        assert not rc.is_failure, f"the broker refused the connection: {rc}"
        return self

    def subscribe(self, topic: str) -> ReasonCode:
        """Subscribe at QoS 1; the SUBACK's reason code."""
        _, mid = self.client.subscribe(topic, qos=1)
        return wait_for(lambda: self.subacks.get(mid), f"the SUBACK of {topic}")[0]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1; the PUBACK's reason code (mosquitto answers a publish its ACL
        refuses with 'Not authorized' in MQTT 5)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return wait_for(lambda: self.pubacks.get(info.mid), f"the PUBACK of {topic}")

    def received(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def live(self) -> list[str]:
        """Topics of the messages published while subscribed (retained ones left out: the
        broker keeps those from earlier tests)."""
        with self._lock:
            return [t for t, _, retained in self.messages if not retained]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(secure_broker: MosquittoBroker, trust: Trust) -> Iterator[Callable[..., Peer]]:
    """``peers(username, **kw)``: a client connected as that identity with its secret
    (``password=`` overrides it, ``username=None`` is anonymous); all closed after the test."""
    made: list[Peer] = []

    def make(username: str | None, *, broker: Address | None = None, **kw: Any) -> Peer:
        if "password" in kw:
            password = kw.pop("password")
        else:
            password = trust.secrets[username].password if username else None
        peer = Peer(broker or secure_broker, username, password, **kw)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()
