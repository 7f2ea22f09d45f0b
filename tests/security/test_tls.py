"""TLS between the platform's clients and a real mosquitto, with certificates made by
:mod:`farsight.pki`: trust, host names, client certificates as identities, and ingest and the
simulator through ``python -m app`` over a broker that speaks nothing but TLS."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from farsight import pki
from farsight.broker import REPO_CONF, BrokerAuth, MosquittoBroker, TlsListener
from farsight.db import Database
from farsight.errors import ConfigError
from farsight.mqttclient import PublishTracker, connect, make_client, wait_connected
from farsight.settings import BrokerSettings, Settings, load_settings, validation_problems
from ingest.store import ReadingStore
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
IDENTITIES = ("gw-test", "ingest", "publisher")
ACL = """\
user gw-test
topic readwrite fs/v1/gw/gw-test/#
user ingest
topic read fs/v1/#
user publisher
topic write fs/v1/#
topic readwrite sync/publisher
"""
"""What each certificate's identity may do on the broker that maps certificates to user names."""


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server: pki.Issued
    clients: dict[str, pki.Issued]
    other_ca: Path
    other_client: pki.Issued
    elsewhere: pki.Issued
    """A server certificate of the right CA for another host (broker.example.net)."""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.init_ca(d)
    server = pki.issue_server(d, "broker", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    clients = {name: pki.issue_client(d, name) for name in IDENTITIES}
    elsewhere = pki.issue_server(d, "elsewhere", dns_names=["broker.example.net"])
    other = tmp_path_factory.mktemp("other-pki")
    other_ca = pki.init_ca(other, common_name="Someone else's CA")
    other_client = pki.issue_client(other, "gw-test")
    return Pki(d, ca.cert, server, clients, other_ca.cert, other_client, elsewhere)


@pytest.fixture(scope="module")
def tls_broker(
    mosquitto_path: str, certs: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MosquittoBroker]:
    """deploy/mosquitto.conf with its plain listener and a TLS listener beside it."""
    broker = MosquittoBroker(
        data_dir=tmp_path_factory.mktemp("mosquitto-tls"),
        tls=TlsListener(certs.ca, certs.server.cert, certs.server.key),
    )
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def cert_broker(
    mosquitto_path: str, certs: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MosquittoBroker]:
    """TLS only, a client certificate required and its CN taken as the user name; ACLs by user
    name, and connections logged with their user name."""
    d = tmp_path_factory.mktemp("mosquitto-cert")
    (d / "acl").write_text(ACL, encoding="utf-8")
    base = [
        line
        for line in REPO_CONF.read_text(encoding="utf-8").splitlines()
        if not line.startswith("connection_messages")
    ]
    conf = d / "base.conf"
    conf.write_text("\n".join([*base, "connection_messages true"]) + "\n", encoding="utf-8")
    broker = MosquittoBroker(
        data_dir=d / "data",
        conf=conf,
        auth=BrokerAuth(None, d / "acl"),  # the certificate is the identity: no password file
        tls=TlsListener(
            certs.ca,
            certs.server.cert,
            certs.server.key,
            require_certificate=True,
            use_identity_as_username=True,
            only=True,
        ),
    )
    yield broker
    broker.close()


def broker_settings(port: int, *, host: str = "127.0.0.1", **tls: Any) -> BrokerSettings:
    return BrokerSettings.model_validate(
        {
            "host": host,
            "port": port,
            "protocol": "5",
            "embedded": "none",
            "tls": {"enabled": True, **tls},
        }
    )


def client_tls(certs: Pki, identity: str) -> dict[str, Any]:
    c = certs.clients[identity]
    return {"ca_file": certs.ca, "cert_file": c.cert, "key_file": c.key}


class Session:
    """A connected client that records what it receives and the broker's SUBACK codes."""

    def __init__(self, settings: BrokerSettings, client_id: str) -> None:
        self.settings = settings
        self.client = make_client(settings, client_id, persistent=False)
        self.received: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.__setitem__(
            mid, list(codes)
        )
        connect(self.client, settings, persistent=False)
        wait_connected(self.client)

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        wait_until(lambda: mid in self.subacks, what=f"SUBACK of {topic}")
        return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes) -> None:
        tracker = PublishTracker(self.client)
        tracker.add(self.client.publish(topic, payload, qos=1))
        assert tracker.wait(10), "PUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def round_trip(settings: BrokerSettings, topic: str, client_id: str) -> bytes:
    """Subscribe, publish one message and return it as received."""
    s = Session(settings, client_id)
    try:
        assert not s.subscribe(topic).is_failure
        s.publish(topic, b"over tls")
        wait_until(lambda: s.received, what=f"the message back on {topic}")
        return s.received[0][1]
    finally:
        s.close()


