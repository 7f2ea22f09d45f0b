"""A private certificate authority for one deployment: the broker's server certificate and the
clients' certificates, made with the ``cryptography`` package.

Keys are ECDSA P-256 by default. Every TLS stack a deployment meets speaks it: OpenSSL under
mosquitto and Python, mbedTLS and wolfSSL on gateways and data loggers, Java and Android, and
browsers for the hub. Ed25519 is smaller and faster, and offered, but certificates signed with
it are refused by browsers and by older embedded stacks (mbedTLS before 3.x), so a CA made with
it would lock such devices out.

One folder holds a deployment's PKI::

    ca.crt  ca.key              the authority (the key never leaves this folder)
    server/NAME.crt NAME.key    a broker or hub certificate, with DNS names and IPs (SANs)
    client/ID.crt ID.key        a client certificate whose subject CN is the client's identity

A client certificate's CN is what mosquitto's ``use_identity_as_username`` takes as the MQTT
user name, so ACLs written for a user name apply to a client that authenticates by certificate.

Keys are written 0600 and every file atomically (a temporary file renamed into place): a crash
leaves the old file or the new one, never half of one. An existing file is never replaced unless
the caller asks: replacing the CA orphans every certificate it signed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from farsight.errors import PkiError

KeyType = Literal["ec-p256", "ed25519"]
KEY_TYPES: tuple[KeyType, ...] = ("ec-p256", "ed25519")
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

CA_DAYS = 3650
"""Default validity of the authority: ten years, as it is not rotated without re-issuing all."""
LEAF_DAYS = 825
"""Default validity of server and client certificates (the CA/Browser Forum's former limit)."""
MAX_DAYS = 36500

CA_CERT, CA_KEY = "ca.crt", "ca.key"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
"""Server names and client identities: they name files and, as a CN, an MQTT user name."""
_SKEW = dt.timedelta(minutes=5)
"""Certificates start this long before now, so a peer whose clock is a little behind takes them."""


@dataclass(frozen=True, slots=True)
class Issued:
    """The files of one certificate and its key."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What ``farsight pki show`` prints about a certificate."""

    path: Path
    subject: str
    issuer: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    usages: tuple[str, ...]
    key_type: str
    sha256: str

    def lines(self) -> list[str]:
        """The certificate, one ``key: value`` line per field."""
        out = [
            f"{self.path}",
            f"  subject: {self.subject}",
            f"  issuer: {self.issuer}",
            f"  serial: {self.serial:x}",
            f"  valid: {self.not_before.isoformat()} .. {self.not_after.isoformat()}",
            f"  ca: {'yes' if self.is_ca else 'no'}",
            f"  key: {self.key_type}",
        ]
        if self.dns_names or self.ip_addresses:
            out.append(f"  names: {', '.join((*self.dns_names, *self.ip_addresses))}")
        if self.usages:
            out.append(f"  usage: {', '.join(self.usages)}")
        out.append(f"  sha256: {self.sha256}")
        return out


# -- pure: keys and certificates ------------------------------------------------------------


def new_key(key_type: KeyType = "ec-p256") -> PrivateKey:
    """A fresh private key of ``key_type``."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise PkiError(f"unknown key type {key_type!r}; known: {', '.join(KEY_TYPES)}")


def key_type_of(key: object) -> KeyType:
    """The :data:`KeyType` of a private or public key; :class:`PkiError` for any other."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ec-p256"
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    raise PkiError(f"unsupported key {type(key).__name__}; supported: {', '.join(KEY_TYPES)}")


def _digest(key: PrivateKey) -> hashes.SHA256 | None:
    # Ed25519 signs the message itself: the API takes no digest for it.
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise PkiError(f"validity must be 1 to {MAX_DAYS} days, got {days}")


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise PkiError(
            f"{what} {name!r} must be 1-128 letters, digits, '_', '.', '@' or '-', starting with a"
            " letter or digit"
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def build_ca(key: PrivateKey, common_name: str, days: int, now: dt.datetime) -> x509.Certificate:
    """A self-signed authority that may sign end-entity certificates only (path length 0)."""
    _check_days(days)
    name = _name(common_name)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _digest(key))
    )


def build_leaf(
    key: PrivateKey,
    common_name: str,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    days: int,
    now: dt.datetime,
    server: bool,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> x509.Certificate:
    """An end-entity certificate signed by the CA: for a server (``serverAuth``, with the names
    it answers to) or for a client (``clientAuth``, its identity in the CN)."""
    _check_days(days)
    ips = [_ip(a) for a in ip_addresses]
    if server and not (dns_names or ips):
        raise PkiError("a server certificate needs at least one DNS name or IP address")
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        # A leaf outliving its CA would fail verification in its last part anyway.
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ip) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, _digest(ca_key))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise PkiError(f"{text!r} is not an IP address") from None


