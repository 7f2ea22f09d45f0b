"""Ed25519 signatures on the audit chain's anchors: the key pair, signing, and checking.

An unsigned anchor is a JSON file anyone who rewrites the chain can rewrite too. Signed with a
key kept outside the database (a file of mode 0600 named by ``alerts.anchor_key_file``, made by
``farsight audit keygen``), and checked with its public key, an anchor can only come from the
holder of the key; the copy sent upstream through the outbox is out of the operator's reach
altogether. Ed25519 (RFC 8032) through the ``cryptography`` package: deterministic signatures,
small keys, no parameters to get wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from alerts.audit import Anchor
from farsight.errors import AuditError

PUBLIC_SUFFIX = ".pub"
"""The public key is written next to the private key, with this suffix added."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_path(private_path: Path | str) -> Path:
    """Where :func:`generate_key` writes the public half of ``private_path``."""
    p = Path(private_path)
    return p.with_name(p.name + PUBLIC_SUFFIX)


def generate_key(path: Path | str) -> tuple[Path, str]:
    """Make a key pair: the private key at ``path`` (PEM, PKCS 8, mode 0600), the public key at
    ``path`` + ``.pub``. Returns the public key's path and :func:`key_id`.

    Raises
    ------
    AuditError
        Either file exists already (a key is never overwritten: anchors signed with it would no
        longer verify), or cannot be written.
    """
    path = Path(path)
    pub = public_path(path)
    for p in (path, pub):
        if p.exists():
            raise AuditError(f"{p} exists; a key is never overwritten (move it away first)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem)
        pub.write_bytes(public_pem)
    except OSError as exc:
        raise AuditError(f"cannot write the key {path}: {exc.strerror or exc}") from None
    return pub, key_id(key.public_key())


def load_signing_key(path: Path | str) -> Ed25519PrivateKey:
    """Read the private key :func:`generate_key` wrote.

    Raises
    ------
    AuditError
        The file is missing, readable or writable by group or others (mode not 0600 or
        stricter), or not an Ed25519 private key in PEM.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read the anchor key {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditError(
            f"the anchor key {path} is open to group or others (mode {stat.S_IMODE(mode):04o});"
            f" chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"{path} is not an Ed25519 key ({type(key).__name__})")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """Read a public key (PEM, as :func:`generate_key` wrote it next to the private key).

    Raises
    ------
    AuditError
        Missing, or not an Ed25519 public key in PEM.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read the public key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise AuditError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"{path} is not an Ed25519 public key ({type(key).__name__})")
    return key


def sign_anchor(anchor: Anchor, key: Ed25519PrivateKey) -> Anchor:
    """``anchor`` with its signature by ``key`` (over :meth:`Anchor.signed_bytes`)."""
    signature = key.sign(anchor.signed_bytes())
    return replace(
        anchor,
        key_id=key_id(key.public_key()),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def signer(key: Ed25519PrivateKey) -> Callable[[Anchor], Anchor]:
    """:func:`sign_anchor` with ``key`` bound (for ``SqlAuditLog.export_anchor``)."""
    return lambda anchor: sign_anchor(anchor, key)


def anchor_problem(anchor: Anchor, public_key: Ed25519PublicKey | None) -> str:
    """Why ``anchor`` cannot be trusted, or ``""`` when ``public_key`` verifies its signature.

    Pure. An unsigned anchor is refused whatever the key: anyone who can rewrite the chain can
    write one. Without a public key no signature can be checked, so that is refused too.
    """
    if not anchor.signed:
        return (
            "the anchor is not signed: anyone who can rewrite the chain can write one"
            " (sign anchors with alerts.anchor_key_file, made by `farsight audit keygen`)"
        )
    if public_key is None:
        return (
            "the anchor's signature cannot be checked: no public key"
            " (--public-key or alerts.anchor_public_key_file)"
        )
    expected = key_id(public_key)
    if anchor.key_id != expected:
        return f"the anchor is signed by key {anchor.key_id!r}, not by the trusted key {expected}"
    try:
        signature = base64.b64decode(anchor.signature, validate=True)
        public_key.verify(signature, anchor.signed_bytes())
    except (binascii.Error, ValueError, InvalidSignature):
        return (
            f"the anchor's signature does not verify with key {expected}: the anchor was"
            " changed after it was signed"
        )
    return ""


__all__ = [
    "PUBLIC_SUFFIX",
    "anchor_problem",
    "generate_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "public_path",
    "sign_anchor",
    "signer",
]
