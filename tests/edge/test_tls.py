"""The uplink over TLS to a real mosquitto: a client certificate, or username and password; a
gateway
with a certificate the broker does not trust, or without one, gets nothing through.

The certificates are made per test (a throwaway CA, a server certificate for 127.0.0.1 and a
client certificate whose CN is the gateway's user name)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.config import parse_gateway_config
from edge.service import EdgeService
from farsight.broker import free_port, mosquitto_binary, wait_for_port
from simulators.gateway_site import Hj212Logger
from tests.conftest import wait_until
from tests.edge.conftest import Hub

MN = "42050000000001"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def _cert(
    subject: str,
    key,
    issuer_name: x509.Name | None,
    issuer_key,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def make_pki(d: Path) -> Pki:
    ca_key, rogue_ca_key = _key(), _key()
    ca = _cert("farsight test CA", ca_key, None, ca_key, ca=True)
    rogue_ca = _cert("rogue CA", rogue_ca_key, None, rogue_ca_key, ca=True)
    server_key, client_key, rogue_key = _key(), _key(), _key()
    server = _cert("127.0.0.1", server_key, ca.subject, ca_key, ip="127.0.0.1")
    client = _cert("gw-test", client_key, ca.subject, ca_key)
    rogue = _cert("gw-test", rogue_key, rogue_ca.subject, rogue_ca_key)

    def pem(c: x509.Certificate, name: str) -> Path:
        (d / name).write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return d / name

    return Pki(
        pem(ca, "ca.pem"),
        pem(server, "server.pem"),
        _write_key(server_key, d / "server.key"),
        pem(client, "client.pem"),
        _write_key(client_key, d / "client.key"),
        pem(rogue, "rogue.pem"),
        _write_key(rogue_key, d / "rogue.key"),
    )


@dataclass
class TlsBroker:
    """mosquitto with a plain loopback listener (the hub), a TLS listener that requires a client
    certificate, and a TLS listener with username and password."""

    host: str
    port: int  # plain, for the hub (the Hub fixture reads .host/.port)
    cert_port: int
    password_port: int
    proc: subprocess.Popen


@pytest.fixture
def tls_broker(mosquitto_path: str, tmp_path: Path) -> Iterator[tuple[TlsBroker, Pki]]:
    d = tmp_path / "tls"
    d.mkdir()
    pki = make_pki(d)
    passwords = d / "passwords"
    passwords.write_text("", encoding="utf-8")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), "gw-test", "s3cret-for-this-test"],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o600)
    plain, cert_port, pw_port = free_port(), free_port(), free_port()
    import getpass

    tls = f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
    conf = d / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings true\npersistence false\nlog_dest stderr\nuser"
        f" {getpass.getuser()}\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {cert_port} 127.0.0.1\n{tls}require_certificate true\nuse_identity_as_username"
        " true\nallow_anonymous false\n"
        f"listener {pw_port} 127.0.0.1\n{tls}allow_anonymous false\npassword_file {passwords}\n",
        encoding="utf-8",
    )
    log = open(d / "mosquitto.log", "ab")  # noqa: SIM115  # the broker's output while it runs
    proc = subprocess.Popen(
        [mosquitto_binary() or "mosquitto", "-c", str(conf)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        for p in (plain, cert_port, pw_port):
            wait_for_port("127.0.0.1", p, proc=proc)
        yield TlsBroker("127.0.0.1", plain, cert_port, pw_port, proc), pki
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _gateway(tmp_path: Path, uplink: dict, name: str) -> EdgeService:
    raw = {
        "gateway_id": "gw-test",
        "data_dir": str(tmp_path / name),
        "uplink": {"host": "127.0.0.1", "keepalive_s": 5, "reconnect_max_s": 1, **uplink},
        "collectors": {
            "hj212_tcp": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": 0,
                "devices": {MN: {"dept": "env", "site": "yc-stack-1", "device": "cems1"}},
            }
        },
        "health": {"interval_s": 0.5},
    }
    svc = EdgeService(parse_gateway_config(raw), raw)
    svc.start()
    return svc


def _send(svc: EdgeService, n: int) -> None:
    logger = Hj212Logger("127.0.0.1", svc.collectors["hj212_tcp"].port, MN)
    for _ in range(n):
        logger.send_next()
    logger.close()


@pytest.mark.parametrize("auth", ["certificate", "password"])
def test_uplink_over_tls_reaches_the_hub(
    tls_broker, tmp_path: Path, gateway_key: str, monkeypatch, auth: str
) -> None:
    broker, pki = tls_broker
    monkeypatch.setenv("FARSIGHT_EDGE_KEY", gateway_key)
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    hub = Hub(broker, hub_dir, {"gw-test": gateway_key}).start()
    if auth == "certificate":
        uplink = {
            "port": broker.cert_port,
            "tls": {
                "enabled": True,
                "ca_file": str(pki.ca),
                "cert_file": str(pki.client_cert),
                "key_file": str(pki.client_key),
            },
        }
    else:
        monkeypatch.setenv("FARSIGHT_EDGE_PASSWORD", "s3cret-for-this-test")
        uplink = {
            "port": broker.password_port,
            "username": "gw-test",
            "tls": {"enabled": True, "ca_file": str(pki.ca)},
        }
    svc = _gateway(tmp_path, uplink, "edge")
    try:
        wait_until(lambda: svc.uplink.connected, timeout=20, what="TLS uplink connected")
        _send(svc, 20)
        wait_until(lambda: hub.count() >= 20, timeout=30, what="20 readings at the hub over TLS")
        assert hub.count() == 20 and not hub.dead_letters()
    finally:
        svc.stop()
        hub.stop()


@pytest.mark.parametrize("case", ["untrusted certificate", "no certificate", "wrong password"])
def test_uplink_refused_without_valid_credentials_keeps_everything_buffered(
    tls_broker, tmp_path: Path, gateway_key: str, monkeypatch, case: str
) -> None:
    broker, pki = tls_broker
    monkeypatch.setenv("FARSIGHT_EDGE_KEY", gateway_key)
    tls = {"enabled": True, "ca_file": str(pki.ca)}
    if case == "untrusted certificate":
        uplink = {
            "port": broker.cert_port,
            "tls": {**tls, "cert_file": str(pki.rogue_cert), "key_file": str(pki.rogue_key)},
        }
    elif case == "no certificate":
        uplink = {"port": broker.cert_port, "tls": tls}
    else:
        monkeypatch.setenv("FARSIGHT_EDGE_PASSWORD", "not-the-password")
        uplink = {"port": broker.password_port, "username": "gw-test", "tls": tls}
    svc = _gateway(tmp_path, uplink, "edge-" + case.replace(" ", "-"))
    try:
        _send(svc, 10)
        # Refused connections are retried; meanwhile nothing is lost: every reading stays buffered.
        wait_until(
            lambda: svc.uplink.reconnects >= 2,
            timeout=20,
            what="connection attempts refused and retried",
        )
        assert not svc.uplink.connected
        assert svc.buffer.depth == 10
    finally:
        svc.stop()
