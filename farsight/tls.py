"""TLS client contexts for the platform's MQTT clients (ingest, simulators, video, the edge
uplink): the broker's certificate verified against a CA, its host name checked, TLS 1.2 at
least, and a client certificate when the broker asks for one.

A file that is missing, unreadable or not what it should be is a :class:`ConfigError` naming the
settings key and the fix, raised when the client is made rather than as a handshake that fails
over and over in a reconnect loop.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from farsight.errors import ConfigError, ConfigProblem
from farsight.settings import BrokerTlsSettings

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class _EncryptedKey(Exception):
    """The key file asked for a passphrase (raised from OpenSSL's password callback)."""


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, which blocks a service for good.
    raise _EncryptedKey


def _missing(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    try:
        with path.open("rb"):
            return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"


def client_context(
    *,
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    check_hostname: bool = True,
    min_version: Literal["1.2", "1.3"] = "1.2",
    where: str = "broker.tls",
) -> ssl.SSLContext:
    """A client context that requires the server's certificate (``CERT_REQUIRED``).

    Parameters
    ----------
    ca_file
        PEM bundle of the trusted authorities; None trusts the system's store.
    cert_file, key_file
        The client's certificate and key, both or neither.
    check_hostname
        Check that the certificate names the host connected to (its DNS or IP SANs).
    min_version
        Oldest TLS version accepted.
    where
        Settings path of these values, for the error messages (``uplink.tls`` on a gateway).

    Raises
    ------
    ConfigError
        Every problem found, each naming ``where.KEY``, the value and the fix.
    """
    problems: list[ConfigProblem] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = check_hostname
    ctx.minimum_version = _VERSIONS[min_version]
    if ca_file is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    elif why := _missing(Path(ca_file)):
        problems.append(
            ConfigProblem(
                f"{where}.ca_file",
                str(ca_file),
                f"{why}: point it at the CA certificate that signed the broker's certificate "
                "(`farsight pki init-ca` writes ca.crt)",
            )
        )
    else:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (ssl.SSLError, ValueError) as exc:
            problems.append(
                ConfigProblem(
                    f"{where}.ca_file",
                    str(ca_file),
                    f"not a PEM certificate bundle ({exc}): give the CA's certificate, not its key",
                )
            )
    if (cert_file is None) != (key_file is None):
        missing, given = (
            ("key_file", "cert_file") if key_file is None else ("cert_file", "key_file")
        )
        problems.append(
            ConfigProblem(
                f"{where}.{missing}",
                None,
                f"{given} needs {missing}: give the client certificate and its key together",
            )
        )
    elif cert_file is not None and key_file is not None:
        file_problems = [
            ConfigProblem(f"{where}.{name}", str(p), f"{why}: `farsight pki client ID` writes both")
            for name, p in (("cert_file", cert_file), ("key_file", key_file))
            if (why := _missing(Path(p)))
        ]
        problems += file_problems
        if not file_problems:
            problems += _load_chain(ctx, Path(cert_file), Path(key_file), where)
    if problems:
        raise ConfigError(problems)
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path, where: str) -> list[ConfigProblem]:
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key), password=_no_passphrase)
    except _EncryptedKey:
        return [
            ConfigProblem(
                f"{where}.key_file",
                str(key),
                "the key is encrypted: services read it unattended, so store it unencrypted "
                "and readable by this user only (chmod 600)",
            )
        ]
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            return [
                ConfigProblem(
                    f"{where}.key_file",
                    str(key),
                    "does not belong to cert_file: give the key made with that certificate",
                )
            ]
        return [
            ConfigProblem(
                f"{where}.cert_file",
                str(cert),
                f"cannot load the certificate and key ({exc}): both must be PEM",
            )
        ]
    return []


def broker_context(tls: BrokerTlsSettings, where: str = "broker.tls") -> ssl.SSLContext:
    """:func:`client_context` for the ``broker.tls`` settings."""
    return client_context(
        ca_file=tls.ca_file,
        cert_file=tls.cert_file,
        key_file=tls.key_file,
        check_hostname=not tls.insecure_skip_hostname_check,
        min_version=tls.min_version,
        where=where,
    )
