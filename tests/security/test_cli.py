"""``farsight devices`` end to end through ``python -m app``, against a real mosquitto; and
``farsight ingest`` refusing an open broker or missing credentials."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from farsight.broker import BrokerAuth, MosquittoBroker
from farsight.credentials import INGEST, read_secrets
from tests.security.conftest import Peer, Trust, registry_doc, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AIR = "env/s-air/aq1"


def farsight(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump(registry_doc()), encoding="utf-8")
    return {
        "FARSIGHT_DATA_DIR": str(tmp_path / "var"),
        "FARSIGHT__REGISTRY__SITES_FILE": str(sites),
    }


def test_devices_issue_sync_rotate_revoke_end_to_end(
    mosquitto_path: str, env: dict[str, str], tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    trust_dir = tmp_path / "var" / "trust"
    out = tmp_path / "secrets" / "first.json"
    issued = farsight(["devices", "issue", "--out", str(out)], env)
    assert issued.returncode == 0, issued.stderr
    secrets = read_secrets(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert AIR in secrets and INGEST in secrets and "gw/gw-b" in secrets
    assert all(s.password not in issued.stdout for s in secrets.values())  # filed, not printed
    # A second issue has nothing to make.
    again = farsight(["devices", "issue"], env)
    assert again.returncode == 0 and "has credentials" in again.stdout

    synced = farsight(["devices", "sync"], env)
    assert synced.returncode == 0, synced.stderr
    assert "10 identities" in synced.stdout and "no broker reloaded" in synced.stdout
    auth = BrokerAuth(trust_dir / "mosquitto.passwd", trust_dir / "mosquitto.acl")
    broker = MosquittoBroker(data_dir=tmp_path / "broker", auth=auth)
    try:
        old = secrets[AIR].password
        assert not peers(AIR, broker=broker, password=old).connack().is_failure

        rotated = farsight(["devices", "rotate", AIR], env)
        assert rotated.returncode == 0, rotated.stderr
        line = next(x for x in rotated.stdout.splitlines() if x.strip().startswith(AIR))
        new = line.split("password=", 1)[1].split()[0]
        assert new != old
        pid_file = tmp_path / "mosquitto.pid"
        pid_file.write_text(f"{broker.pid}\n", encoding="ascii")
        synced = farsight(["devices", "sync", "--pid-file", str(pid_file)], env)
        assert synced.returncode == 0 and f"broker {broker.pid} reloads" in synced.stdout
        wait_for(
            lambda: peers(AIR, broker=broker, password=old).connack().is_failure,
            "the old password refused",
        )
        assert not peers(AIR, broker=broker, password=new).connack().is_failure

        revoked = farsight(["devices", "revoke", AIR], env)
        assert revoked.returncode == 0, revoked.stderr
        synced = farsight(["devices", "sync", "--pid", str(broker.pid)], env)
        assert synced.returncode == 0 and "1 without credentials" in synced.stdout
        wait_for(
            lambda: peers(AIR, broker=broker, password=new).connack().is_failure,
            "the revoked device refused",
        )
    finally:
        broker.close()

    listed = farsight(["devices", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)["identities"]}
    assert rows[AIR]["state"] == "revoked" and rows[INGEST]["state"] == "active"
    assert rows[AIR]["rotated"] is not None
    assert all("hash" not in key for r in rows.values() for key in r)


def test_devices_refuses_an_unknown_identity(env: dict[str, str]) -> None:
    done = farsight(["devices", "rotate", "farsight-sim"], env)
    assert done.returncode == 1
    assert "simulators connect as the devices they play" in done.stderr


def ingest_env(broker: MosquittoBroker, **extra: str) -> dict[str, str]:
    return {
        "FARSIGHT__BROKER__HOST": broker.host,
        "FARSIGHT__BROKER__PORT": str(broker.port),
        "FARSIGHT__BROKER__EMBEDDED": "none",
        **extra,
    }


def test_ingest_refuses_an_open_broker(fresh_mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    env = ingest_env(
        fresh_mosquitto,
        FARSIGHT_DATA_DIR=str(tmp_path / "var"),
        FARSIGHT__BROKER__USERNAME=INGEST,
        FARSIGHT__BROKER__PASSWORD="whatever",
    )
    done = farsight(["ingest"], env)
    assert done.returncode == 2, done.stderr
    assert "broker.allow_anonymous" in done.stderr
    assert "accepts anonymous clients" in done.stderr
    assert not (tmp_path / "var" / "farsight.db").exists()  # refused before it opened anything


def test_ingest_refuses_to_start_without_credentials(
    secure_broker: MosquittoBroker, tmp_path: Path
) -> None:
    done = farsight(["ingest"], ingest_env(secure_broker, FARSIGHT_DATA_DIR=str(tmp_path)))
    assert done.returncode == 2
    assert "broker.username" in done.stderr and "broker.password" in done.stderr
    assert "broker.allow_anonymous: true" in done.stderr


def test_ingest_client_id_must_be_its_user_name(
    secure_broker: MosquittoBroker, trust: Trust, tmp_path: Path
) -> None:
    env = ingest_env(
        secure_broker,
        FARSIGHT_DATA_DIR=str(tmp_path),
        FARSIGHT__BROKER__USERNAME=INGEST,
        FARSIGHT__BROKER__PASSWORD=trust.secrets[INGEST].password,
        FARSIGHT__INGEST__CLIENT_ID="farsight-ingest-1",
    )
    done = farsight(["ingest"], env)
    assert done.returncode == 2
    assert "ingest.client_id" in done.stderr and "use_username_as_clientid" in done.stderr


def test_ingest_runs_with_its_credentials_on_the_secure_broker(
    secure_broker: MosquittoBroker, trust: Trust, tmp_path: Path
) -> None:
    env = ingest_env(
        secure_broker,
        FARSIGHT_DATA_DIR=str(tmp_path),
        FARSIGHT__BROKER__USERNAME=INGEST,
        FARSIGHT__BROKER__PASSWORD=trust.secrets[INGEST].password,
        FARSIGHT__REGISTRY__SITES_FILE=str(trust.registry_file),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "ingest"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: " connected " in log.read_text(errors="replace") or proc.poll() is not None,
            "ingest to connect",
            timeout=60,
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        assert "refused" not in log.read_text(errors="replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, log.read_text(errors="replace")


def test_ingest_waits_for_a_silent_broker_and_stops_on_sigterm(tmp_path: Path) -> None:
    """Until the broker answers, ingest cannot tell an open one: it asks again, opening
    nothing meanwhile, and a stop ends the wait cleanly."""
    from farsight.broker import free_port

    env = {
        **os.environ,
        "FARSIGHT_DATA_DIR": str(tmp_path / "var"),
        "FARSIGHT__BROKER__PORT": str(free_port()),  # nothing listens there
        "FARSIGHT__BROKER__USERNAME": INGEST,
        "FARSIGHT__BROKER__PASSWORD": "pw",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "ingest"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "broker not answering" in log.read_text(errors="replace"),
            "ingest asking the silent broker",
            timeout=60,
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / "var" / "farsight.db").exists()


def test_simulate_connects_each_device_with_the_secrets_file(
    secure_broker: MosquittoBroker, trust: Trust, tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    from farsight.credentials import write_secrets

    secrets_file = tmp_path / "secrets.json"
    write_secrets(secrets_file, trust.secrets.values())
    hub = peers(INGEST).connected()
    assert not hub.subscribe("fs/v1/+/+/+/+").is_failure
    args = ["simulate", "--secrets", str(secrets_file), "--scenario", "quiet", "--rounds", "2"]
    args += ["--interval", "0.05", "--start", "2026-11-25T08:00:00+08:00"]
    env = {
        "FARSIGHT__BROKER__HOST": secure_broker.host,
        "FARSIGHT__BROKER__PORT": str(secure_broker.port),
        "FARSIGHT__REGISTRY__SITES_FILE": str(trust.registry_file),
    }
    done = farsight(args, env)
    assert done.returncode == 0, done.stderr
    sent = int(done.stderr.split(" messages, ")[0].rsplit(" ", 1)[1])
    assert sent > 0 and f"{sent} acknowledged" in done.stderr
    wait_for(lambda: len(hub.live()) >= sent, "every simulated message at ingest")
    # Without the secrets the broker refuses the run, which says so instead of retrying.
    refused = farsight([*args[:1], *args[3:]], env)
    assert refused.returncode == 1
    assert "refused" in refused.stderr and "--secrets" in refused.stderr
