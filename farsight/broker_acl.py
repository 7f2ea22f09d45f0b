"""mosquitto's ``password_file`` and ``acl_file``, generated from the registry and the store.

Each identity may do only what is its own (topics under ``fs/v1/``):

* a device writes ``{dept}/{site}/{device}/#`` (readings, HJ 212 frames, status and its last
  will) and reads nothing: devices have no configuration topic;
* a gateway writes ``gw/{gw}/batch``, ``gw/{gw}/status`` (and its last will) and
  ``gw/{gw}/config/ack``, and reads ``gw/{gw}/config``, its retained configuration;
* ``farsight-ingest`` reads ``#`` and writes ``gw/+/config`` (configuration for gateways);
* ``farsight-video`` writes ``{dept}/{site}/{camera}/detection`` for the registry's cameras;
* ``farsight-hub`` nothing: the hub publishes nothing on MQTT.

There is no anonymous section: with ``allow_anonymous false`` nobody connects without a user
name, and an identity the file does not name may do nothing. mosquitto 2.0 checks these rules
when a message is published and when one is delivered; it grants every SUBSCRIBE under an
``acl_file`` (the check of subscriptions is its plugins' business) but delivers nothing the
subscriber may not read.

:func:`write_broker_files` writes both files (atomically, mode 0600: the broker runs as their
owner); :func:`reload_broker` sends the broker SIGHUP, on which mosquitto reads them again and
checks the clients on line once more: a connection whose password no longer matches (rotated,
revoked) is closed, the others stay (mosquitto 2.0.11, ``tests/security``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from farsight.credentials import (
    HUB,
    INGEST,
    VIDEO,
    Credential,
    CredentialStore,
    Identity,
    registry_identities,
)
from farsight.errors import BrokerError
from farsight.private_files import write_private
from farsight.registry import GATEWAY_NAMESPACE, Registry

PREFIX = "fs/v1"
Access = Literal["read", "write", "readwrite"]


@dataclass(frozen=True, slots=True)
class Grant:
    """One ``topic`` line of the ACL file."""

    access: Access
    topic: str


def grants(identity: Identity, registry: Registry) -> tuple[Grant, ...]:
    """What ``identity`` may publish and read (see the module docstring)."""
    if identity.kind == "device":
        own = f"{PREFIX}/{identity.department}/{identity.site}/{identity.device}"
        return (Grant("write", f"{own}/#"),)
    if identity.kind == "gateway":
        own = f"{PREFIX}/{GATEWAY_NAMESPACE}/{identity.gateway}"
        return (
            Grant("write", f"{own}/batch"),
            Grant("write", f"{own}/status"),
            Grant("write", f"{own}/config/ack"),
            Grant("read", f"{own}/config"),
        )
    if identity.username == INGEST:
        return (
            Grant("read", f"{PREFIX}/#"),
            Grant("write", f"{PREFIX}/{GATEWAY_NAMESPACE}/+/config"),
        )
    if identity.username == VIDEO:
        return tuple(
            Grant("write", f"{PREFIX}/{site.department}/{site.id}/{d.id}/detection")
            for site in registry.sites
            for d in site.devices
            if d.kind == "camera"
        )
    if identity.username == HUB:
        return ()
    raise ValueError(f"no access rules for identity {identity.username!r}")


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """What a sync wrote: the identities in the files, and the store's loose ends."""

    users: tuple[str, ...]
    missing: tuple[str, ...]
    """Identities the registry calls for that have no active credential (issue or rotate)."""
    stale: tuple[str, ...]
    """Identities of the store the registry no longer names (left out of the files)."""


def plan(
    credentials: Iterable[Credential], registry: Registry
) -> tuple[list[tuple[Credential, tuple[Grant, ...]]], BrokerFiles]:
    """Which credentials go in the files, with their grants, and the sync's report."""
    by_name = {c.username: c for c in credentials}
    wanted = registry_identities(registry)
    names = {i.username for i in wanted}
    entries = []
    missing = []
    for identity in wanted:
        cred = by_name.get(identity.username)
        if cred is None or not cred.active:
            missing.append(identity.username)
            continue
        # Rules come from the registry's view of the identity, not the stored copy, so a device
        # that changed protocol or a camera that was added is reflected at once.
        entries.append((cred, grants(identity, registry)))
    stale = sorted(n for n in by_name if n not in names)
    report = BrokerFiles(
        users=tuple(c.username for c, _ in entries), missing=tuple(missing), stale=tuple(stale)
    )
    return entries, report


def render_password_file(entries: Iterable[tuple[Credential, tuple[Grant, ...]]]) -> str:
    """``username:$7$...`` lines, one per identity."""
    return "".join(f"{c.username}:{c.mqtt_hash}\n" for c, _ in entries)


def render_acl(entries: Iterable[tuple[Credential, tuple[Grant, ...]]]) -> str:
    """The ACL file: a ``user`` block per identity, its topics after it."""
    lines = [
        "# Generated by `farsight devices sync` from the site registry and the credential store;",
        "# edits are overwritten. No anonymous section: allow_anonymous is false.",
    ]
    for cred, rules in entries:
        lines.append("")
        lines.append(f"user {cred.username}")
        if not rules:
            lines.append("# no topic: reserved identity")
        lines += [f"topic {g.access} {g.topic}" for g in rules]
    return "\n".join(lines) + "\n"


def write_broker_files(
    store: CredentialStore, registry: Registry, password_file: Path, acl_file: Path
) -> BrokerFiles:
    """Write mosquitto's password and ACL files for ``registry`` from ``store``."""
    entries, report = plan(store.credentials(), registry)
    write_private(Path(password_file), render_password_file(entries))
    write_private(Path(acl_file), render_acl(entries))
    return report


def read_pid_file(path: Path) -> int:
    """The process id in a pid file (mosquitto's ``pid_file``)."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except OSError as exc:
        raise BrokerError(f"cannot read the broker's pid file {path}: {exc.strerror}") from None
    if not text.isdigit() or int(text) <= 1:
        raise BrokerError(f"{path} holds no process id: {text[:40]!r}")
    return int(text)


def reload_broker(pid: int) -> None:
    """Have mosquitto read its password and ACL files again (SIGHUP)."""
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise BrokerError(f"no broker process {pid} to reload") from None
    except PermissionError:
        raise BrokerError(
            f"not allowed to signal broker process {pid}; run as its user or root"
        ) from None