def refused(settings: BrokerSettings, client_id: str) -> object:
    """Connect in the foreground and return how the connection ended without being accepted:
    the handshake's exception, or what the network loop saw instead of a CONNACK. Fails the
    test if the broker accepts the client."""
    client = make_client(settings, client_id, persistent=False)
    connacks: list[ReasonCode] = []
    client.on_connect = lambda c, u, f, rc, p: connacks.append(rc)
    try:
        client.connect(settings.host, settings.port, keepalive=5)
    except (ssl.SSLError, OSError) as exc:
        return exc
    try:
        # A TLS 1.3 server checks the client's certificate after the client's handshake is done:
        # the refusal arrives on the first read.
        rc = wait_until(
            lambda: connacks or client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS,
            what="the broker to answer",
        )
    finally:
        client.disconnect()
    assert not connacks or connacks[0].is_failure, f"the broker accepted the client: {connacks}"
    return connacks[0] if connacks else rc


# -- trust ---------------------------------------------------------------------------------


def test_a_client_trusting_the_ca_publishes_and_receives_over_tls(
    tls_broker: MosquittoBroker, certs: Pki
) -> None:
    assert tls_broker.tls_port not in (None, tls_broker.port)
    by_ip = broker_settings(tls_broker.tls_port or 0, ca_file=certs.ca)
    assert round_trip(by_ip, "fs/v1/env/yc-aq-1/aq1/reading", "tls-ip") == b"over tls"
    by_name = broker_settings(tls_broker.tls_port or 0, host="localhost", ca_file=certs.ca)
    assert round_trip(by_name, "fs/v1/env/yc-aq-1/aq1/reading", "tls-name") == b"over tls"


def test_the_client_negotiates_tls_1_2_or_later(tls_broker: MosquittoBroker, certs: Pki) -> None:
    s = Session(broker_settings(tls_broker.tls_port or 0, ca_file=certs.ca), "tls-version")
    try:
        sock = s.client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert sock.context.verify_mode == ssl.CERT_REQUIRED and sock.context.check_hostname
    finally:
        s.close()


def test_a_client_trusting_another_ca_is_refused(tls_broker: MosquittoBroker, certs: Pki) -> None:
    settings = broker_settings(tls_broker.tls_port or 0, ca_file=certs.other_ca)
    err = refused(settings, "tls-other-ca")
    assert isinstance(err, ssl.SSLCertVerificationError), err
    # mosquitto sends its CA along: OpenSSL finds an untrusted self-signed root in the chain.
    assert err.verify_code in (19, 20), err.verify_message  # SELF_SIGNED_CERT_IN_CHAIN, NO_ISSUER


def test_a_plain_client_gets_nothing_from_the_tls_listener(tls_broker: MosquittoBroker) -> None:
    plain = BrokerSettings(host="127.0.0.1", port=tls_broker.tls_port or 0, embedded="none")
    refused(plain, "plain-on-tls")


def test_a_server_certificate_for_another_host_name_is_refused(
    mosquitto_path: str, certs: Pki, tmp_path: Path
) -> None:
    broker = MosquittoBroker(
        data_dir=tmp_path / "mosquitto",
        tls=TlsListener(certs.ca, certs.elsewhere.cert, certs.elsewhere.key, only=True),
    )
    try:
        err = refused(broker_settings(broker.port, ca_file=certs.ca), "tls-elsewhere")
        assert isinstance(err, ssl.SSLCertVerificationError), err
        assert "mismatch" in str(err.verify_message)  # IP address mismatch, not the CA
        # The same certificate is taken once the host check is off: it was only the name.
        loose = broker_settings(broker.port, ca_file=certs.ca, insecure_skip_hostname_check=True)
        assert round_trip(loose, "t/elsewhere", "tls-elsewhere-loose") == b"over tls"
    finally:
        broker.close()


