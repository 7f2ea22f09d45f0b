"""The demo's broker credentials: every identity of the registry, made in the demo's data folder.

The first run issues them; a later run on the same folder keeps those whose plain secret the
demo's secrets file still matches and rotates the others (a revoked device, a secrets file
deleted by hand), then writes mosquitto's password and ACL files. The secrets file, mode 0600,
is what the demo's clients connect with and what its banner points at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farsight.broker import BrokerAuth
from farsight.broker_acl import write_broker_files
from farsight.credentials import (
    CredentialStore,
    Secret,
    read_secrets,
    registry_identities,
    write_secrets,
)
from farsight.passwords import hj212_verify, mosquitto_verify
from farsight.registry import Registry
from farsight.settings import Settings


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """The secrets the demo's clients use, and where they and the broker's files are."""

    secrets: dict[str, Secret]
    secrets_file: Path
    store_file: Path
    auth: BrokerAuth


def _matches(secret: Secret, store: CredentialStore) -> bool:
    """True when ``secret`` still opens its identity's credential."""
    cred = store.get(secret.username)
    if cred is None or not cred.active or cred.mqtt_hash is None:
        return False
    if not mosquitto_verify(secret.password, cred.mqtt_hash):
        return False
    if cred.hj212_hash is not None:
        return secret.hj212_pw is not None and hj212_verify(secret.hj212_pw, cred.hj212_hash)
    return True


def demo_credentials(settings: Settings, registry: Registry) -> DemoCredentials:
    """Issue (or reuse) the credentials of every identity; write the secrets and broker files."""
    store = CredentialStore(settings.credential_store_path)
    secrets_file = settings.trust_dir / "demo-secrets.json"
    known = read_secrets(secrets_file) if secrets_file.exists() else {}
    fresh = {s.username: s for s in store.issue_missing(registry)}
    secrets: dict[str, Secret] = {}
    for identity in registry_identities(registry):
        name = identity.username
        secret = fresh.get(name) or known.get(name)
        ok = secret is not None and _matches(secret, store)
        secrets[name] = secret if ok and secret is not None else store.rotate(name, registry)
    write_secrets(secrets_file, secrets.values(), merge=False)
    auth = BrokerAuth(settings.broker_password_path, settings.broker_acl_path)
    write_broker_files(store, registry, settings.broker_password_path, auth.acl_file)
    return DemoCredentials(secrets, secrets_file, store.path, auth)
