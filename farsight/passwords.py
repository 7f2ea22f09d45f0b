"""Password hashes: mosquitto's ``$7$`` format, and the salted hash of an HJ 212 ``PW``.

mosquitto 2.0 reads ``username:$7$<iterations>$<salt>$<hash>`` from its ``password_file``:
PBKDF2-HMAC-SHA512 over the password with a 12-byte salt, a 64-byte result, salt and result in
base64. That is what ``mosquitto_passwd`` writes (101 iterations), so the hashes made here are
read by the broker as if that tool had made them (``tests/security`` checks both ways).

The secrets themselves are random (:func:`new_password`: 192 bits), so the hash's iteration count
is not what protects them; mosquitto's default keeps a CONNECT cheap for thousands of devices.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string

MOSQUITTO_ITERATIONS = 101
"""``mosquitto_passwd``'s default iteration count."""

_SALT_BYTES = 12
_HASH_BYTES = 64
_HJ212_PW_LEN = 6
_HJ212_ALPHABET = string.ascii_letters + string.digits


def new_password() -> str:
    """A random MQTT password: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def new_hj212_pw() -> str:
    """A random HJ 212 access password: HJ 212-2017 gives ``PW`` six characters (C6), so six
    letters or digits (about 36 bits); data loggers accept no longer one."""
    return "".join(secrets.choice(_HJ212_ALPHABET) for _ in range(_HJ212_PW_LEN))


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS
) -> str:
    """The ``$7$`` hash of ``password`` as mosquitto's ``password_file`` holds it."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, _HASH_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def mosquitto_verify(password: str, hashed: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash; False for any other password or format."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, want = _unb64(parts[3]), _unb64(parts[4])
    except (binascii.Error, ValueError):
        return False
    iterations = int(parts[2])
    if not 1 <= iterations <= 10_000_000:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, len(want))
    return hmac.compare_digest(got, want)


def hj212_hash(pw: str, *, salt: bytes | None = None) -> str:
    """A salted hash of an HJ 212 ``PW``: ``hmac-sha256$<salt>$<digest>``.

    One HMAC, not a slow hash: ingest checks every frame, and a six-character password falls to
    an offline search whatever the hash; what keeps it is the store file's mode (0600). The salt
    keeps two devices with the same password from showing it.
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hmac.new(salt, pw.encode("utf-8"), hashlib.sha256).digest()
    return f"hmac-sha256${_b64(salt)}${_b64(digest)}"


def hj212_verify(pw: str, hashed: str) -> bool:
    """True when ``pw`` matches an :func:`hj212_hash` (compared in constant time)."""
    parts = hashed.split("$")
    if len(parts) != 3 or parts[0] != "hmac-sha256":
        return False
    try:
        salt, want = _unb64(parts[1]), _unb64(parts[2])
    except (binascii.Error, ValueError):
        return False
    got = hmac.new(salt, pw.encode("utf-8"), hashlib.sha256).digest()
    return hmac.compare_digest(got, want)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