# -- client certificates as identities -----------------------------------------------------


def test_a_client_certificate_is_the_user_name(cert_broker: MosquittoBroker, certs: Pki) -> None:
    own = "fs/v1/gw/gw-test/status"
    gw = Session(broker_settings(cert_broker.port, **client_tls(certs, "gw-test")), "gw-client")
    other = Session(broker_settings(cert_broker.port, **client_tls(certs, "publisher")), "pub-1")
    try:
        wait_until(
            # use_username_as_clientid: the client id is the certificate's CN too.
            lambda: "as gw-test (p5, c1, k30, u'gw-test')" in cert_broker.log_path.read_text(),
            what="the broker's log line of the connection with its user name",
        )
        # The ACL lets user gw-test alone read its topic: the CN is what the broker authorizes.
        assert not gw.subscribe(own).is_failure
        other.subscribe(own)  # mosquitto's ACL file grants the SUBACK, and filters the delivery
        other.subscribe("sync/publisher")
        gw.publish(own, b"for gw-test only")
        wait_until(lambda: gw.received, what="gw-test's own message back")
        assert gw.received == [(own, b"for gw-test only")]
        # The broker routed the gw-test message before its PUBACK: anything of it for the other
        # client is on that client's connection before this marker.
        other.publish("sync/publisher", b"marker")
        wait_until(lambda: other.received, what="the marker")
        assert other.received == [("sync/publisher", b"marker")]
    finally:
        gw.close()
        other.close()


def test_without_a_client_certificate_the_connection_is_refused(
    cert_broker: MosquittoBroker, certs: Pki
) -> None:
    refused(broker_settings(cert_broker.port, ca_file=certs.ca), "no-certificate")
    wait_until(
        lambda: "peer did not return a certificate" in cert_broker.log_path.read_text(),
        what="the broker's reason for the refusal",
    )


def test_a_client_certificate_of_another_ca_is_refused(
    cert_broker: MosquittoBroker, certs: Pki
) -> None:
    other = certs.other_client
    settings = broker_settings(
        cert_broker.port, ca_file=certs.ca, cert_file=other.cert, key_file=other.key
    )
    refused(settings, "foreign-certificate")


def test_an_ed25519_pki_works_end_to_end(mosquitto_path: str, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ca = pki.init_ca(d, key_type="ed25519")
    server = pki.issue_server(d, "127.0.0.1")
    client = pki.issue_client(d, "ed-client")
    broker = MosquittoBroker(
        data_dir=tmp_path / "mosquitto",
        tls=TlsListener(ca.cert, server.cert, server.key, require_certificate=True, only=True),
    )
    try:
        settings = broker_settings(
            broker.port, ca_file=ca.cert, cert_file=client.cert, key_file=client.key
        )
        assert round_trip(settings, "t/ed25519", "ed-client") == b"over tls"
    finally:
        broker.close()


# -- settings and their errors -------------------------------------------------------------


def test_tls_settings_come_from_the_environment_overlay(certs: Pki) -> None:
    c = certs.clients["ingest"]
    s = load_settings(
        environ={
            "FARSIGHT__BROKER__PORT": "8883",
            "FARSIGHT__BROKER__TLS__ENABLED": "true",
            "FARSIGHT__BROKER__TLS__CA_FILE": str(certs.ca),
            "FARSIGHT__BROKER__TLS__CERT_FILE": str(c.cert),
            "FARSIGHT__BROKER__TLS__KEY_FILE": str(c.key),
            "FARSIGHT__BROKER__TLS__MIN_VERSION": "1.3",
        }
    )
    tls = s.broker.tls
    assert (tls.enabled, tls.ca_file, tls.cert_file, tls.key_file) == (
        True,
        certs.ca,
        c.cert,
        c.key,
    )
    assert tls.min_version == "1.3" and not tls.insecure_skip_hostname_check
    client = make_client(s.broker, "env-tls")
    assert client._ssl_context is not None
    assert client._ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    ("tls", "path", "fix"),
    [
        ({"enabled": True, "key_file": "k.key"}, "broker.tls.key_file", "broker.tls.cert_file"),
        ({"enabled": True, "cert_file": "c.crt"}, "broker.tls.key_file", "farsight pki client"),
        ({"ca_file": "ca.crt"}, "broker.tls", "broker.tls.enabled: true"),
        ({"enabled": True, "insecure": True}, "broker.tls.insecure", "unknown key"),
        ({"enabled": True, "min_version": "1.1"}, "broker.tls.min_version", "'1.2' or '1.3'"),
    ],
)
def test_a_wrong_tls_setting_names_its_key_and_the_fix(tls: dict, path: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        _validate({"broker": {"tls": tls}})
    problems = {p.path: p.message for p in err.value.problems}
    assert path in problems, problems
    assert fix in problems[path]


def _validate(tree: dict) -> None:
    try:
        Settings.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, tree)) from None


