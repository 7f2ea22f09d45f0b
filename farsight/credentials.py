"""Broker identities and their credentials: who may connect to the broker, kept as hashes.

Every device and gateway of the registry, and each platform service, has an identity whose name
is its MQTT user name:

* a device: ``{dept}/{site}/{device}``, the levels of its own topics ``fs/v1/{dept}/{site}/
  {device}/...``, so a simulator or a gateway finds the user name in the topic it publishes on;
* a gateway: ``gw/{gateway}``, the levels of its topics ``fs/v1/gw/{gateway}/...``;
* a service: ``farsight-ingest``, ``farsight-hub``, ``farsight-video`` (:data:`SERVICES`).

Registry ids match :data:`~farsight.types.ID_RE`, which has no ``/``, so a device or gateway name
always holds a ``/`` and a service name never does: no registry entry can take a service's name,
and devices (three levels) never collide with gateways (two levels, first ``gw``, a department
code the registry refuses). mosquitto takes ``/`` in a user name and in a client id (which
``use_username_as_clientid`` makes of it); ``:`` would end the name in its password file
(``mosquitto_passwd`` refuses it). The ACL names each user whole: no ``%u`` pattern, so a name is
never spliced into a topic filter.

The :class:`CredentialStore` is a JSON file outside the repository (mode 0600) holding per
identity its mosquitto password hash, for HJ 212 devices a hash of the ``PW`` their frames carry,
and when it was made, rotated or revoked. Plain secrets leave this module once, in the
:class:`Secret` values :meth:`~CredentialStore.issue_missing` and :meth:`~CredentialStore.rotate`
return; :func:`write_secrets` files them (mode 0600) for the clients that need them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from farsight.errors import CredentialError
from farsight.passwords import (
    hj212_hash,
    hj212_verify,
    mosquitto_hash,
    new_hj212_pw,
    new_password,
)
from farsight.private_files import locked, write_private
from farsight.registry import GATEWAY_NAMESPACE, Registry

Kind = Literal["device", "gateway", "service"]
KINDS: tuple[Kind, ...] = ("device", "gateway", "service")

INGEST = "farsight-ingest"
HUB = "farsight-hub"
VIDEO = "farsight-video"

SERVICES: Mapping[str, str] = {
    INGEST: "ingest: reads fs/v1/#, writes the gateways' retained configuration",
    HUB: "hub: publishes nothing on MQTT today; the name is reserved for it",
    VIDEO: "video runner: publishes the detections of the registry's cameras",
}
"""The platform's own identities. Simulators have none: they connect as the devices they play."""

STORE_FORMAT = "farsight-credentials/1"
SECRETS_FORMAT = "farsight-secrets/1"


def device_username(department: str, site: str, device: str) -> str:
    """The broker user name of a device: the levels of its topics after ``fs/v1/``."""
    return f"{department}/{site}/{device}"


def gateway_username(gateway: str) -> str:
    """The broker user name of a gateway: the levels of its topics after ``fs/v1/``."""
    return f"{GATEWAY_NAMESPACE}/{gateway}"


def username_of_topic(topic: str) -> str | None:
    """The device user name a device topic ``fs/v1/{dept}/{site}/{device}/...`` belongs to."""
    parts = topic.split("/")
    if len(parts) < 6 or parts[0] != "fs" or parts[1] != "v1" or parts[2] == GATEWAY_NAMESPACE:
        return None
    return device_username(parts[2], parts[3], parts[4])


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a broker user name stands for; ``hj212`` when its frames carry a ``PW``."""

    username: str
    kind: Kind
    department: str = ""
    site: str = ""
    device: str = ""
    gateway: str = ""
    hj212: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} must be one of {KINDS}")
        # ':' ends the name in mosquitto's password file and a line break a line of either file;
        # '+' and '#' are topic wildcards, unsafe wherever a name meets a topic filter.
        if not self.username or any(c in self.username for c in ":+#\n\r\t \0"):
            raise ValueError(
                f"user name {self.username!r} must be non-empty, without ':', '+', '#' or blanks"
            )


def registry_identities(registry: Registry) -> tuple[Identity, ...]:
    """The identities a registry calls for: the services, each gateway, each device."""
    out = [Identity(name, "service") for name in SERVICES]
    out += [
        Identity(gateway_username(g.id), "gateway", site=g.site_id, gateway=g.id)
        for g in registry.gateways
    ]
    for site in registry.sites:
        for d in site.devices:
            out.append(
                Identity(
                    device_username(site.department, site.id, d.id),
                    "device",
                    department=site.department,
                    site=site.id,
                    device=d.id,
                    hj212=d.protocol == "hj212",
                )
            )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Credential:
    """What the store keeps of one identity: hashes and times, never a plain secret."""

    identity: Identity
    mqtt_hash: str | None
    hj212_hash: str | None
    created: datetime
    rotated: datetime | None = None
    revoked: datetime | None = None

    @property
    def username(self) -> str:
        return self.identity.username

    @property
    def active(self) -> bool:
        """False once revoked: no password in the broker's file, every PW refused."""
        return self.revoked is None and self.mqtt_hash is not None