def describe(cert: x509.Certificate, path: Path) -> CertificateInfo:
    """The fields of ``cert`` that tell what it is for and who it names."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = tuple(getattr(u, "_name", u.dotted_string) for u in eku)
    except x509.ExtensionNotFound:
        usages = ()
    try:
        key_type: str = key_type_of(cert.public_key())
    except PkiError:
        key_type = type(cert.public_key()).__name__
    return CertificateInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        dns_names=dns,
        ip_addresses=ips,
        usages=usages,
        key_type=key_type,
        sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
    )


# -- files ----------------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Write ``data`` to a temporary file beside ``path`` with ``mode``, then put it in place:
    replaced when ``overwrite``, else linked, which fails if ``path`` appeared meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # before any byte of a key is written
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise PkiError(f"{path} exists; pass --force to replace it") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power loss
    finally:
        os.close(dir_fd)


def _key_pem(key: PrivateKey) -> bytes:
    # Unencrypted: the broker and the services read it unattended; the 0600 mode protects it.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_pair(issued: Issued, cert: x509.Certificate, key: PrivateKey, overwrite: bool) -> None:
    if not overwrite:
        for p in (issued.cert, issued.key):
            if p.exists():
                raise PkiError(f"{p} exists; pass --force to replace it")
    # The key first: a certificate on disk always has its key beside it.
    _write_atomically(issued.key, _key_pem(key), 0o600, overwrite)
    _write_atomically(issued.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644, overwrite)


def read_certificate(path: Path) -> x509.Certificate:
    """The PEM certificate at ``path``; :class:`PkiError` naming the file otherwise."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise PkiError(f"{path} is not a PEM certificate") from None


def _read_key(path: Path) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise PkiError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise PkiError(f"{path} holds a {type(key).__name__}; the CA signs with EC or Ed25519")
    return key


def ca_files(directory: Path) -> Issued:
    """Where the authority of ``directory`` keeps its certificate and key."""
    return Issued(Path(directory) / CA_CERT, Path(directory) / CA_KEY)


def init_ca(
    directory: Path,
    *,
    common_name: str = "Farsight private CA",
    days: int = CA_DAYS,
    key_type: KeyType = "ec-p256",
    overwrite: bool = False,
) -> Issued:
    """Make the authority of ``directory``: ``ca.crt`` and ``ca.key`` (0600).

    Raises
    ------
    PkiError
        If a CA is there already and ``overwrite`` is false: a new CA would orphan every
        certificate the old one signed.
    """
    files = ca_files(directory)
    if not overwrite and (files.cert.exists() or files.key.exists()):
        raise PkiError(
            f"a CA exists in {directory}; a new one would orphan every certificate it signed."
            " Pass --force to replace it"
        )
    if not common_name.strip() or len(common_name) > 64:
        raise PkiError(f"the CA name must be 1-64 characters, got {common_name!r}")
    key = new_key(key_type)
    cert = build_ca(key, common_name, days, dt.datetime.now(dt.UTC))
    _write_pair(files, cert, key, overwrite)
    return files


def _load_ca(directory: Path) -> tuple[x509.Certificate, PrivateKey]:
    files = ca_files(directory)
    if not files.cert.exists() or not files.key.exists():
        raise PkiError(f"no CA in {directory}: make one first with `farsight pki init-ca`")
    return read_certificate(files.cert), _read_key(files.key)


def issue_server(
    directory: Path,
    name: str,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = LEAF_DAYS,
    overwrite: bool = False,
) -> Issued:
    """A server certificate ``server/NAME.crt`` signed by the CA of ``directory``.

    With neither DNS names nor IPs, ``name`` itself is the one name (an IP if it parses as one).
    """
    _check_name(name, "server name")
    if not dns_names and not ip_addresses:
        try:
            ip_addresses = (str(ipaddress.ip_address(name)),)
        except ValueError:
            dns_names = (name,)
    ca_cert, ca_key = _load_ca(directory)
    key = new_key(key_type_of(ca_key))
    cert = build_leaf(
        key,
        name,
        ca_cert,
        ca_key,
        days=days,
        now=dt.datetime.now(dt.UTC),
        server=True,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
    issued = Issued(
        Path(directory) / "server" / f"{name}.crt", Path(directory) / "server" / f"{name}.key"
    )
    _write_pair(issued, cert, key, overwrite)
    return issued


def issue_client(
    directory: Path, identity: str, *, days: int = LEAF_DAYS, overwrite: bool = False
) -> Issued:
    """A client certificate ``client/ID.crt`` whose subject CN is ``identity`` (the MQTT user
    name under ``use_identity_as_username``)."""
    _check_name(identity, "client identity")
    ca_cert, ca_key = _load_ca(directory)
    key = new_key(key_type_of(ca_key))
    cert = build_leaf(
        key, identity, ca_cert, ca_key, days=days, now=dt.datetime.now(dt.UTC), server=False
    )
    issued = Issued(
        Path(directory) / "client" / f"{identity}.crt",
        Path(directory) / "client" / f"{identity}.key",
    )
    _write_pair(issued, cert, key, overwrite)
    return issued


def certificates_in(directory: Path) -> list[Path]:
    """Every certificate of the PKI in ``directory``: the CA first, then servers and clients."""
    d = Path(directory)
    found = [d / CA_CERT] if (d / CA_CERT).exists() else []
    for sub in ("server", "client"):
        found += sorted((d / sub).glob("*.crt"))
    return found


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True if ``ca`` signed ``cert`` (its signature checks out against the CA's key)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):  # a bad signature, issuer or key type
        return False
    return True