def test_missing_or_wrong_files_name_their_key_when_the_client_is_made(
    certs: Pki, tmp_path: Path
) -> None:
    gw, pub = certs.clients["gw-test"], certs.clients["publisher"]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"ca_file": tmp_path / "nope.crt"}, "broker.tls.ca_file", "no such file"),
        ({"ca_file": gw.key}, "broker.tls.ca_file", "not a PEM certificate bundle"),
        (
            {"ca_file": certs.ca, "cert_file": gw.cert, "key_file": tmp_path / "nope.key"},
            "broker.tls.key_file",
            "no such file",
        ),
        (
            {"ca_file": certs.ca, "cert_file": gw.cert, "key_file": pub.key},
            "broker.tls.key_file",
            "does not belong to cert_file",
        ),
    ]
    for tls, path, message in cases:
        with pytest.raises(ConfigError) as err:
            make_client(broker_settings(8883, **tls), "bad-files")
        problems = {p.path: p.message for p in err.value.problems}
        assert path in problems and message in problems[path], (tls, problems)


def test_an_encrypted_key_is_refused_rather_than_prompted_for(certs: Pki, tmp_path: Path) -> None:
    gw = certs.clients["gw-test"]
    key = serialization.load_pem_private_key(gw.key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(ConfigError, match="broker.tls.key_file: the key is encrypted"):
        make_client(
            broker_settings(8883, ca_file=certs.ca, cert_file=gw.cert, key_file=locked), "enc"
        )


# -- the platform's processes over TLS -----------------------------------------------------


def _env() -> dict[str, str]:
    """This environment without FARSIGHT settings, with this tree first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARSIGHT")}
    path = [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


def _app(args: list[str], workdir: Path, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=workdir,
        env=_env(),
        stdin=subprocess.DEVNULL,
        **kw,
    )


def _config(path: Path, data_dir: Path, broker: MosquittoBroker, tls: dict[str, Path]) -> Path:
    tree = {
        "data_dir": str(data_dir),
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "embedded": "none",
            "tls": {"enabled": True, **{k: str(v) for k, v in tls.items()}},
        },
        "ingest": {"client_id": "ingest"},
    }
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path


SIM = [
    "simulate",
    "--sites",
    "yc-aq-xiling",
    "--scenario",
    "quiet",
    "--seed",
    "7",
    "--rounds",
    "3",
    "--interval",
    "0.2",
    "--start",
    "2026-11-25T08:00:00+08:00",
]


@pytest.mark.e2e
def test_ingest_stores_what_the_simulator_publishes_over_tls(
    cert_broker: MosquittoBroker, certs: Pki, tmp_path: Path
) -> None:
    """``farsight ingest`` and ``farsight simulate`` against a broker with no plain listener,
    each with its own client certificate; every simulated reading is stored."""
    data = tmp_path / "var"
    ingest_cfg = _config(tmp_path / "ingest.yaml", data, cert_broker, client_tls(certs, "ingest"))
    sim_cfg = _config(tmp_path / "sim.yaml", data, cert_broker, client_tls(certs, "publisher"))
    dry = subprocess.run(
        [sys.executable, "-m", "app", *SIM, "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    )
    expected = sum(
        len(json.loads(line.split(" ", 1)[1])["metrics"]) for line in dry.stdout.splitlines()
    )
    assert expected > 0

    log = (tmp_path / "ingest.log").open("ab")
    ingest = _app(["-c", str(ingest_cfg), "ingest"], tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: (
                ingest.poll() is None
                and "as ingest (" in cert_broker.log_path.read_text()
                and "u'ingest'" in cert_broker.log_path.read_text()
            ),
            timeout=60,
            what="ingest connected over TLS as user ingest",
        )
        sim = subprocess.run(
            [sys.executable, "-m", "app", "-c", str(sim_cfg), *SIM],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=_env(),
        )
        assert sim.returncode == 0, sim.stderr
        assert "dropped" in sim.stderr and " 0 dropped" in sim.stderr

        db = Database.open(data / "farsight.db")
        try:
            store = ReadingStore(db)
            wait_until(lambda: store.count() >= expected, timeout=30, what="readings stored")
            assert store.count() == expected
            assert store.dead_letter_count() == 0
        finally:
            db.close()
    finally:
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGTERM)
        rc = ingest.wait(timeout=30)
        log.close()
    assert rc == 0, (tmp_path / "ingest.log").read_text()[-3000:]


@pytest.mark.e2e
def test_ingest_refuses_to_start_with_a_missing_ca_file(tmp_path: Path, certs: Pki) -> None:
    missing = tmp_path / "missing-ca.crt"
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "var"),
                "broker": {"port": 8883, "tls": {"enabled": True, "ca_file": str(missing)}},
            }
        ),
        encoding="utf-8",
    )
    proc = _app(
        ["-c", str(cfg), "ingest"], tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert b"broker.tls.ca_file: no such file" in err


# -- farsight pki --------------------------------------------------------------------------


def _pki(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", "pki", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(),
    )


def test_farsight_pki_makes_a_ca_server_and_client_certificates(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    made = _pki(["init-ca", "--dir", str(d), "--name", "Yichang EPB CA", "--days", "30"], tmp_path)
    assert made.returncode == 0, made.stderr
    assert (d / "ca.key").stat().st_mode & 0o777 == 0o600
    fingerprint = pki.describe(pki.read_certificate(d / "ca.crt"), d / "ca.crt").sha256

    again = _pki(["init-ca", "--dir", str(d)], tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr
    assert pki.describe(pki.read_certificate(d / "ca.crt"), d / "ca.crt").sha256 == fingerprint

    server = _pki(
        ["server", "broker", "--dir", str(d), "--dns", "localhost", "--ip", "127.0.0.1"], tmp_path
    )
    assert server.returncode == 0, server.stderr
    assert f"certfile {d / 'server' / 'broker.crt'}" in server.stdout
    client = _pki(["client", "ingest", "--dir", str(d), "--days", "7"], tmp_path)
    assert client.returncode == 0, client.stderr
    assert f"broker.tls.cert_file: {d / 'client' / 'ingest.crt'}" in client.stdout
    for key in (d / "server" / "broker.key", d / "client" / "ingest.key"):
        assert key.stat().st_mode & 0o777 == 0o600

    shown = _pki(["show", "--dir", str(d)], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "subject: CN=Yichang EPB CA" in shown.stdout
    assert "names: localhost, 127.0.0.1" in shown.stdout
    assert "subject: CN=ingest" in shown.stdout and "usage: clientAuth" in shown.stdout
    assert shown.stdout.count(f"signed by {d / 'ca.crt'}: yes") == 3

    forced = _pki(["init-ca", "--dir", str(d), "--force"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert pki.describe(pki.read_certificate(d / "ca.crt"), d / "ca.crt").sha256 != fingerprint
    # The old certificates are no longer the new CA's, and show says so.
    after = _pki(["show", "--dir", str(d)], tmp_path).stdout
    assert after.count(": NO") == 2


def test_check_config_reports_tls_files_that_would_stop_a_client(tmp_path: Path) -> None:
    cfg = tmp_path / "farsight.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"broker": {"port": 8883, "tls": {"enabled": True, "ca_file": "/nonexistent/ca.crt"}}}
        ),
        encoding="utf-8",
    )
    checked = subprocess.run(
        [sys.executable, "-m", "app", "check-config", str(cfg)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(),
    )
    assert checked.returncode == 2, checked.stdout
    assert "broker.tls.ca_file: no such file" in checked.stderr
