"""farsight.pki: what the certificates say, how their files are written, and what is refused."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from farsight import pki
from farsight.errors import PkiError


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType:
    return cert.extensions.get_extension_for_class(kind).value


def test_the_ca_is_a_p256_authority_for_leaves_only_with_a_private_key(tmp_path: Path) -> None:
    files = pki.init_ca(tmp_path, common_name="Yichang EPB CA", days=30)
    cert = pki.read_certificate(files.cert)
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=Yichang EPB CA"
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    basic = _ext(cert, x509.BasicConstraints)
    assert isinstance(basic, x509.BasicConstraints) and basic.ca and basic.path_length == 0
    usage = _ext(cert, x509.KeyUsage)
    assert isinstance(usage, x509.KeyUsage) and usage.key_cert_sign and usage.crl_sign
    lasts = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29) < lasts <= dt.timedelta(days=30)
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert files.cert.stat().st_mode & 0o077 != 0o077  # readable by the broker's user
    assert pki.signed_by(cert, cert)


def test_an_existing_ca_is_kept_unless_replacing_it_is_asked_for(tmp_path: Path) -> None:
    files = pki.init_ca(tmp_path)
    before = (files.cert.read_bytes(), files.key.read_bytes())
    with pytest.raises(PkiError, match="orphan every certificate"):
        pki.init_ca(tmp_path)
    assert (files.cert.read_bytes(), files.key.read_bytes()) == before
    files.cert.unlink()  # half a CA is still a CA: its key signed certificates
    with pytest.raises(PkiError, match="a CA exists"):
        pki.init_ca(tmp_path)
    pki.init_ca(tmp_path, overwrite=True)
    assert files.key.read_bytes() != before[1]


def test_a_server_certificate_names_its_hosts_and_is_for_servers(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    issued = pki.issue_server(
        tmp_path,
        "broker",
        dns_names=["localhost", "mqtt.yc.example"],
        ip_addresses=["127.0.0.1", "::1"],
        days=10,
    )
    assert issued.cert == tmp_path / "server" / "broker.crt"
    cert = pki.read_certificate(issued.cert)
    info = pki.describe(cert, issued.cert)
    assert info.dns_names == ("localhost", "mqtt.yc.example")
    assert info.ip_addresses == ("127.0.0.1", "::1")
    assert info.usages == ("serverAuth",) and not info.is_ca
    eku = _ext(cert, x509.ExtendedKeyUsage)
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.signed_by(cert, pki.read_certificate(tmp_path / "ca.crt"))
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    ski = _ext(pki.read_certificate(tmp_path / "ca.crt"), x509.SubjectKeyIdentifier)
    assert isinstance(aki, x509.AuthorityKeyIdentifier) and isinstance(
        ski, x509.SubjectKeyIdentifier
    )
    assert aki.key_identifier == ski.digest
    assert issued.key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "dns", "ips"),
    [("broker.example.net", ("broker.example.net",), ()), ("10.1.2.3", (), ("10.1.2.3",))],
)
def test_a_server_without_names_is_named_by_its_own_name(
    tmp_path: Path, name: str, dns: tuple[str, ...], ips: tuple[str, ...]
) -> None:
    pki.init_ca(tmp_path)
    issued = pki.issue_server(tmp_path, name)
    info = pki.describe(pki.read_certificate(issued.cert), issued.cert)
    assert (info.dns_names, info.ip_addresses) == (dns, ips)


def test_a_client_certificate_carries_the_identity_as_its_cn(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    issued = pki.issue_client(tmp_path, "gw-yc-01")
    cert = pki.read_certificate(issued.cert)
    assert cert.subject.rfc4514_string() == "CN=gw-yc-01"
    assert pki.describe(cert, issued.cert).usages == ("clientAuth",)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_leaves_never_outlive_their_ca(tmp_path: Path) -> None:
    pki.init_ca(tmp_path, days=5)
    issued = pki.issue_client(tmp_path, "ingest", days=400)
    ca = pki.read_certificate(tmp_path / "ca.crt")
    assert pki.read_certificate(issued.cert).not_valid_after_utc == ca.not_valid_after_utc


def test_an_ed25519_ca_signs_ed25519_leaves(tmp_path: Path) -> None:
    pki.init_ca(tmp_path, key_type="ed25519")
    issued = pki.issue_client(tmp_path, "gw-1")
    cert = pki.read_certificate(issued.cert)
    assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)
    assert pki.signed_by(cert, pki.read_certificate(tmp_path / "ca.crt"))


def test_a_certificate_of_another_ca_is_not_signed_by_this_one(tmp_path: Path) -> None:
    pki.init_ca(tmp_path / "a")
    pki.init_ca(tmp_path / "b")
    leaf = pki.read_certificate(pki.issue_client(tmp_path / "a", "x").cert)
    assert not pki.signed_by(leaf, pki.read_certificate(tmp_path / "b" / "ca.crt"))


def test_existing_leaves_are_kept_unless_asked(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    first = pki.issue_client(tmp_path, "ingest")
    before = first.cert.read_bytes()
    with pytest.raises(PkiError, match="exists; pass --force"):
        pki.issue_client(tmp_path, "ingest")
    assert first.cert.read_bytes() == before
    pki.issue_client(tmp_path, "ingest", overwrite=True)
    assert first.cert.read_bytes() != before


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    pki.issue_server(tmp_path, "localhost")
    with pytest.raises(PkiError):
        pki.issue_server(tmp_path, "localhost")
    left = [p.name for p in tmp_path.rglob(".*")]
    assert left == []


def test_keys_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        files = pki.init_ca(tmp_path)
    finally:
        os.umask(old)
    assert files.key.stat().st_mode & 0o777 == 0o600


def test_a_certificate_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="no CA in .*farsight pki init-ca"):
        pki.issue_client(tmp_path, "ingest")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": 0}, "validity must be 1 to"),
        ({"days": 40_000}, "validity must be 1 to"),
        ({"key_type": "rsa"}, "unknown key type 'rsa'"),
        ({"common_name": " "}, "the CA name must be"),
    ],
)
def test_bad_ca_requests_say_what_is_wrong(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(PkiError, match=message):
        pki.init_ca(tmp_path, **kwargs)
    assert not (tmp_path / "ca.key").exists()


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        ("../escape", "must be 1-128 letters"),
        ("", "must be 1-128 letters"),
        ("a b", "must be 1-128 letters"),
    ],
)
def test_identities_that_are_no_safe_file_or_user_names_are_refused(
    tmp_path: Path, identity: str, message: str
) -> None:
    pki.init_ca(tmp_path)
    with pytest.raises(PkiError, match=message):
        pki.issue_client(tmp_path, identity)


def test_a_server_ip_must_be_an_ip(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    with pytest.raises(PkiError, match="'localhost' is not an IP address"):
        pki.issue_server(tmp_path, "broker", ip_addresses=["localhost"])
