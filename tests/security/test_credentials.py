"""The credential store and the files made from it: hashes mosquitto's own tool agrees with,
secrets shown once and never stored, files only their owner reads, HJ 212 passwords checked."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from farsight.broker_acl import plan, render_acl
from farsight.credentials import (
    SERVICES,
    CredentialStore,
    Secret,
    device_username,
    gateway_username,
    read_secrets,
    registry_identities,
    username_of_topic,
    write_secrets,
)
from farsight.errors import CredentialError, RegistryError
from farsight.passwords import hj212_hash, hj212_verify, mosquitto_hash, mosquitto_verify
from farsight.registry import load_registry, parse_registry
from farsight.types import Gateway
from tests.security.conftest import registry_doc


@pytest.fixture
def registry():
    return parse_registry(registry_doc())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- hashes ---------------------------------------------------------------------------------------


def test_a_hash_made_by_mosquitto_passwd_verifies_in_python(tmp_path: Path) -> None:
    # Debian's mosquitto package ships mosquitto_passwd; ./run installs it, so its absence is a
    # failure, not a skip.
    assert shutil.which("mosquitto_passwd"), "mosquitto_passwd missing: install mosquitto"
    file = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(file), "env/s-1/d1", "s3cret-Ä"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    name, hashed = file.read_text(encoding="utf-8").strip().split(":", 1)
    assert name == "env/s-1/d1" and hashed.startswith("$7$101$")
    assert mosquitto_verify("s3cret-Ä", hashed)
    assert not mosquitto_verify("s3cret-A", hashed)


def test_our_hash_has_mosquittos_shape_and_a_fresh_salt() -> None:
    a, b = mosquitto_hash("pw"), mosquitto_hash("pw")
    assert a != b and a.startswith("$7$101$") and len(a.split("$")) == 5
    assert mosquitto_verify("pw", a) and mosquitto_verify("pw", b)
    assert not mosquitto_verify("pw", "$6$abc$def") and not mosquitto_verify("pw", "garbage")


def test_hj212_hash_is_salted_and_checked() -> None:
    a, b = hj212_hash("Ab12cd"), hj212_hash("Ab12cd")
    assert a != b
    assert hj212_verify("Ab12cd", a) and not hj212_verify("Ab12ce", a)
    assert not hj212_verify("Ab12cd", "md5$x$y")


# -- names ----------------------------------------------------------------------------------------


def test_names_follow_the_topics_and_cannot_collide(registry) -> None:
    names = [i.username for i in registry_identities(registry)]
    assert len(names) == len(set(names))
    assert device_username("env", "s-air", "aq1") == "env/s-air/aq1"
    assert username_of_topic("fs/v1/env/s-air/aq1/reading") == "env/s-air/aq1"
    assert username_of_topic("fs/v1/gw/gw-a/batch") is None
    assert gateway_username("gw-a") == "gw/gw-a"
    # Services hold no '/', registry names always do: no registry entry takes a service's name.
    assert all("/" not in s for s in SERVICES)
    assert all("/" in n for n in names if n not in SERVICES)
    assert "farsight-sim" not in SERVICES


def test_the_demo_registry_names_the_edge_demos_gateway() -> None:
    reg = load_registry(None)
    assert reg.gateway("gw-demo") == Gateway("gw-demo", "yc-aq-xiling", ("yc-aq-xiling",))
    assert reg.gateway("gw-nope") is None


def test_gateways_naming_unknown_sites_are_refused_with_the_key_path() -> None:
    doc = registry_doc()
    doc["gateways"] = [
        {"id": "gw-a", "site": "s-nope", "sites": ["s-air", "s-gone"]},
        {"id": "gw-a", "site": "s-air"},
    ]
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    paths = {p.path for p in exc.value.problems}
    assert paths == {"gateways.0.site", "gateways.0.sites.1", "gateways.1.id"}


def test_the_gateways_namespace_is_no_department() -> None:
    doc = registry_doc()
    doc["departments"] = ["env", "transport", "gw"]
    with pytest.raises(RegistryError) as exc:
        parse_registry(doc)
    assert [p.path for p in exc.value.problems] == ["departments.2"]


# -- the store ------------------------------------------------------------------------------------


def test_issue_makes_each_identity_once_and_stores_no_plain_secret(
    registry, tmp_path: Path
) -> None:
    path = tmp_path / "trust" / "credentials.json"
    store = CredentialStore(path)
    secrets = store.issue_missing(registry)
    assert {s.username for s in secrets} == {i.username for i in registry_identities(registry)}
    assert store.issue_missing(registry) == []
    text = path.read_text(encoding="utf-8")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    for s in secrets:
        assert s.password not in text and (s.hj212_pw is None or s.hj212_pw not in text)
        assert s.password not in repr(s)
    hj = [s for s in secrets if s.hj212_pw]
    assert [s.username for s in hj] == ["env/s-stack/cems1"] and len(hj[0].hj212_pw or "") == 6
    doc = json.loads(text)
    assert doc["identities"]["env/s-stack/cems1"]["kind"] == "device"


def test_hj212_password_ok_answers_true_false_or_none(registry, tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json")
    pw = next(s for s in store.issue_missing(registry) if s.hj212_pw).hj212_pw
    assert store.hj212_password_ok("s-stack", "cems1", pw) is True
    assert store.hj212_password_ok("s-stack", "cems1", "123456") is False
    assert store.hj212_password_ok("s-stack", "cems1", None) is False
    assert store.hj212_password_ok("s-air", "aq1", "123456") is None  # a JSON device
    assert store.hj212_password_ok("s-nope", "cems1", pw) is None
    store.revoke("env/s-stack/cems1")
    assert store.hj212_password_ok("s-stack", "cems1", pw) is False


def test_a_reader_sees_another_process_rotate(registry, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    reader = CredentialStore(path, reload_s=0.0)
    old = next(s for s in CredentialStore(path).issue_missing(registry) if s.hj212_pw).hj212_pw
    assert reader.hj212_password_ok("s-stack", "cems1", old) is True
    new = CredentialStore(path).rotate("env/s-stack/cems1").hj212_pw
    assert reader.hj212_password_ok("s-stack", "cems1", old) is False
    assert reader.hj212_password_ok("s-stack", "cems1", new) is True


def test_rotate_keeps_the_creation_time_and_revoked_stays_revoked(registry, tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json")
    store.issue_missing(registry)
    before = store.get("gw/gw-a")
    assert before is not None and before.rotated is None
    secret = store.rotate("gw/gw-a")
    after = store.get("gw/gw-a")
    assert after is not None and after.created == before.created and after.rotated is not None
    assert after.mqtt_hash and mosquitto_verify(secret.password, after.mqtt_hash)
    store.revoke("gw/gw-a")
    assert store.issue_missing(registry) == []
    revoked = store.get("gw/gw-a")
    assert revoked is not None and not revoked.active and revoked.mqtt_hash is None


def test_unknown_names_are_refused_and_simulators_have_no_identity(
    registry, tmp_path: Path
) -> None:
    store = CredentialStore(tmp_path / "c.json")
    with pytest.raises(CredentialError, match="simulators connect as the devices"):
        store.rotate("farsight-sim", registry)
    with pytest.raises(CredentialError, match="no identity"):
        store.revoke("env/s-air/nope")


def test_a_damaged_store_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(CredentialError, match="not JSON"):
        CredentialStore(path)


def test_secrets_files_merge_and_stay_private(tmp_path: Path) -> None:
    path = tmp_path / "out" / "secrets.json"
    write_secrets(path, [Secret("a/b/c", "p1", "Ab12cd")])
    write_secrets(path, [Secret("gw/x", "p2")])
    assert mode(path) == 0o600
    got = read_secrets(path)
    assert got["a/b/c"].hj212_pw == "Ab12cd" and got["gw/x"].password == "p2"


# -- the broker's files ---------------------------------------------------------------------------


def test_the_acl_has_no_anonymous_rules_and_gives_each_identity_its_own(
    registry, tmp_path: Path
) -> None:
    store = CredentialStore(tmp_path / "c.json")
    store.issue_missing(registry)
    entries, report = plan(store.credentials(), registry)
    assert report.missing == () and report.stale == ()
    acl = render_acl(entries)
    blocks = acl.split("\n\n")
    assert all(line.startswith("#") for line in blocks[0].splitlines())  # no anonymous topic
    rules = {b.splitlines()[0]: b.splitlines()[1:] for b in blocks[1:]}
    assert rules["user env/s-air/aq1"] == ["topic write fs/v1/env/s-air/aq1/#"]
    assert rules["user farsight-video"] == ["topic write fs/v1/env/s-stack/cam1/detection"]
    assert "topic read fs/v1/gw/gw-a/config" in rules["user gw/gw-a"]


def test_revoked_and_stale_identities_leave_the_files(registry, tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json")
    store.issue_missing(registry)
    store.revoke("env/s-air/aq1")
    doc = registry_doc()
    doc["sites"] = [s for s in doc["sites"] if s["id"] != "s-wim"]
    entries, report = plan(store.credentials(), parse_registry(doc))
    users = {c.username for c, _ in entries}
    assert "env/s-air/aq1" not in users and "transport/s-wim/wim1" not in users
    assert report.missing == ("env/s-air/aq1",) and report.stale == ("transport/s-wim/wim1",)


def test_rotate_follows_the_registry_when_a_device_becomes_an_hj212_logger(
    registry, tmp_path: Path
) -> None:
    store = CredentialStore(tmp_path / "c.json")
    store.issue_missing(registry)
    assert store.hj212_password_ok("s-air", "aq1", "123456") is None
    doc = registry_doc()
    doc["sites"][0]["devices"][0].update(protocol="hj212", mn="42050000000009")
    secret = store.rotate("env/s-air/aq1", parse_registry(doc))
    assert secret.hj212_pw is not None
    assert store.hj212_password_ok("s-air", "aq1", secret.hj212_pw) is True