@dataclass(frozen=True, slots=True)
class Secret:
    """Plain secrets of one identity, handed out once; ``repr`` never shows them."""

    username: str
    password: str = field(repr=False)
    hj212_pw: str | None = field(default=None, repr=False)


def _new(identity: Identity, now: datetime, created: datetime | None) -> tuple[Credential, Secret]:
    password = new_password()
    pw = new_hj212_pw() if identity.hj212 else None
    cred = Credential(
        identity=identity,
        mqtt_hash=mosquitto_hash(password),
        hj212_hash=hj212_hash(pw) if pw is not None else None,
        created=created or now,
        rotated=now if created is not None else None,
    )
    return cred, Secret(identity.username, password, pw)


class CredentialStore:
    """The credential store file; see the module docstring.

    Changes lock the file, read it again, change and write it back (atomically, mode 0600), so
    two commands at once do not lose each other's change. A long-lived reader (ingest checking
    HJ 212 passwords) sees the file's changes within ``reload_s`` seconds.
    """

    def __init__(self, path: Path, *, reload_s: float = 1.0) -> None:
        self.path = Path(path)
        self.reload_s = reload_s
        self._lock = threading.Lock()
        self._creds: dict[str, Credential] = {}
        self._by_device: dict[tuple[str, str], Credential] = {}
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._load()

    # -- reading ---------------------------------------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CredentialError(f"cannot read {self.path}: {exc.strerror}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> None:
        signature = self._stat()
        creds = {} if signature is None else _parse_store(self.path)
        with self._lock:
            self._creds = creds
            self._by_device = {
                (c.identity.site, c.identity.device): c
                for c in creds.values()
                if c.identity.kind == "device"
            }
            self._signature = signature
            self._checked_at = time.monotonic()

    def _fresh(self) -> None:
        if time.monotonic() - self._checked_at < self.reload_s:
            return
        self._checked_at = time.monotonic()
        if self._stat() != self._signature:
            self._load()

    def credentials(self) -> tuple[Credential, ...]:
        """Every credential in the store, revoked ones included, by user name."""
        self._fresh()
        return tuple(sorted(self._creds.values(), key=lambda c: c.username))

    def get(self, username: str) -> Credential | None:
        """The credential of ``username``, or None."""
        self._fresh()
        return self._creds.get(username)

    def hj212_password_ok(self, site_id: str, device_id: str, pw: str | None) -> bool | None:
        """Whether an HJ 212 frame's ``PW`` is the device's password.

        None when the store holds no HJ 212 password for that device (not an ``hj212`` device
        of the registry, or none issued yet); False for a missing or wrong ``PW`` and for a
        revoked device. Compared in constant time.
        """
        self._fresh()
        cred = self._by_device.get((site_id, device_id))
        if cred is None or (cred.hj212_hash is None and cred.revoked is None):
            return None
        if cred.revoked is not None or cred.hj212_hash is None or pw is None:
            return False
        return hj212_verify(pw, cred.hj212_hash)

    # -- changing --------------------------------------------------------------------------------

    def issue_missing(self, registry: Registry, now: datetime | None = None) -> list[Secret]:
        """Make credentials for every identity of ``registry`` that has none; revoked
        identities stay revoked (:meth:`rotate` gives them new ones). Returns the new plain
        secrets: the only time they are seen."""
        now = now or datetime.now(UTC)
        with locked(self.path):
            self._load()
            creds = dict(self._creds)
            out = []
            for identity in registry_identities(registry):
                if identity.username in creds:
                    continue
                cred, secret = _new(identity, now, None)
                creds[identity.username] = cred
                out.append(secret)
            if out:
                self._save(creds)
        return out

    def rotate(
        self, username: str, registry: Registry | None = None, now: datetime | None = None
    ) -> Secret:
        """New secrets for ``username`` (its MQTT password and, for an HJ 212 device, its PW);
        the old ones stop working once the broker files are written and the broker reloaded. A
        revoked identity comes back; one the store lacks is made if ``registry`` names it, and
        the registry's view of an identity (an HJ 212 device or not) replaces the stored one."""
        now = now or datetime.now(UTC)
        with locked(self.path):
            self._load()
            creds = dict(self._creds)
            old = creds.get(username)
            if old is not None:
                # The registry's view wins: a device that became an HJ 212 logger gets its PW.
                known = {i.username: i for i in registry_identities(registry)} if registry else {}
                identity, created = known.get(username, old.identity), old.created
            else:
                identity = _named(username, registry)
                created = None
            cred, secret = _new(identity, now, created)
            creds[username] = cred
            self._save(creds)
        return secret

    def revoke(self, username: str, now: datetime | None = None) -> Credential:
        """Drop ``username``'s hashes: it leaves the broker's password file at the next sync,
        and its HJ 212 frames are refused. :meth:`issue_missing` does not bring it back."""
        now = now or datetime.now(UTC)
        with locked(self.path):
            self._load()
            creds = dict(self._creds)
            old = creds.get(username)
            if old is None:
                raise CredentialError(_unknown(username, creds))
            cred = replace(old, mqtt_hash=None, hj212_hash=None, revoked=now)
            creds[username] = cred
            self._save(creds)
        return cred

    def _save(self, creds: dict[str, Credential]) -> None:
        doc = {
            "format": STORE_FORMAT,
            "identities": {name: _cred_doc(c) for name, c in sorted(creds.items())},
        }
        write_private(self.path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        self._load()


def _named(username: str, registry: Registry | None) -> Identity:
    known = {i.username: i for i in registry_identities(registry)} if registry else {}
    if username in known:
        return known[username]
    if registry is None and username in SERVICES:
        return Identity(username, "service")
    raise CredentialError(_unknown(username, known))


def _unknown(username: str, known: Iterable[str]) -> str:
    names = sorted(known)
    hint = "; simulators connect as the devices they play" if username == "farsight-sim" else ""
    some = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"no identity {username!r}{hint} (known: {some or 'none'})"


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def _cred_doc(c: Credential) -> dict[str, Any]:
    i = c.identity
    doc: dict[str, Any] = {"kind": i.kind}
    for key in ("department", "site", "device", "gateway"):
        if getattr(i, key):
            doc[key] = getattr(i, key)
    doc.update(
        hj212=i.hj212,
        mqtt_hash=c.mqtt_hash,
        hj212_hash=c.hj212_hash,
        created=_iso(c.created),
        rotated=_iso(c.rotated),
        revoked=_iso(c.revoked),
    )
    return doc


def _time(doc: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = doc.get(key)
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(str(value))
    except ValueError:
        raise CredentialError(f"{where}.{key}: not an ISO 8601 time: {value!r}") from None
    if ts.tzinfo is None:
        raise CredentialError(f"{where}.{key}: time without a UTC offset: {value!r}")
    return ts


def _read_document(path: Path, fmt: str, what: str) -> dict[str, Any]:
    """The JSON object at ``path`` whose ``format`` is ``fmt``; a :class:`CredentialError` naming
    the file otherwise (``what`` says what it should have been)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CredentialError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise CredentialError(f"{path}: not {what} (format {fmt!r})")
    return doc


def _parse_store(path: Path) -> dict[str, Credential]:
    doc = _read_document(path, STORE_FORMAT, "a credential store")
    identities = doc.get("identities")
    if not isinstance(identities, dict):
        raise CredentialError(f"{path}: identities must be a mapping of user names")
    out = {}
    for name, item in identities.items():
        where = f"{path}: identities.{name}"
        if not isinstance(item, dict):
            raise CredentialError(f"{where}: must be a mapping")
        try:
            identity = Identity(
                username=name,
                kind=item.get("kind", ""),
                department=item.get("department", ""),
                site=item.get("site", ""),
                device=item.get("device", ""),
                gateway=item.get("gateway", ""),
                hj212=bool(item.get("hj212", False)),
            )
        except ValueError as exc:
            raise CredentialError(f"{where}: {exc}") from None
        created = _time(item, "created", where)
        if created is None:
            raise CredentialError(f"{where}.created: missing")
        out[name] = Credential(
            identity=identity,
            mqtt_hash=item.get("mqtt_hash"),
            hj212_hash=item.get("hj212_hash"),
            created=created,
            rotated=_time(item, "rotated", where),
            revoked=_time(item, "revoked", where),
        )
    return out


# -- the plain secrets, for the clients that connect with them ------------------------------------


def write_secrets(path: Path, secrets: Iterable[Secret], *, merge: bool = True) -> None:
    """File plain secrets at ``path`` (JSON, mode 0600), over those already there when
    ``merge``; what ``farsight devices issue --out`` and the demo write, and what simulators
    (``farsight simulate --secrets``) read."""
    current = read_secrets(path) if merge and Path(path).exists() else {}
    for s in secrets:
        current[s.username] = s
    doc = {
        "format": SECRETS_FORMAT,
        "secrets": {
            name: {"password": s.password, **({"hj212_pw": s.hj212_pw} if s.hj212_pw else {})}
            for name, s in sorted(current.items())
        },
    }
    write_private(Path(path), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read_secrets(path: Path) -> dict[str, Secret]:
    """The secrets filed by :func:`write_secrets`, by user name."""
    path = Path(path)
    doc = _read_document(path, SECRETS_FORMAT, "a secrets file")
    items = doc.get("secrets")
    if not isinstance(items, dict):
        raise CredentialError(f"{path}: secrets must be a mapping of user names")
    out = {}
    for name, item in items.items():
        if not isinstance(item, dict) or not isinstance(item.get("password"), str):
            raise CredentialError(f"{path}: secrets.{name}: needs a password")
        pw = item.get("hj212_pw")
        out[name] = Secret(name, item["password"], pw if isinstance(pw, str) else None)
    return out
